-- Sign-in happens before there is an account context, so app_user (RLS-forced) is unreadable;
-- this door returns exactly what checking a password needs, for one email.
SET LOCAL ROLE migrator;  -- objects belong to migrator (RESET at the end, before refinery records the file)

GRANT SELECT ON app_user TO edge_system;
CREATE POLICY edge_system_login ON app_user FOR SELECT TO edge_system USING (true);

CREATE FUNCTION login_lookup(p_email citext) RETURNS TABLE (user_id uuid, account_id uuid, password_hash text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  SELECT u.id, u.account_id, u.password_hash FROM app_user u WHERE u.email = p_email
$$;

REVOKE ALL ON FUNCTION login_lookup(citext) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION login_lookup(citext) TO app_rw;
ALTER FUNCTION login_lookup(citext) OWNER TO edge_system;

RESET ROLE;
