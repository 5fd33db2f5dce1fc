-- The LSP's own order tables, in PostgreSQL form.
--
-- These tables belong to the LSP (utexo-lsp), not to lsp-sweeper: in production the LSP's
-- own migrations create them and lsp-sweeper only reads and conditionally updates them.
-- This file exists for development, tests and the demo (`lsp-sweeper migrate --with-lsp-schema`).
-- Every column name is the LSP's; the PostgreSQL types are: bigint for amounts (msat),
-- block heights and asset amounts, timestamptz for points in time, text for hashes,
-- preimages and invoices (lowercase hex, as the LSP stores them).
--
-- Idempotent: every statement can run again on a database that already has the tables.

-- One APay order per payer (peer): the rotating invoice it is currently served.
CREATE TABLE IF NOT EXISTS async_orders (
    order_id               bigserial   PRIMARY KEY,
    peer_pubkey            text        NOT NULL UNIQUE,
    status                 text        NOT NULL,
    accepted_through_index bigint,
    current_invoice_slot   bigint,
    current_hash_index     bigint,
    current_payment_hash   text,
    current_invoice_id     bigint,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- APay async payments, one row per HODL invoice of an order. Status order:
--   reserved < active < claimable < outbound_requested < outbound_pending < outbound_paid
--   < outbound_claimed < inbound_claimed; terminal: inbound_cancelled, outbound_cancelled,
--   failed.
-- The node's `claimable` callback moves active -> claimable; its `payment_sent` callback
-- moves outbound_paid -> outbound_claimed.
CREATE TABLE IF NOT EXISTS async_rotating_invoices (
    id                     bigserial   PRIMARY KEY,
    order_id               bigint      NOT NULL REFERENCES async_orders (order_id),
    invoice_slot           bigint      NOT NULL,
    hash_index             bigint,
    -- The key every callback (and lsp-sweeper) looks records up by.
    payment_hash           text        UNIQUE,
    asset_amount           bigint,
    asset_id               text,
    outbound_asset_amount  bigint,
    outbound_asset_id      text,
    invoice_string         text,
    amount_msat            bigint      NOT NULL,
    claimable_at           timestamptz,
    claim_deadline_height  bigint,
    outbound_pending_at    timestamptz,
    outbound_paid_at       timestamptz,
    request_invoice_at     timestamptz,
    request_invoice_bolt11 text,
    payment_preimage       text,
    expires_at             timestamptz NOT NULL,
    status                 text        NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, invoice_slot)
);

-- Relayed sends: an inbound HODL payment that pays an outbound invoice. Status order:
--   quoted < claimable < outbound_pending < outbound_paid < outbound_claimed < settled;
--   terminal: cancelled, failed.
-- The `claimable` callback moves quoted -> claimable; `payment_sent` moves outbound_pending
-- or outbound_paid -> outbound_claimed.
CREATE TABLE IF NOT EXISTS lightning_send_mappings (
    id                    bigserial   PRIMARY KEY,
    payment_hash          text        NOT NULL UNIQUE,
    outbound_invoice      text,
    outbound_asset_id     text,
    outbound_asset_amount bigint,
    outbound_amount_msat  bigint,
    payee_pubkey          text,
    inbound_invoice       text,
    inbound_asset_id      text,
    inbound_asset_amount  bigint,
    inbound_amount_msat   bigint,
    converted             boolean     NOT NULL DEFAULT false,
    status                text        NOT NULL,
    claim_deadline_height bigint,
    payment_preimage      text,
    last_error            text,
    expires_at            timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- The durable work that follows a callback, shared by both flows and drained by the LSP.
-- UNIQUE (payment_hash, action) is what makes a job idempotent: whoever inserts it second
-- (the live callback or lsp-sweeper) does nothing, via ON CONFLICT DO NOTHING.
CREATE TABLE IF NOT EXISTS async_rotating_invoice_outbox (
    id           bigserial   PRIMARY KEY,
    payment_hash text        NOT NULL,
    action       text        NOT NULL,
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (payment_hash, action)
);
