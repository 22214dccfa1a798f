-- The share page now says when its link expires, so a cached copy stops being served the moment
-- the link expires (revocation already purges the cache; expiry has no event to purge on).
SET LOCAL ROLE edge_system;  -- the function's owner replaces it (RESET at the end)

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
             WHERE m.id = ANY (l.moment_ids) AND m.account_id = l.account_id AND m.child_id = l.child_id), '[]'::json)
         )::text
  FROM share_link l
  JOIN child c ON c.id = l.child_id AND c.account_id = l.account_id
  WHERE l.token_hash = p_token_hash
    AND l.revoked_at IS NULL
    AND (l.expires_at IS NULL OR l.expires_at > now())
$$;

RESET ROLE;
