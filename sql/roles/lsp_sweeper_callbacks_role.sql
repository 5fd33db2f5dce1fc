-- The role `lsp-sweeper run --apply lsp-callbacks` connects as: exactly the privileges a sweep
-- that replays missed callbacks to the LSP's own endpoints uses, nothing more. The LSP applies
-- each replayed callback with its own rules, transaction and outbox job, so this role only
-- reads the LSP's tables; it writes nothing but its own schema (the runs, the audit row of
-- each replay with the LSP's answer, the divergences). `--apply db` needs the role of
-- sql/roles/lsp_sweeper_role.sql instead.
--
-- Run by a DBA as the owner of the LSP's tables, after `lsp-sweeper migrate` (migrations run
-- as the owner too, never as this role), in the LSP's database:
--   psql -v ON_ERROR_STOP=1 -d lsp -f sql/roles/lsp_sweeper_callbacks_role.sql
-- Safe to run again (after each migrate). The file holds no password: give the role one with
-- `\password lsp_sweeper_callbacks`, or let it in by peer or certificate authentication.
-- `lsp-sweeper check --apply lsp-callbacks` verifies these privileges from the sweeper's side.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lsp_sweeper_callbacks') THEN
        CREATE ROLE lsp_sweeper_callbacks LOGIN;
    END IF;
END
$$;

-- The LSP's records and outbox: read only. No statement of this mode locks a row (no FOR
-- SHARE, no FOR UPDATE, which would need UPDATE), and none inserts a job.
GRANT USAGE ON SCHEMA public TO lsp_sweeper_callbacks;
GRANT SELECT ON async_rotating_invoices TO lsp_sweeper_callbacks;
GRANT SELECT ON async_rotating_invoice_outbox TO lsp_sweeper_callbacks;
-- The relay flow's table only where the LSP has one (its own PostgreSQL branch does not).
DO $$
BEGIN
    IF to_regclass('lightning_send_mappings') IS NOT NULL THEN
        GRANT SELECT ON lightning_send_mappings TO lsp_sweeper_callbacks;
    END IF;
END
$$;

-- Its own schema: runs, the audit trail and divergences. Tables and sequences a later
-- migration adds get the same rights (default privileges of the role running this file, which
-- runs migrate).
GRANT USAGE ON SCHEMA lsp_sweeper TO lsp_sweeper_callbacks;
GRANT ALL ON ALL TABLES IN SCHEMA lsp_sweeper TO lsp_sweeper_callbacks;
GRANT ALL ON ALL SEQUENCES IN SCHEMA lsp_sweeper TO lsp_sweeper_callbacks;
ALTER DEFAULT PRIVILEGES IN SCHEMA lsp_sweeper GRANT ALL ON TABLES TO lsp_sweeper_callbacks;
ALTER DEFAULT PRIVILEGES IN SCHEMA lsp_sweeper GRANT ALL ON SEQUENCES TO lsp_sweeper_callbacks;
