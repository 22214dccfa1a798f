-- The sweep's second half: exports left 'queued' because their publish failed after the commit.
SET LOCAL ROLE migrator;  -- objects belong to migrator (RESET at the end, before refinery records the file)

ALTER TABLE account_export ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now();

CREATE FUNCTION stuck_queued_exports(p_before timestamptz, p_now timestamptz, p_limit integer)
  RETURNS TABLE (id uuid, account_id uuid)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH stuck AS (
    SELECT e.id FROM account_export e
    WHERE e.status = 'queued' AND e.queued_at < p_before
    ORDER BY e.queued_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
  UPDATE account_export e SET queued_at = p_now
  FROM stuck WHERE e.id = stuck.id
  RETURNING e.id, e.account_id
$$;

REVOKE ALL ON FUNCTION stuck_queued_exports(timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stuck_queued_exports(timestamptz, timestamptz, integer) TO app_rw;
ALTER FUNCTION stuck_queued_exports(timestamptz, timestamptz, integer) OWNER TO edge_system;

RESET ROLE;
