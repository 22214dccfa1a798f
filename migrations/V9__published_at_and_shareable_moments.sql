-- Two corrections, expand-only:
--
-- 1. `published_at` on assets and exports: set once their job is on the queue. The sweep of
--    lost publishes now re-publishes only rows whose publish never happened, instead of every
--    row waiting longer than two minutes (which, during a backlog, doubled the backlog).
-- 2. Only moments marked `shareable` appear on share pages: a family can make a moment private
--    again and every link stops showing it.
SET LOCAL ROLE migrator;  -- objects belong to migrator (RESET at the end, before refinery records the file)

ALTER TABLE asset ADD COLUMN published_at timestamptz;
ALTER TABLE account_export ADD COLUMN published_at timestamptz;
CREATE INDEX asset_unpublished_idx ON asset (queued_at) WHERE status = 'queued' AND published_at IS NULL;

SET LOCAL ROLE edge_system;  -- the owner of the functions replaces them

CREATE OR REPLACE FUNCTION stuck_queued_assets(p_before timestamptz, p_now timestamptz, p_limit integer)
  RETURNS TABLE (id uuid, account_id uuid, job_id uuid, original_key text, media_type text, is_probe boolean)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH stuck AS (
    SELECT a.id FROM asset a
    WHERE a.status = 'queued' AND a.published_at IS NULL AND a.queued_at < p_before
    ORDER BY a.queued_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
  UPDATE asset a SET queued_at = p_now, published_at = p_now, updated_at = now()
  FROM stuck WHERE a.id = stuck.id
  RETURNING a.id, a.account_id, a.job_id, a.original_key, a.media_type, a.is_probe
$$;

CREATE OR REPLACE FUNCTION stuck_queued_exports(p_before timestamptz, p_now timestamptz, p_limit integer)
  RETURNS TABLE (id uuid, account_id uuid)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH stuck AS (
    SELECT e.id FROM account_export e
    WHERE e.status = 'queued' AND e.published_at IS NULL AND e.queued_at < p_before
    ORDER BY e.queued_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
  UPDATE account_export e SET queued_at = p_now, published_at = p_now
  FROM stuck WHERE e.id = stuck.id
  RETURNING e.id, e.account_id
$$;

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
                          AND jsonb_array_length(a.derivatives) > 0), '[]'::json))
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
