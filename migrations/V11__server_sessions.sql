-- Sessions the server can end (issue 15, OWASP Session Management Cheat Sheet), expand-only:
--
-- The cookie stays a signed envelope (who, which account, until when), and now also names a row
-- here. A request's first statement, the one that already sets its account for RLS, goes through
-- `session_account`, which refuses a session that was ended: the check rides in the round trip
-- every API call already makes, and no row of the account is visible to a refused session.
--
-- A session ends when its user signs out (`end_session`), signs out everywhere
-- (`end_user_sessions`), changes password or moves to another account (the trigger below), or is
-- deleted (ON DELETE CASCADE). The id in the cookie is 128 random bits; what is stored is its
-- SHA-256, so a copy of this table opens no session even with the signing key.
SET LOCAL ROLE migrator;  -- objects belong to migrator (RESET at the end, before refinery records the file)

CREATE TABLE user_session (
  id_hash     bytea PRIMARY KEY CHECK (length(id_hash) = 32),
  user_id     uuid NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
  account_id  uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  ended_at    timestamptz,
  ended_why   text CHECK (ended_why IN ('logout', 'logout_everywhere', 'password_changed', 'account_changed'))
);
CREATE INDEX user_session_user_idx ON user_session (user_id) WHERE ended_at IS NULL;
CREATE INDEX user_session_expiry_idx ON user_session (expires_at);

-- Account isolation like every account table (the RLS catalog test holds it to that): a signed-in
-- request may read its own account's sessions, never another's.
ALTER TABLE user_session ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_session FORCE ROW LEVEL SECURITY;
CREATE POLICY account_isolation ON user_session TO app_rw, app_ro
  USING (account_id = current_account_id()) WITH CHECK (account_id = current_account_id());
GRANT SELECT ON user_session TO app_ro, operator_ro;
GRANT SELECT ON user_session TO app_rw;
CREATE POLICY operator_read ON user_session FOR SELECT TO operator_ro USING (true);
CREATE POLICY edge_system_access ON user_session TO edge_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON user_session TO edge_system;

-- The RLS setting of a signed-in request: the account, if the session is live and its user still
-- belongs to that account; otherwise SQLSTATE 28000 (invalid_authorization_specification), which
-- the Worker answers with 401. Called inside `set_config('app.account_id', …, true)`.
CREATE FUNCTION session_account(p_session text, p_account text) RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  PERFORM 1 FROM user_session s
    WHERE s.id_hash = digest(p_session, 'sha256')
      AND s.account_id = p_account::uuid
      AND s.ended_at IS NULL
      AND s.expires_at > now();
  IF NOT FOUND THEN
    RAISE EXCEPTION 'session ended' USING ERRCODE = '28000';
  END IF;
  RETURN p_account;
END
$$;

CREATE FUNCTION begin_session(p_session text, p_user uuid, p_account uuid, p_expires_at timestamptz)
  RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  INSERT INTO user_session (id_hash, user_id, account_id, expires_at)
  VALUES (digest(p_session, 'sha256'), p_user, p_account, p_expires_at)
$$;

-- Ends one session; true when it was live.
CREATE FUNCTION end_session(p_session text) RETURNS boolean
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH ended AS (
    UPDATE user_session SET ended_at = now(), ended_why = 'logout'
     WHERE id_hash = digest(p_session, 'sha256') AND ended_at IS NULL
    RETURNING 1
  )
  SELECT count(*) > 0 FROM ended
$$;

-- Ends every live session of the user that holds `p_session` (the caller's own included), only if
-- that session is live itself; returns how many ended.
CREATE FUNCTION end_user_sessions(p_session text) RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH holder AS (
    SELECT user_id FROM user_session
     WHERE id_hash = digest(p_session, 'sha256') AND ended_at IS NULL AND expires_at > now()
  ), ended AS (
    UPDATE user_session s SET ended_at = now(), ended_why = 'logout_everywhere'
      FROM holder h
     WHERE s.user_id = h.user_id AND s.ended_at IS NULL
    RETURNING 1
  )
  SELECT count(*)::integer FROM ended
$$;

-- Whoever changes a password or moves a user to another account (the origin API, an operator by
-- hand), every session of that user ends in the same transaction.
CREATE FUNCTION end_sessions_on_credential_change() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  UPDATE user_session
     SET ended_at = now(),
         ended_why = CASE WHEN NEW.password_hash IS DISTINCT FROM OLD.password_hash
                          THEN 'password_changed' ELSE 'account_changed' END
   WHERE user_id = NEW.id AND ended_at IS NULL;
  RETURN NEW;
END
$$;

CREATE TRIGGER app_user_credential_change
  AFTER UPDATE OF password_hash, account_id ON app_user
  FOR EACH ROW
  WHEN (NEW.password_hash IS DISTINCT FROM OLD.password_hash OR NEW.account_id IS DISTINCT FROM OLD.account_id)
  EXECUTE FUNCTION end_sessions_on_credential_change();

-- Rows a day past their end or expiry are deleted by the daily cron; returns how many.
CREATE FUNCTION forget_old_sessions() RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH gone AS (
    DELETE FROM user_session
     WHERE least(expires_at, coalesce(ended_at, 'infinity')) < now() - interval '1 day'
    RETURNING 1
  )
  SELECT count(*)::integer FROM gone
$$;

-- Grants first: once edge_system owns a function, the migrator can no longer grant on it.
DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['session_account(text, text)', 'begin_session(text, uuid, uuid, timestamptz)',
                           'end_session(text)', 'end_user_sessions(text)', 'forget_old_sessions()',
                           'end_sessions_on_credential_change()']
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    IF f <> 'end_sessions_on_credential_change()' THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO app_rw', f);
    END IF;
    EXECUTE format('ALTER FUNCTION %s OWNER TO edge_system', f);
  END LOOP;
END
$$;

RESET ROLE;
