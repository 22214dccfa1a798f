-- Roles and extensions: cluster-level objects, created if missing so every environment converges.
-- In production the platform team creates the LOGIN roles with passwords beforehand; this file
-- then only checks they exist. Locally (trust auth, private cluster) no passwords are needed.
--
--   migrator     owns the schema; applies migrations.
--   app_rw       the Worker (through Hyperdrive): reads and writes account data under RLS.
--   app_ro       read-only observability; same RLS as app_rw.
--   operator_ro  break-glass, read-only; sees operational tables, NEVER health or vault rows.
--   edge_system  NOLOGIN; owns the few SECURITY DEFINER functions that read across accounts
--                (public share page, popularity, reaper, sweep). Nobody can log in as it.
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES
      ('migrator', true), ('app_rw', true), ('app_ro', true), ('operator_ro', true), ('edge_system', false)
  ) AS t(name, login)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
      EXECUTE format('CREATE ROLE %I %s NOINHERIT', r.name, CASE WHEN r.login THEN 'LOGIN' ELSE 'NOLOGIN' END);
    END IF;
  END LOOP;
END
$$;

-- The migrator owns what it creates and must be able to hand functions to edge_system.
GRANT edge_system TO migrator;
-- ALTER FUNCTION … OWNER TO edge_system needs the new owner to have CREATE on the schema.
GRANT CREATE ON SCHEMA public TO edge_system;
GRANT CREATE, USAGE ON SCHEMA public TO migrator;
GRANT USAGE ON SCHEMA public TO app_rw, app_ro, operator_ro, edge_system;

CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- Nothing new is executable by everyone by default.
ALTER DEFAULT PRIVILEGES FOR ROLE migrator REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
