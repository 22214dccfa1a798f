-- Privacy, third round (issue 29), expand-only.
--
-- 1. `app_ro` is the observability role (seed §4.2): on-call never reads a family's rows. It ran
--    under the same account policy as `app_rw`, so whoever held its credential could name an
--    account (`app.account_id`; account ids are in every share page's image URLs) and read that
--    family's users, moments, links. It now reads no account-scoped table at all, only the
--    `ops_*` aggregates below: counts and ages, never a row of a family.
-- 3. Break-glass reads leave a record: every statement of `operator_ro` is logged by the server
--    (`log_statement = 'all'` for that role). Setting it needs a superuser (or, on a managed
--    server, its audit extension): where the migrating role cannot, this file warns and
--    docs/runbooks/incident.md says what to set by hand.
-- 2. A session is bound to its account in SQL: `begin_session` refuses a user who is not in the
--    account, and `session_account` refuses a session whose user has left it, whatever path (a
--    login racing a move between accounts) got there.
SET LOCAL ROLE migrator;

DO $$
DECLARE
  t text;
BEGIN
  FOR t IN
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind = 'r'
      AND (c.relname = 'account' OR EXISTS (
        SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'account_id' AND NOT a.attisdropped))
  LOOP
    IF EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'public' AND tablename = t AND policyname = 'account_isolation') THEN
      EXECUTE format('ALTER POLICY account_isolation ON %I TO app_rw', t);
    END IF;
    EXECUTE format('REVOKE ALL ON %I FROM app_ro', t);
  END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION current_account_id() FROM app_ro;

SET LOCAL ROLE edge_system;

-- What on-call reads instead: aggregates, owned by edge_system (which may count across
-- accounts), with no column that names or describes a family.
CREATE VIEW ops_asset_status AS
  SELECT status, count(*) AS assets,
         min(queued_at) FILTER (WHERE status = 'queued') AS oldest_queued_at,
         count(*) FILTER (WHERE status = 'processing' AND lease_expires_at < now()) AS expired_leases
  FROM asset GROUP BY status;
CREATE VIEW ops_export_status AS
  SELECT status, count(*) AS exports,
         count(*) FILTER (WHERE status = 'processing' AND lease_expires_at < now()) AS expired_leases
  FROM account_export GROUP BY status;
CREATE VIEW ops_share_links AS
  SELECT count(*) FILTER (WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())) AS live,
         count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked,
         count(*) FILTER (WHERE purge_pending_since IS NOT NULL) AS purges_pending,
         min(purge_pending_since) AS oldest_purge_pending_since
  FROM share_link;
CREATE VIEW ops_accounts AS
  SELECT count(*) AS accounts,
         count(*) FILTER (WHERE purge_pending_since IS NOT NULL) AS purges_pending,
         min(purge_pending_since) AS oldest_purge_pending_since
  FROM account;
GRANT SELECT ON ops_asset_status, ops_export_status, ops_share_links, ops_accounts TO app_ro, operator_ro;

-- The session functions belong to edge_system (V11): it replaces them.
CREATE OR REPLACE FUNCTION begin_session(p_session text, p_user uuid, p_account uuid, p_expires_at timestamptz)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  -- A move to another account that commits between this check and the insert is caught by
  -- `session_account`, which checks the same membership on every request.
  PERFORM 1 FROM app_user u WHERE u.id = p_user AND u.account_id = p_account;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user is not in the account' USING ERRCODE = '28000';
  END IF;
  INSERT INTO user_session (id_hash, user_id, account_id, expires_at)
  VALUES (digest(p_session, 'sha256'), p_user, p_account, p_expires_at);
END
$$;

CREATE OR REPLACE FUNCTION session_account(p_session text, p_account text) RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  PERFORM 1 FROM user_session s JOIN app_user u ON u.id = s.user_id
    WHERE s.id_hash = digest(p_session, 'sha256')
      AND s.account_id = p_account::uuid
      AND u.account_id = s.account_id
      AND s.ended_at IS NULL
      AND s.expires_at > now();
  IF NOT FOUND THEN
    RAISE EXCEPTION 'session ended' USING ERRCODE = '28000';
  END IF;
  RETURN p_account;
END
$$;

RESET ROLE;

DO $$
BEGIN
  ALTER ROLE operator_ro SET log_statement = 'all';
EXCEPTION WHEN insufficient_privilege THEN
  RAISE WARNING 'operator_ro statement logging was not set (needs a superuser): see docs/runbooks/incident.md';
END
$$;
