-- Zero loss under any single fault (issue 14), expand-only:
--
-- 1. A job's claim on its row is a lease: `lease_expires_at` (the 300 s job budget plus a
--    margin) and `lease_holder` (the queue message that holds it, so that message's own retry
--    takes the claim back at once, while a duplicate delivery does not). Any delivery takes over
--    an expired lease, and the sweep re-publishes work whose lease expired with no delivery
--    coming back. Exports get the same rule (they had no stale-claim rule at all).
-- 2. `sweep_asset_jobs` / `sweep_export_jobs`: the sweep's one door for both kinds of lost work
--    (a publish that never happened, a lease that expired), handing each row back to `queued`
--    as published in the same transaction as the publish.
-- 3. The share page ignores previews that are not an array of {key, width}: one bad row written
--    before the consumer validated the media worker's output no longer fails every page showing it.
SET LOCAL ROLE migrator;  -- objects belong to migrator (RESET at the end, before refinery records the file)

ALTER TABLE asset ADD COLUMN lease_expires_at timestamptz, ADD COLUMN lease_holder text;
ALTER TABLE account_export ADD COLUMN lease_expires_at timestamptz, ADD COLUMN lease_holder text;
UPDATE asset SET lease_expires_at = coalesce(processing_started_at, now()) + interval '330 seconds'
  WHERE status = 'processing';
UPDATE account_export SET lease_expires_at = now() + interval '330 seconds' WHERE status = 'processing';
CREATE INDEX asset_lease_idx ON asset (lease_expires_at) WHERE status = 'processing';
CREATE INDEX account_export_lease_idx ON account_export (lease_expires_at) WHERE status = 'processing';
CREATE INDEX account_export_unpublished_idx ON account_export (queued_at) WHERE status = 'queued' AND published_at IS NULL;

CREATE FUNCTION sweep_asset_jobs(p_before timestamptz, p_now timestamptz, p_limit integer)
  RETURNS TABLE (id uuid, account_id uuid, job_id uuid, original_key text, media_type text, is_probe boolean,
                 lease_expired boolean)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH lost AS (
    SELECT a.id, a.status = 'processing' AS lease_expired FROM asset a
    WHERE (a.status = 'queued' AND a.published_at IS NULL AND a.queued_at < p_before)
       OR (a.status = 'processing' AND coalesce(a.lease_expires_at, a.processing_started_at + interval '330 seconds', '-infinity') < p_now)
    ORDER BY coalesce(a.lease_expires_at, a.queued_at) LIMIT p_limit FOR UPDATE SKIP LOCKED)
  UPDATE asset a SET status = 'queued', queued_at = p_now, published_at = p_now, lease_expires_at = NULL,
                     lease_holder = NULL, updated_at = now()
  FROM lost WHERE a.id = lost.id
  RETURNING a.id, a.account_id, a.job_id, a.original_key, a.media_type, a.is_probe, lost.lease_expired
$$;

CREATE FUNCTION sweep_export_jobs(p_before timestamptz, p_now timestamptz, p_limit integer)
  RETURNS TABLE (id uuid, account_id uuid, lease_expired boolean)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH lost AS (
    SELECT e.id, e.status = 'processing' AS lease_expired FROM account_export e
    WHERE (e.status = 'queued' AND e.published_at IS NULL AND e.queued_at < p_before)
       OR (e.status = 'processing' AND coalesce(e.lease_expires_at, '-infinity') < p_now)
    ORDER BY coalesce(e.lease_expires_at, e.queued_at) LIMIT p_limit FOR UPDATE SKIP LOCKED)
  UPDATE account_export e SET status = 'queued', queued_at = p_now, published_at = p_now, lease_expires_at = NULL,
                              lease_holder = NULL
  FROM lost WHERE e.id = lost.id
  RETURNING e.id, e.account_id, lost.lease_expired
$$;

REVOKE ALL ON FUNCTION sweep_asset_jobs(timestamptz, timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION sweep_export_jobs(timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sweep_asset_jobs(timestamptz, timestamptz, integer) TO app_rw;
GRANT EXECUTE ON FUNCTION sweep_export_jobs(timestamptz, timestamptz, integer) TO app_rw;
ALTER FUNCTION sweep_asset_jobs(timestamptz, timestamptz, integer) OWNER TO edge_system;
ALTER FUNCTION sweep_export_jobs(timestamptz, timestamptz, integer) OWNER TO edge_system;

SET LOCAL ROLE edge_system;  -- the owner of public_share_page replaces it

CREATE OR REPLACE FUNCTION public_share_page(p_token_hash bytea) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  SELECT json_build_object(
           'child_name', c.name,
           'title', l.title,
           'expires_at_ms', (extract(epoch FROM l.expires_at) * 1000)::int8,
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
                          -- CASE, not AND: only an array may be looked into.
                          AND CASE WHEN jsonb_typeof(a.derivatives) = 'array' AND jsonb_array_length(a.derivatives) > 0
                                   THEN NOT EXISTS (
                                     SELECT 1 FROM jsonb_array_elements(a.derivatives) d
                                     WHERE CASE WHEN jsonb_typeof(d) = 'object'
                                                THEN jsonb_typeof(d -> 'key') IS DISTINCT FROM 'string'
                                                  OR jsonb_typeof(d -> 'width') IS DISTINCT FROM 'number'
                                                  OR (d ->> 'width') !~ '^[1-9][0-9]{0,8}$'
                                                ELSE true END)
                                   ELSE false END), '[]'::json))
                    ORDER BY m.occurred_on, m.created_at, m.id)
             FROM moment m
             WHERE m.id = ANY (l.moment_ids) AND m.account_id = l.account_id AND m.child_id = l.child_id
               AND m.visibility = 'shareable'), '[]'::json)
         )::text
  FROM share_link l
  JOIN child c ON c.id = l.child_id AND c.account_id = l.account_id
  WHERE l.token_hash = p_token_hash
    AND l.revoked_at IS NULL
    AND (l.expires_at IS NULL OR l.expires_at > now())
$$;

RESET ROLE;
