-- The account that owns synthetic queue-probe assets (seed §5.6). A fixed id, so the cron probe
-- can work inside RLS like any other account. Inserted as edge_system, whose only rights on
-- `account` are over system accounts: the table forces RLS, even on its owner.
SET LOCAL ROLE migrator;  -- objects belong to migrator (RESET at the end, before refinery records the file)

GRANT SELECT, INSERT ON account TO edge_system;
CREATE POLICY edge_system_system_accounts ON account TO edge_system USING (plan = 'system') WITH CHECK (plan = 'system');

SET LOCAL ROLE edge_system;
INSERT INTO account (id, name, plan)
VALUES ('00000000-0000-4000-8000-00000000b0b0', 'synthetic probe', 'system')
ON CONFLICT (id) DO NOTHING;

RESET ROLE;
