-- lsp-sweeper's own schema for SQLite, version 3: the audit trail names the LSP row a repair
-- touched, since a payment hash is not unique in the LSP's APay table (a released reservation
-- leaves a terminal row beside a live one of the same hash).
-- To apply by hand: run this file, then
--   INSERT INTO lsp_sweeper_schema_version (version) VALUES (3);

ALTER TABLE lsp_sweeper_actions ADD COLUMN record_id INTEGER;  -- the row's id in its flow's table
