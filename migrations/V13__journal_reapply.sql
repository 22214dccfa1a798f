-- Re-applying the revocation journal after a point-in-time restore (issue 27), expand-only.
--
-- A restore to a moment T brings back every share link revoked, and every session ended, after
-- T. The edge writes each of those changes to the `JOURNAL` R2 bucket before it answers
-- (src/journal.rs); `POST /admin/journal/reapply` reads the entries from a time on and hands
-- them here, one array per kind, in one transaction. Each function is idempotent: a row the
-- restore did not undo (still revoked, still ended) is left as it is, a row that no longer
-- exists is skipped, and the time written is the entry's own, the database's time of the change.
SET LOCAL ROLE edge_system;

-- Revokes again the links of these token hashes that are live; `p_by` names the operator who
-- revoked one (NULL: its family). Returns the links it revoked, with what their purge needs
-- (the `share_link_changed` trigger of V12 bumped the version and noted the purge intent).
CREATE FUNCTION journal_reapply_share_revocations(p_token_hashes bytea[], p_at timestamptz[], p_by text[])
  RETURNS TABLE (token_hash bytea, account_id uuid, version bigint)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH e AS (
    -- The earliest entry per link: one row per link to update.
    SELECT DISTINCT ON (v.token_hash) v.token_hash, v.at, v.by
    FROM unnest(p_token_hashes, p_at, p_by) AS v(token_hash, at, by)
    ORDER BY v.token_hash, v.at
  )
  UPDATE share_link l SET revoked_at = coalesce(l.revoked_at, e.at), updated_at = now(),
                          revoked_by = coalesce(l.revoked_by, e.by)
  FROM e
  WHERE l.token_hash = e.token_hash AND l.revoked_at IS NULL
  RETURNING l.token_hash, l.account_id, l.version
$$;

-- Ends again the sessions of these id hashes that are live; returns how many.
CREATE FUNCTION journal_reapply_session_ends(p_id_hashes bytea[], p_at timestamptz[]) RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH e AS (
    SELECT v.id_hash, min(v.at) AS at FROM unnest(p_id_hashes, p_at) AS v(id_hash, at) GROUP BY v.id_hash
  ), ended AS (
    UPDATE user_session s SET ended_at = e.at, ended_why = 'logout'
      FROM e
     WHERE s.id_hash = e.id_hash AND s.ended_at IS NULL
    RETURNING 1
  )
  SELECT count(*)::integer FROM ended
$$;

-- "Sign out everywhere" again: ends every live session of each user that was created at or
-- before that user's entry (a session begun after it is a new sign-in and stays). Returns how many.
CREATE FUNCTION journal_reapply_user_session_ends(p_users uuid[], p_at timestamptz[]) RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH e AS (
    SELECT v.user_id, max(v.at) AS at FROM unnest(p_users, p_at) AS v(user_id, at) GROUP BY v.user_id
  ), ended AS (
    UPDATE user_session s SET ended_at = e.at, ended_why = 'logout_everywhere'
      FROM e
     WHERE s.user_id = e.user_id AND s.created_at <= e.at AND s.ended_at IS NULL
    RETURNING 1
  )
  SELECT count(*)::integer FROM ended
$$;

DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['journal_reapply_share_revocations(bytea[], timestamptz[], text[])',
      'journal_reapply_session_ends(bytea[], timestamptz[])',
      'journal_reapply_user_session_ends(uuid[], timestamptz[])']
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO app_rw', f);
  END LOOP;
END
$$;

RESET ROLE;
