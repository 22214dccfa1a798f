-- Recipient links (issue 32), expand-only: a share can have named links, one per relative, each
-- its own token (stored as a hash), expiry, revocation and views. The share's own token stays a
-- link of its own. The page is the share's: every link of a share shows the page cached under
-- the share's token hash (its "page key"), so twenty recipients are one render and one copy.
--
-- 1. `share_recipient`: the links. Revoking one bumps its version and notes a purge intent of its
--    own (the `share_recipient_changed` trigger), whose cache tag is its token hash's: it reaches
--    only what that link resolved to at the edge, never the share's page. Revoking the share
--    purges the share's tag, which every link's resolution also carries.
-- 2. `share_view_day`: views per link and day (UTC), the last 31 days kept; the share's own
--    link counts under the share's id. `record_share_views` counts a recipient's views on the
--    recipient, on the share (popularity, what prewarm ranks by) and on the day.
-- 3. `public_share_link_page`: the page any live link of a share shows, followed by a line of
--    what the edge needs about the link itself (the page key, the link's fence and expiry).
--    `public_share_page` stays as it was for the version before this one.
-- 4. The fence, the purge intents, the operator's revoke and the journal's re-apply know
--    recipient links too.
SET LOCAL ROLE migrator;

CREATE TABLE share_recipient (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id          uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  share_id            uuid NOT NULL REFERENCES share_link (id) ON DELETE CASCADE,
  -- What the family calls the recipient ("Vovó Maria"); shown only to the family.
  name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
  -- SHA-256 of the token's 16 random bytes; the token itself is never stored
  token_hash          bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  expires_at          timestamptz,
  revoked_at          timestamptz,
  revoked_by          text CHECK (length(revoked_by) <= 200),
  view_count          bigint NOT NULL DEFAULT 0 CHECK (view_count >= 0),
  -- Day precision, on purpose: no time, address or user agent of a view is kept.
  last_viewed_on      date,
  version             bigint NOT NULL DEFAULT 0,
  purge_pending_since timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX share_recipient_share_idx ON share_recipient (share_id, created_at);
CREATE INDEX share_recipient_purge_pending_idx ON share_recipient (purge_pending_since)
  WHERE purge_pending_since IS NOT NULL;

CREATE TABLE share_view_day (
  account_id  uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  share_id    uuid NOT NULL REFERENCES share_link (id) ON DELETE CASCADE,
  -- The share's id for its own link, a `share_recipient` id for a recipient's.
  link_id     uuid NOT NULL,
  day         date NOT NULL,
  views       bigint NOT NULL CHECK (views >= 0),
  PRIMARY KEY (link_id, day)
);
CREATE INDEX share_view_day_share_idx ON share_view_day (share_id, day);

-- Families read and write their own rows (app_rw, under the account's scope, like every
-- account-scoped table since V14: app_ro reads none of them); edge_system's functions read and
-- count for the share page.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['share_recipient', 'share_view_day']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY account_isolation ON %I TO app_rw USING (account_id = current_account_id()) WITH CHECK (account_id = current_account_id())', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO app_rw', t);
    EXECUTE format('CREATE POLICY edge_system_access ON %I TO edge_system USING (true) WITH CHECK (true)', t);
    EXECUTE format('CREATE POLICY operator_read ON %I FOR SELECT TO operator_ro USING (true)', t);
    EXECUTE format('GRANT SELECT ON %I TO operator_ro', t);
  END LOOP;
END
$$;
GRANT SELECT, UPDATE ON share_recipient TO edge_system;
GRANT SELECT, INSERT, UPDATE, DELETE ON share_view_day TO edge_system;

SET LOCAL ROLE edge_system;

CREATE FUNCTION share_recipient_changed() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  IF NEW.revoked_at IS DISTINCT FROM OLD.revoked_at OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
     OR NEW.token_hash IS DISTINCT FROM OLD.token_hash OR NEW.share_id IS DISTINCT FROM OLD.share_id THEN
    NEW.version := OLD.version + 1;
    NEW.purge_pending_since := coalesce(OLD.purge_pending_since, clock_timestamp());
  END IF;
  RETURN NEW;
END
$$;

-- The fence of a live link: a share's own token as before (its version and its account's pages
-- version), a recipient's with its own version in front. NULL when the link, or its share, is
-- not live.
CREATE OR REPLACE FUNCTION share_page_fence(p_token_hash bytea) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH r AS (SELECT r.share_id, r.version FROM share_recipient r
             WHERE r.token_hash = p_token_hash AND r.revoked_at IS NULL
               AND (r.expires_at IS NULL OR r.expires_at > now()))
  SELECT coalesce((SELECT r.version::text || ':' FROM r), '') || l.version::text || '.' || a.pages_version::text
  FROM share_link l JOIN account a ON a.id = l.account_id
  WHERE (l.token_hash = p_token_hash OR l.id = (SELECT r.share_id FROM r))
    AND l.revoked_at IS NULL
    AND (l.expires_at IS NULL OR l.expires_at > now())
$$;

-- The page a live link shows (the share's, `public_share_page` of the share's own token), then
-- a newline, then the link: its page key (the share's token hash, hex), its fence and its own
-- expiry. No row for an unknown, revoked or expired link or share. JSON text holds no raw
-- newline, so the first one splits the two.
CREATE FUNCTION public_share_link_page(p_token_hash bytea) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH r AS (SELECT l.token_hash AS page_key, r.expires_at
             FROM share_recipient r JOIN share_link l ON l.id = r.share_id
             WHERE r.token_hash = p_token_hash AND r.revoked_at IS NULL
               AND (r.expires_at IS NULL OR r.expires_at > now())),
       k AS (SELECT coalesce((SELECT page_key FROM r), p_token_hash) AS page_key),
       p AS (SELECT public_share_page(k.page_key) AS page, k.page_key FROM k)
  SELECT p.page || E'\n' || json_build_object(
           'page_key', encode(p.page_key, 'hex'),
           'fence', share_page_fence(p_token_hash),
           'expires_at_ms', (SELECT (extract(epoch FROM r.expires_at) * 1000)::int8 FROM r))::text
  FROM p WHERE p.page IS NOT NULL
$$;

-- Views, tallied at the edge by token hash: a recipient's count on the recipient and on its
-- share, a share's own on the share; each on its link's day. Days older than 31 are dropped for
-- the links counted. Returns how many links were counted.
CREATE OR REPLACE FUNCTION record_share_views(p_hashes bytea[], p_counts integer[]) RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH v AS (SELECT token_hash, sum(n)::bigint AS n FROM unnest(p_hashes, p_counts) AS v(token_hash, n)
             WHERE n > 0 GROUP BY token_hash),
       r AS (UPDATE share_recipient r SET view_count = r.view_count + v.n,
                                         last_viewed_on = (now() AT TIME ZONE 'UTC')::date
             FROM v WHERE r.token_hash = v.token_hash
             RETURNING r.account_id, r.share_id, r.id AS link_id, v.n),
       own AS (SELECT l.account_id, l.id AS share_id, l.id AS link_id, v.n
               FROM share_link l JOIN v ON v.token_hash = l.token_hash),
       counted AS (SELECT * FROM r UNION ALL SELECT * FROM own),
       s AS (UPDATE share_link l SET view_count = l.view_count + c.n, last_viewed_at = now()
             FROM (SELECT share_id, sum(n) AS n FROM counted GROUP BY share_id) c
             WHERE l.id = c.share_id RETURNING 1),
       d AS (INSERT INTO share_view_day AS d (account_id, share_id, link_id, day, views)
             SELECT account_id, share_id, link_id, (now() AT TIME ZONE 'UTC')::date, n FROM counted
             ON CONFLICT (link_id, day) DO UPDATE SET views = d.views + EXCLUDED.views RETURNING 1),
       old AS (DELETE FROM share_view_day o USING counted c
               WHERE o.link_id = c.link_id AND o.day < (now() AT TIME ZONE 'UTC')::date - 31 RETURNING 1)
  SELECT count(*)::integer FROM counted
$$;

-- Purges still to confirm: V12's, and recipient links' own (kind 'link', their token hash).
CREATE OR REPLACE FUNCTION pending_purges(p_min_age interval, p_limit integer)
  RETURNS TABLE (kind text, account_id uuid, version bigint, token_hashes text, pending_seconds bigint)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  SELECT * FROM (
    SELECT 'link', l.account_id, l.version, encode(l.token_hash, 'hex'),
           extract(epoch FROM now() - l.purge_pending_since)::bigint
    FROM share_link l
    WHERE l.purge_pending_since <= now() - p_min_age
    UNION ALL
    SELECT 'link', r.account_id, r.version, encode(r.token_hash, 'hex'),
           extract(epoch FROM now() - r.purge_pending_since)::bigint
    FROM share_recipient r
    WHERE r.purge_pending_since <= now() - p_min_age
    UNION ALL
    SELECT 'account', a.id, a.pages_version, s.token_hashes,
           extract(epoch FROM now() - a.purge_pending_since)::bigint
    FROM account a, account_purge_scope(a.id) s
    WHERE a.purge_pending_since <= now() - p_min_age) p
  ORDER BY 5 DESC
  LIMIT least(greatest(p_limit, 0), 1000)
$$;

CREATE OR REPLACE FUNCTION confirm_purges(p_token_hashes bytea[], p_link_versions bigint[],
                                          p_accounts uuid[], p_account_versions bigint[])
  RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH lv AS (SELECT * FROM unnest(p_token_hashes, p_link_versions) AS v(token_hash, version)),
       av AS (SELECT * FROM unnest(p_accounts, p_account_versions) AS v(id, version)),
       l AS (UPDATE share_link s SET purge_pending_since = NULL FROM lv
             WHERE s.token_hash = lv.token_hash AND s.version <= lv.version
               AND s.purge_pending_since IS NOT NULL RETURNING 1),
       r AS (UPDATE share_recipient s SET purge_pending_since = NULL FROM lv
             WHERE s.token_hash = lv.token_hash AND s.version <= lv.version
               AND s.purge_pending_since IS NOT NULL RETURNING 1),
       a AS (UPDATE account c SET purge_pending_since = NULL FROM av
             WHERE c.id = av.id AND c.pages_version <= av.version
               AND c.purge_pending_since IS NOT NULL RETURNING 1)
  SELECT ((SELECT count(*) FROM l) + (SELECT count(*) FROM r) + (SELECT count(*) FROM a))::integer
$$;

-- An operator's revoke of a leaked link: a recipient's link alone when the URL is one.
CREATE OR REPLACE FUNCTION operator_revoke_share(p_token_hash bytea, p_operator text)
  RETURNS TABLE (account_id uuid, version bigint)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH r AS (UPDATE share_recipient SET revoked_at = coalesce(revoked_at, now()),
                                        revoked_by = coalesce(revoked_by, p_operator)
             WHERE token_hash = p_token_hash
             RETURNING share_recipient.account_id, share_recipient.version),
       l AS (UPDATE share_link SET revoked_at = coalesce(revoked_at, now()), updated_at = now(),
                                   revoked_by = coalesce(revoked_by, p_operator)
             WHERE token_hash = p_token_hash
             RETURNING share_link.account_id, share_link.version)
  SELECT * FROM r UNION ALL SELECT * FROM l
$$;

-- The journal's re-apply (V13) of recipient links' revocations as well.
CREATE OR REPLACE FUNCTION journal_reapply_share_revocations(p_token_hashes bytea[], p_at timestamptz[], p_by text[])
  RETURNS TABLE (token_hash bytea, account_id uuid, version bigint)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH e AS (
    SELECT DISTINCT ON (v.token_hash) v.token_hash, v.at, v.by
    FROM unnest(p_token_hashes, p_at, p_by) AS v(token_hash, at, by)
    ORDER BY v.token_hash, v.at
  ), r AS (
    UPDATE share_recipient s SET revoked_at = coalesce(s.revoked_at, e.at), revoked_by = coalesce(s.revoked_by, e.by)
    FROM e
    WHERE s.token_hash = e.token_hash AND s.revoked_at IS NULL
    RETURNING s.token_hash, s.account_id, s.version
  ), l AS (
    UPDATE share_link l SET revoked_at = coalesce(l.revoked_at, e.at), updated_at = now(),
                            revoked_by = coalesce(l.revoked_by, e.by)
    FROM e
    WHERE l.token_hash = e.token_hash AND l.revoked_at IS NULL
    RETURNING l.token_hash, l.account_id, l.version
  )
  SELECT * FROM r UNION ALL SELECT * FROM l
$$;

REVOKE ALL ON FUNCTION public_share_link_page(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public_share_link_page(bytea) TO app_rw;
REVOKE ALL ON FUNCTION share_recipient_changed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION share_recipient_changed() TO migrator;

SET LOCAL ROLE migrator;
CREATE TRIGGER share_recipient_changed BEFORE UPDATE ON share_recipient
  FOR EACH ROW EXECUTE FUNCTION share_recipient_changed();

RESET ROLE;
