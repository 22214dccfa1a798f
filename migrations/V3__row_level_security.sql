-- Row-level security on every account-scoped table (SPEC §7, seed §2.3, §4.8).
--
-- The Worker runs each request as ONE transaction that first does
--   SELECT set_config('app.account_id', $1, true)      -- SET LOCAL, bound parameter
-- so under transaction pooling (PgBouncer, Hyperdrive) the setting dies with the transaction.
-- With the setting absent (NULL) or reset ('' after an earlier transaction) the policies compare
-- against NULL: no rows, no error.
SET LOCAL ROLE migrator;  -- objects belong to migrator (RESET at the end, before refinery records the file)

CREATE FUNCTION current_account_id() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('app.account_id', true), '')::uuid $$;
GRANT EXECUTE ON FUNCTION current_account_id() TO app_rw, app_ro, edge_system;

DO $$
DECLARE
  t text;
  key text;
BEGIN
  FOREACH t IN ARRAY ARRAY['account', 'app_user', 'child', 'moment', 'asset', 'share_link',
                           'usage_counter', 'health_measurement', 'vault_document', 'account_export']
  LOOP
    key := CASE WHEN t = 'account' THEN 'id' ELSE 'account_id' END;
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY account_isolation ON %I TO app_rw, app_ro USING (%I = current_account_id()) WITH CHECK (%I = current_account_id())',
      t, key, key);
    EXECUTE format('GRANT SELECT ON %I TO app_ro, operator_ro', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO app_rw', t);
  END LOOP;
END
$$;

-- Break-glass (operator_ro) sees operational tables whole. It has SELECT on health_measurement
-- and vault_document too, but no policy there: whatever it tries, it reads zero rows (seed §4.8).
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['account', 'asset', 'share_link', 'usage_counter', 'account_export']
  LOOP
    EXECUTE format('CREATE POLICY operator_read ON %I FOR SELECT TO operator_ro USING (true)', t);
  END LOOP;
END
$$;

-- edge_system (owner of the SECURITY DEFINER functions in V4) reads what the share page, the
-- popularity ranking, the reaper and the sweep need; never health or vault data.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['child', 'moment', 'asset', 'share_link', 'account_export']
  LOOP
    EXECUTE format('CREATE POLICY edge_system_access ON %I TO edge_system USING (true) WITH CHECK (true)', t);
    EXECUTE format('GRANT SELECT, UPDATE ON %I TO edge_system', t);
  END LOOP;
END
$$;

RESET ROLE;
