-- Revocation that holds (issue 27), expand-only.
--
-- 1. A page's fence. A share page is rendered from rows that can change while it is being
--    rendered and written into the edge cache. The fence is a version the render read together
--    with the page (`public_share_page(…)->'fence'`) and that the writer reads again right after
--    its cache write (`share_page_fence`): if they differ, or the link is no longer live, the
--    writer removes what it wrote. `share_link.version` counts the link's own changes;
--    `account.pages_version` counts changes to what any of the account's pages show (moments,
--    assets, children, links deleted).
-- 2. A purge intent, durable before the edge answers. The same triggers set
--    `purge_pending_since` on the link (its own changes) or on the account (everything else), in
--    the transaction of the change itself, whoever made it (the edge, the origin, an operator).
--    The edge clears it once the zone purge API accepted the purge of that link's or account's
--    cache tag (`confirm_purges`, by version: a later change stays pending); the cron sweep
--    purges whatever is still pending (`pending_purges`). No outbox table: the intent is state of the row it is about.
SET LOCAL ROLE migrator;

ALTER TABLE account ADD COLUMN pages_version bigint NOT NULL DEFAULT 0;
ALTER TABLE account ADD COLUMN purge_pending_since timestamptz;
ALTER TABLE share_link ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE share_link ADD COLUMN purge_pending_since timestamptz;
-- Who revoked a link when it was not its family (an operator, for a leaked link), and why.
ALTER TABLE share_link ADD COLUMN revoked_by text CHECK (length(revoked_by) <= 200);
CREATE INDEX account_purge_pending_idx ON account (purge_pending_since) WHERE purge_pending_since IS NOT NULL;
CREATE INDEX share_link_purge_pending_idx ON share_link (purge_pending_since) WHERE purge_pending_since IS NOT NULL;

-- The account row is updated by the triggers below (owned by edge_system), never read by it
-- beyond these columns' needs.
CREATE POLICY edge_system_access ON account TO edge_system USING (true) WITH CHECK (true);
GRANT SELECT, UPDATE ON account TO edge_system;

SET LOCAL ROLE edge_system;

-- A change to what the account's pages show: bump the version, note the purge (keeping the
-- oldest pending time, so the sweep's age is the age of the oldest unpurged change).
CREATE FUNCTION note_account_pages_changed(p_account uuid) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  UPDATE account SET pages_version = pages_version + 1,
                     purge_pending_since = coalesce(purge_pending_since, clock_timestamp())
  WHERE id = p_account
$$;

CREATE FUNCTION share_link_changed() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  IF NEW.revoked_at IS DISTINCT FROM OLD.revoked_at OR NEW.title IS DISTINCT FROM OLD.title
     OR NEW.moment_ids IS DISTINCT FROM OLD.moment_ids OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
     OR NEW.child_id IS DISTINCT FROM OLD.child_id OR NEW.token_hash IS DISTINCT FROM OLD.token_hash THEN
    NEW.version := OLD.version + 1;
    NEW.purge_pending_since := coalesce(OLD.purge_pending_since, clock_timestamp());
  END IF;
  RETURN NEW;
END
$$;

-- Everything but the link's own row: the account holds the intent (a deleted link has no row
-- left to hold it).
CREATE FUNCTION account_pages_changed() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  PERFORM note_account_pages_changed(OLD.account_id);
  RETURN NULL;
END
$$;

-- The fence of a live link's page, as text; NULL when the link is not live.
CREATE FUNCTION share_page_fence(p_token_hash bytea) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  SELECT l.version::text || '.' || a.pages_version::text
  FROM share_link l JOIN account a ON a.id = l.account_id
  WHERE l.token_hash = p_token_hash
    AND l.revoked_at IS NULL
    AND (l.expires_at IS NULL OR l.expires_at > now())
$$;

-- What a live link shows, with what the edge needs to tag and fence its cached copies: the
-- account (its cache tag) and the fence, read in the same statement as the page.
CREATE OR REPLACE FUNCTION public_share_page(p_token_hash bytea) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  SELECT json_build_object(
           'account_id', l.account_id,
           'fence', l.version::text || '.' || a.pages_version::text,
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
                                 'alt', a2.alt_text, 'width', a2.width, 'height', a2.height, 'previews', a2.derivatives)
                               ORDER BY a2.created_at, a2.id)
                        FROM asset a2
                        WHERE a2.moment_id = m.id AND a2.account_id = l.account_id AND a2.status = 'ready'
                          AND a2.width IS NOT NULL AND a2.height IS NOT NULL
                          -- CASE, not AND: only an array may be looked into.
                          AND CASE WHEN jsonb_typeof(a2.derivatives) = 'array' AND jsonb_array_length(a2.derivatives) > 0
                                   THEN NOT EXISTS (
                                     SELECT 1 FROM jsonb_array_elements(a2.derivatives) d
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
  JOIN account a ON a.id = l.account_id
  WHERE l.token_hash = p_token_hash
    AND l.revoked_at IS NULL
    AND (l.expires_at IS NULL OR l.expires_at > now())
$$;

-- What an account-wide purge must reach in this data center, and the version it covers: the
-- account's pages version and its live links' token hashes (comma-separated hex), read in the
-- transaction of the change that called for it, or right after it.
CREATE FUNCTION account_purge_scope(p_account uuid) RETURNS TABLE (version bigint, token_hashes text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  SELECT a.pages_version,
         coalesce((SELECT string_agg(encode(l.token_hash, 'hex'), ',' ORDER BY l.created_at)
                   FROM (SELECT token_hash, created_at FROM share_link
                         WHERE account_id = a.id AND revoked_at IS NULL
                         ORDER BY created_at LIMIT 1000) l), '')
  FROM account a WHERE a.id = p_account
$$;

-- Purges still to confirm, oldest first, pending for at least p_min_age (the edge's own try
-- gets that long before the sweep repeats it): a link, or an account with its live links (what
-- a data center may hold of it), each with the version a purge asked for now covers. Token
-- hashes as comma-separated hex (read from one simple-query message).
CREATE FUNCTION pending_purges(p_min_age interval, p_limit integer)
  RETURNS TABLE (kind text, account_id uuid, version bigint, token_hashes text, pending_seconds bigint)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  SELECT * FROM (
    SELECT 'link', l.account_id, l.version, encode(l.token_hash, 'hex'),
           extract(epoch FROM now() - l.purge_pending_since)::bigint
    FROM share_link l
    WHERE l.purge_pending_since <= now() - p_min_age
    UNION ALL
    SELECT 'account', a.id, a.pages_version, s.token_hashes,
           extract(epoch FROM now() - a.purge_pending_since)::bigint
    FROM account a, account_purge_scope(a.id) s
    WHERE a.purge_pending_since <= now() - p_min_age) p
  ORDER BY 5 DESC
  LIMIT least(greatest(p_limit, 0), 1000)
$$;

-- The purge of these links' and accounts' tags was accepted, asked for once they were at these
-- versions: what they were pending for is done. A change made since (a higher version) stays
-- pending, so a purge asked for before it never clears it.
CREATE FUNCTION confirm_purges(p_token_hashes bytea[], p_link_versions bigint[],
                               p_accounts uuid[], p_account_versions bigint[])
  RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  WITH lv AS (SELECT * FROM unnest(p_token_hashes, p_link_versions) AS v(token_hash, version)),
       av AS (SELECT * FROM unnest(p_accounts, p_account_versions) AS v(id, version)),
       l AS (UPDATE share_link s SET purge_pending_since = NULL FROM lv
             WHERE s.token_hash = lv.token_hash AND s.version <= lv.version
               AND s.purge_pending_since IS NOT NULL RETURNING 1),
       a AS (UPDATE account c SET purge_pending_since = NULL FROM av
             WHERE c.id = av.id AND c.pages_version <= av.version
               AND c.purge_pending_since IS NOT NULL RETURNING 1)
  SELECT ((SELECT count(*) FROM l) + (SELECT count(*) FROM a))::integer
$$;

-- An operator's revoke of a leaked link (seed §9.4), by its token hash, without the family's
-- session: who is kept on the row (the reason goes to the audit log line). Returns the account
-- and the link's version (no row for no such link).
CREATE FUNCTION operator_revoke_share(p_token_hash bytea, p_operator text)
  RETURNS TABLE (account_id uuid, version bigint)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
  UPDATE share_link SET revoked_at = coalesce(revoked_at, now()), updated_at = now(),
                        revoked_by = coalesce(revoked_by, p_operator)
  WHERE token_hash = p_token_hash
  RETURNING share_link.account_id, share_link.version
$$;

DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['share_page_fence(bytea)', 'pending_purges(interval, integer)',
      'confirm_purges(bytea[], bigint[], uuid[], bigint[])',
      'account_purge_scope(uuid)', 'operator_revoke_share(bytea, text)']
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO app_rw', f);
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION note_account_pages_changed(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION share_link_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION account_pages_changed() FROM PUBLIC;
-- The tables' owner attaches them (CREATE TRIGGER needs EXECUTE on the function).
GRANT EXECUTE ON FUNCTION share_link_changed(), account_pages_changed() TO migrator;

SET LOCAL ROLE migrator;  -- the tables' owner makes their triggers
CREATE TRIGGER share_link_changed BEFORE UPDATE ON share_link
  FOR EACH ROW EXECUTE FUNCTION share_link_changed();
CREATE TRIGGER share_link_deleted AFTER DELETE ON share_link
  FOR EACH ROW EXECUTE FUNCTION account_pages_changed();
CREATE TRIGGER child_changed AFTER UPDATE OF name OR DELETE ON child
  FOR EACH ROW EXECUTE FUNCTION account_pages_changed();
CREATE TRIGGER moment_deleted AFTER DELETE ON moment
  FOR EACH ROW EXECUTE FUNCTION account_pages_changed();
CREATE TRIGGER moment_changed AFTER UPDATE ON moment
  FOR EACH ROW
  WHEN (NEW.visibility IS DISTINCT FROM OLD.visibility OR NEW.title IS DISTINCT FROM OLD.title
        OR NEW.body IS DISTINCT FROM OLD.body OR NEW.occurred_on IS DISTINCT FROM OLD.occurred_on
        OR NEW.child_id IS DISTINCT FROM OLD.child_id)
  EXECUTE FUNCTION account_pages_changed();
-- An asset a page may show (ready) that stops being shown, or changes what is shown of it. A
-- new asset becoming ready adds to pages without hiding anything: no purge (pages refresh
-- within max-age).
CREATE TRIGGER asset_deleted AFTER DELETE ON asset
  FOR EACH ROW WHEN (OLD.status = 'ready')
  EXECUTE FUNCTION account_pages_changed();
CREATE TRIGGER asset_changed AFTER UPDATE ON asset
  FOR EACH ROW
  WHEN (OLD.status = 'ready' AND (NEW.status IS DISTINCT FROM OLD.status
        OR NEW.moment_id IS DISTINCT FROM OLD.moment_id OR NEW.derivatives IS DISTINCT FROM OLD.derivatives
        OR NEW.alt_text IS DISTINCT FROM OLD.alt_text))
  EXECUTE FUNCTION account_pages_changed();

RESET ROLE;
