-- The narrow cross-account doors of the edge, as SECURITY DEFINER functions owned by the NOLOGIN
-- role edge_system, callable only by app_rw. Each takes exactly what it needs and returns exactly
-- what its caller shows or does; none returns health or vault data.
SET LOCAL ROLE migrator;  -- objects belong to migrator (RESET at the end, before refinery records the file)

-- The public share page: given a token hash, what the page shows, only for a live link
-- (not revoked, not expired). NULL for unknown, revoked and expired links alike.
CREATE FUNCTION public_share_page(p_token_hash bytea) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  SELECT json_build_object(
           'child_name', c.name,
           'title', l.title,
           'moments', coalesce((
             SELECT json_agg(json_build_object(
                      'title', m.title,
                      'occurred_on', to_char(m.occurred_on, 'YYYY-MM-DD'),
                      'body', m.body,
                      'media', coalesce((
                        SELECT json_agg(json_build_object(
                                 'alt', a.alt_text, 'width', a.width, 'height', a.height, 'previews', a.derivatives)
                               ORDER BY a.created_at, a.id)
                        FROM asset a
                        WHERE a.moment_id = m.id AND a.account_id = l.account_id AND a.status = 'ready'
                          AND a.width IS NOT NULL AND a.height IS NOT NULL
                          AND jsonb_array_length(a.derivatives) > 0), '[]'::json))
                    ORDER BY m.occurred_on, m.created_at, m.id)
             FROM moment m
             WHERE m.id = ANY (l.moment_ids) AND m.account_id = l.account_id AND m.child_id = l.child_id), '[]'::json)
         )::text
  FROM share_link l
  JOIN child c ON c.id = l.child_id AND c.account_id = l.account_id
  WHERE l.token_hash = p_token_hash
    AND l.revoked_at IS NULL
    AND (l.expires_at IS NULL OR l.expires_at > now())
$$;

-- View counts tallied in the Worker, flushed in one statement (no write on the hot path).
CREATE FUNCTION record_share_views(p_hashes bytea[], p_counts integer[]) RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH v AS (SELECT * FROM unnest(p_hashes, p_counts) AS v(token_hash, n) WHERE n > 0),
       u AS (UPDATE share_link l SET view_count = l.view_count + v.n, last_viewed_at = now()
             FROM v WHERE l.token_hash = v.token_hash RETURNING 1)
  SELECT count(*)::integer FROM u
$$;

-- The most viewed live links, for cron prewarm.
CREATE FUNCTION popular_share_links(p_limit integer) RETURNS TABLE (token_hash bytea)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  SELECT l.token_hash FROM share_link l
  WHERE l.revoked_at IS NULL AND (l.expires_at IS NULL OR l.expires_at > now()) AND l.view_count > 0
  ORDER BY l.view_count DESC, l.id
  LIMIT least(greatest(p_limit, 0), 1000)
$$;

-- Reaper candidates as of p_now: exports older than the TTL and assets attached to no moment
-- for longer than the grace period, not yet enqueued, locked so two runs cannot take the same rows.
CREATE FUNCTION reap_candidates(p_now timestamptz, p_export_ttl interval, p_orphan_grace interval, p_limit integer)
  RETURNS TABLE (kind text, id uuid, account_id uuid)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  RETURN QUERY
    SELECT 'export'::text, e.id, e.account_id FROM account_export e
    WHERE e.deleted_at IS NULL AND e.reap_enqueued_at IS NULL AND e.created_at < p_now - p_export_ttl
    ORDER BY e.created_at LIMIT p_limit FOR UPDATE SKIP LOCKED;
  RETURN QUERY
    SELECT 'orphan_asset'::text, a.id, a.account_id FROM asset a
    WHERE a.moment_id IS NULL AND NOT a.is_probe AND a.deleted_at IS NULL AND a.reap_enqueued_at IS NULL
      AND a.status <> 'deleted' AND a.created_at < p_now - p_orphan_grace
    ORDER BY a.created_at LIMIT p_limit FOR UPDATE SKIP LOCKED;
END
$$;

CREATE FUNCTION mark_reap_enqueued(p_exports uuid[], p_assets uuid[], p_now timestamptz) RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
  n integer; m integer;
BEGIN
  UPDATE account_export SET reap_enqueued_at = p_now WHERE id = ANY (p_exports) AND reap_enqueued_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  UPDATE asset SET reap_enqueued_at = p_now, updated_at = now() WHERE id = ANY (p_assets) AND reap_enqueued_at IS NULL;
  GET DIAGNOSTICS m = ROW_COUNT;
  RETURN n + m;
END
$$;

-- Assets left in 'queued' (their publish failed after the commit): re-published by the sweep.
-- Stamps queued_at so the next sweep waits another full interval.
CREATE FUNCTION stuck_queued_assets(p_before timestamptz, p_now timestamptz, p_limit integer)
  RETURNS TABLE (id uuid, account_id uuid, job_id uuid, original_key text, media_type text, is_probe boolean)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH stuck AS (
    SELECT a.id FROM asset a
    WHERE a.status = 'queued' AND a.queued_at < p_before
    ORDER BY a.queued_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
  UPDATE asset a SET queued_at = p_now, updated_at = now()
  FROM stuck WHERE a.id = stuck.id
  RETURNING a.id, a.account_id, a.job_id, a.original_key, a.media_type, a.is_probe
$$;

DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
      'public_share_page(bytea)', 'record_share_views(bytea[], integer[])', 'popular_share_links(integer)',
      'reap_candidates(timestamptz, interval, interval, integer)', 'mark_reap_enqueued(uuid[], uuid[], timestamptz)',
      'stuck_queued_assets(timestamptz, timestamptz, integer)']
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO app_rw', f);
    EXECUTE format('ALTER FUNCTION %s OWNER TO edge_system', f);
  END LOOP;
END
$$;

RESET ROLE;
