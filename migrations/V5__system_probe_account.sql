-- The account that owns synthetic queue-probe assets (seed §5.6). A fixed id, so the cron probe
-- can work inside RLS like any other account.
INSERT INTO account (id, name, plan)
VALUES ('00000000-0000-4000-8000-00000000b0b0', 'synthetic probe', 'system')
ON CONFLICT (id) DO NOTHING;
