-- The role `lsp-sweeper run` connects as: exactly the privileges a sweep uses, nothing more.
-- This is the role of `--apply db`, whose own SQL repairs the LSP's tables; `--apply
-- lsp-callbacks` needs only the read-only role of sql/roles/lsp_sweeper_callbacks_role.sql.
--
-- Run by a DBA as the owner of the LSP's tables, after `lsp-sweeper migrate` (migrations run
-- as the owner too, never as this role), in the LSP's database:
--   psql -v ON_ERROR_STOP=1 -d lsp -f sql/roles/lsp_sweeper_role.sql
-- Safe to run again (after each migrate). The file holds no password: give the role one with
-- `\password lsp_sweeper`, or let it in by peer or certificate authentication.
-- `lsp-sweeper check` verifies these privileges from the sweeper's side.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lsp_sweeper') THEN
        CREATE ROLE lsp_sweeper LOGIN;
    END IF;
END
$$;

-- The LSP's records: read both flows; set only what a missed callback sets (DOMAIN.md, "The
-- transitions to apply"). Column UPDATE is also what lets the missing-outbox-job statement
-- hold a record with SELECT ... FOR SHARE.
GRANT USAGE ON SCHEMA public TO lsp_sweeper;
GRANT SELECT ON async_rotating_invoices TO lsp_sweeper;
GRANT UPDATE (status, claimable_at, claim_deadline_height, payment_preimage, updated_at)
    ON async_rotating_invoices TO lsp_sweeper;
-- The relay flow's table only where the LSP has one (its own PostgreSQL branch does not).
DO $$
BEGIN
    IF to_regclass('lightning_send_mappings') IS NOT NULL THEN
        GRANT SELECT ON lightning_send_mappings TO lsp_sweeper;
        GRANT UPDATE (status, claim_deadline_height, payment_preimage, updated_at)
            ON lightning_send_mappings TO lsp_sweeper;
    END IF;
END
$$;

-- The outbox: read which jobs exist, add missing ones (its id is a bigserial: the sequence).
GRANT SELECT, INSERT ON async_rotating_invoice_outbox TO lsp_sweeper;
GRANT USAGE ON SEQUENCE async_rotating_invoice_outbox_id_seq TO lsp_sweeper;

-- Its own schema: runs and the audit trail. Tables and sequences a later migration adds get
-- the same rights (default privileges of the role running this file, which runs migrate).
GRANT USAGE ON SCHEMA lsp_sweeper TO lsp_sweeper;
GRANT ALL ON ALL TABLES IN SCHEMA lsp_sweeper TO lsp_sweeper;
GRANT ALL ON ALL SEQUENCES IN SCHEMA lsp_sweeper TO lsp_sweeper;
ALTER DEFAULT PRIVILEGES IN SCHEMA lsp_sweeper GRANT ALL ON TABLES TO lsp_sweeper;
ALTER DEFAULT PRIVILEGES IN SCHEMA lsp_sweeper GRANT ALL ON SEQUENCES TO lsp_sweeper;
