-- Issue 32, item 3: an optional passphrase per recipient link, checked at the edge before any
-- cached copy of the page is served.
--
-- 1. `share_recipient.passphrase_hash`: the passphrase only as a salted PBKDF2 hash, in the
--    format of `app_user.password_hash` (`pbkdf2-sha256$<iterations>$<salt>$<hash>`), made at
--    the edge. Set when the link is made, never changed (a new passphrase is a new link).
-- 2. `public_share_link_page`'s link line says whether the link is locked, so the edge keeps
--    that in the link's resolution and asks the database nothing more on a hit.
-- 3. `share_link_passphrase`: the stored hash of a live, locked link, for the edge to check an
--    answer against; NULL for any other token (unknown, expired, revoked, or open).
SET LOCAL ROLE migrator;

ALTER TABLE share_recipient ADD COLUMN passphrase_hash text
  CHECK (passphrase_hash IS NULL
         OR (passphrase_hash LIKE 'pbkdf2-sha256$%' AND length(passphrase_hash) <= 200));

-- The share page's functions belong to edge_system, as in V15.
SET LOCAL ROLE edge_system;

CREATE OR REPLACE FUNCTION public_share_link_page(p_token_hash bytea) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH r AS (SELECT l.token_hash AS page_key, r.expires_at, r.passphrase_hash IS NOT NULL AS locked
             FROM share_recipient r JOIN share_link l ON l.id = r.share_id
             WHERE r.token_hash = p_token_hash AND r.revoked_at IS NULL
               AND (r.expires_at IS NULL OR r.expires_at > now())),
       k AS (SELECT coalesce((SELECT page_key FROM r), p_token_hash) AS page_key),
       p AS (SELECT public_share_page(k.page_key) AS page, k.page_key FROM k)
  SELECT p.page || E'\n' || json_build_object(
           'page_key', encode(p.page_key, 'hex'),
           'fence', share_page_fence(p_token_hash),
           'expires_at_ms', (SELECT (extract(epoch FROM r.expires_at) * 1000)::int8 FROM r),
           'passphrase', coalesce((SELECT r.locked FROM r), false))::text
  FROM p WHERE p.page IS NOT NULL
$$;

CREATE FUNCTION share_link_passphrase(p_token_hash bytea) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  SELECT r.passphrase_hash
  FROM share_recipient r JOIN share_link l ON l.id = r.share_id
  WHERE r.token_hash = p_token_hash AND r.passphrase_hash IS NOT NULL
    AND r.revoked_at IS NULL AND (r.expires_at IS NULL OR r.expires_at > now())
    AND l.revoked_at IS NULL AND (l.expires_at IS NULL OR l.expires_at > now())
$$;

REVOKE ALL ON FUNCTION share_link_passphrase(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION share_link_passphrase(bytea) TO app_rw;

RESET ROLE;
