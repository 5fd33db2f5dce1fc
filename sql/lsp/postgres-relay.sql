-- The relay flow's table in PostgreSQL form. The LSP's own PostgreSQL branch
-- (postgres-schema.sql) has no lightning_send_mappings; this is the LSP's SQLite table
-- (sqlite-schema.sql) with the PostgreSQL types that branch uses for the other tables (BIGSERIAL,
-- BIGINT, TIMESTAMPTZ), for an LSP that keeps its relayed sends in PostgreSQL. lsp-sweeper
-- reconciles the relay flow wherever this table exists and skips it (saying so) where it does
-- not. Not created by `migrate --with-lsp-schema`, which creates the LSP's tables exactly as the
-- LSP does; tests and benchmarks load it to cover the relay flow on PostgreSQL.
CREATE TABLE IF NOT EXISTS lightning_send_mappings (
	id BIGSERIAL PRIMARY KEY,
	payment_hash TEXT NOT NULL UNIQUE,
	outbound_invoice TEXT NOT NULL,
	outbound_asset_id TEXT NULL,
	outbound_asset_amount BIGINT NULL,
	outbound_amount_msat BIGINT NOT NULL,
	payee_pubkey TEXT NOT NULL,
	inbound_invoice TEXT NOT NULL,
	inbound_asset_id TEXT NULL,
	inbound_asset_amount BIGINT NULL,
	inbound_amount_msat BIGINT NOT NULL,
	converted INTEGER NOT NULL DEFAULT 0,
	status TEXT NOT NULL,
	claim_deadline_height BIGINT NULL,
	payment_preimage TEXT NULL,
	last_error TEXT NULL,
	expires_at TIMESTAMPTZ NOT NULL,
	created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
