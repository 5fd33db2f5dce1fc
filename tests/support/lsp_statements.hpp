// The LSP's own statements for its two payment callbacks, in one place for every test tool that
// writes to the LSP's tables as the LSP does (tests/lsp_writer, tests/lsp_sim).
//
// SQLite: utexo-lsp `main`, commit 6cc517f, internal/lspapi/async_order.go and
// lightning_send_store.go (shared/lsp/README.md quotes them). PostgreSQL: the same statements as
// the LSP's migration branch bs/migration-to-postgres (commit f99a127, async_order.go) writes
// them; that branch has no relay flow, so the relay statements are main's, rebound to $n as the
// LSP's rebindPostgres does. Fixed status values that the Go code binds as parameters are
// written as literals; AdvanceLightningSend's statement is built with Sprintf in Go and is
// written out here as it comes out for the two callbacks.
#pragma once

namespace lsp_statements {

namespace sqlite {

// LoadAsyncRotatingInvoiceByPaymentHash: LIMIT 1 and no status filter, so a terminal twin of a
// live row may be the one found.
inline constexpr const char* kLoadInvoiceByHash =
    "SELECT id, order_id, invoice_slot, hash_index, payment_hash, asset_amount, asset_id, "
    "outbound_asset_amount, outbound_asset_id, invoice_string, amount_msat, "
    "claim_deadline_height, payment_preimage, request_invoice_at, request_invoice_bolt11, "
    "outbound_pending_at, outbound_paid_at, expires_at, status, created_at, updated_at "
    "FROM async_rotating_invoices WHERE payment_hash = ? LIMIT 1";
inline constexpr int kInvoiceAmountColumn = 10;
inline constexpr int kInvoiceStatusColumn = 18;

// MarkAsyncRotatingInvoiceClaimable: ? = claim_deadline_height, payment_hash.
inline constexpr const char* kMarkClaimable = R"(UPDATE async_rotating_invoices
SET status = 'claimable',
    claimable_at = COALESCE(claimable_at, CURRENT_TIMESTAMP),
    claim_deadline_height = COALESCE(claim_deadline_height, ?),
    updated_at = CURRENT_TIMESTAMP
WHERE payment_hash = ? AND status = 'active')";

// MarkAsyncRotatingInvoiceOutboundClaimed: ? = payment_preimage, payment_hash.
inline constexpr const char* kMarkOutboundClaimed = R"(UPDATE async_rotating_invoices
SET status = 'outbound_claimed', payment_preimage = COALESCE(payment_preimage, ?),
    updated_at = CURRENT_TIMESTAMP
WHERE payment_hash = ? AND status = 'outbound_paid')";

// enqueueAsyncRotatingInvoiceOutboxTx: ? = payment_hash, action.
inline constexpr const char* kEnqueue =
    R"(INSERT OR IGNORE INTO async_rotating_invoice_outbox (payment_hash, action, status, available_at)
VALUES (?, ?, 'pending', CURRENT_TIMESTAMP))";

// LoadLightningSendByPaymentHash (payment_hash is unique there).
inline constexpr const char* kLoadRelayByHash =
    "SELECT id, payment_hash, outbound_invoice, outbound_asset_id, outbound_asset_amount, "
    "outbound_amount_msat, payee_pubkey, inbound_invoice, inbound_asset_id, "
    "inbound_asset_amount, inbound_amount_msat, converted, status, claim_deadline_height, "
    "payment_preimage, last_error, expires_at, created_at, updated_at "
    "FROM lightning_send_mappings WHERE payment_hash = ?";
inline constexpr int kRelayStatusColumn = 12;

// AdvanceLightningSend from markLightningSendClaimable: ? = claim_deadline_height, payment_hash.
inline constexpr const char* kRelayMarkClaimable =
    "UPDATE lightning_send_mappings SET status = 'claimable', updated_at = CURRENT_TIMESTAMP, "
    "claim_deadline_height = ? WHERE status IN ('quoted') AND payment_hash = ?";

// AdvanceLightningSend from markLightningSendPreimage: ? = payment_preimage, payment_hash.
inline constexpr const char* kRelayMarkOutboundClaimed =
    "UPDATE lightning_send_mappings SET status = 'outbound_claimed', "
    "updated_at = CURRENT_TIMESTAMP, payment_preimage = ? "
    "WHERE status IN ('outbound_pending', 'outbound_paid') AND payment_hash = ?";

inline constexpr const char* kHasRelayTable =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'lightning_send_mappings'";

}  // namespace sqlite

namespace postgres {

// The branch's column list: its table has no outbound_asset_* columns.
inline constexpr const char* kLoadInvoiceByHash =
    "SELECT id, order_id, invoice_slot, hash_index, payment_hash, asset_amount, asset_id, "
    "invoice_string, amount_msat, claim_deadline_height, payment_preimage, request_invoice_at, "
    "request_invoice_bolt11, outbound_pending_at, outbound_paid_at, expires_at, status, "
    "created_at, updated_at FROM async_rotating_invoices WHERE payment_hash = $1 LIMIT 1";
inline constexpr int kInvoiceAmountColumn = 8;
inline constexpr int kInvoiceStatusColumn = 16;

inline constexpr const char* kMarkClaimable = R"(UPDATE async_rotating_invoices
SET status = 'claimable',
    claimable_at = COALESCE(claimable_at, CURRENT_TIMESTAMP),
    claim_deadline_height = COALESCE(claim_deadline_height, $1),
    updated_at = CURRENT_TIMESTAMP
WHERE payment_hash = $2 AND status = 'active')";

inline constexpr const char* kMarkOutboundClaimed = R"(UPDATE async_rotating_invoices
SET status = 'outbound_claimed', payment_preimage = COALESCE(payment_preimage, $1),
    updated_at = CURRENT_TIMESTAMP
WHERE payment_hash = $2 AND status = 'outbound_paid')";

// The only unique key besides id is (payment_hash, action).
inline constexpr const char* kEnqueue =
    R"(INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status, available_at)
VALUES ($1, $2, 'pending', CURRENT_TIMESTAMP)
ON CONFLICT DO NOTHING)";

inline constexpr const char* kLoadRelayByHash =
    "SELECT id, payment_hash, outbound_invoice, outbound_asset_id, outbound_asset_amount, "
    "outbound_amount_msat, payee_pubkey, inbound_invoice, inbound_asset_id, "
    "inbound_asset_amount, inbound_amount_msat, converted, status, claim_deadline_height, "
    "payment_preimage, last_error, expires_at, created_at, updated_at "
    "FROM lightning_send_mappings WHERE payment_hash = $1";
inline constexpr int kRelayStatusColumn = 12;

inline constexpr const char* kRelayMarkClaimable =
    "UPDATE lightning_send_mappings SET status = 'claimable', updated_at = CURRENT_TIMESTAMP, "
    "claim_deadline_height = $1 WHERE status IN ('quoted') AND payment_hash = $2";

inline constexpr const char* kRelayMarkOutboundClaimed =
    "UPDATE lightning_send_mappings SET status = 'outbound_claimed', "
    "updated_at = CURRENT_TIMESTAMP, payment_preimage = $1 "
    "WHERE status IN ('outbound_pending', 'outbound_paid') AND payment_hash = $2";

// sql/lsp/postgres-relay.sql adds the table where a test wants the relay flow.
inline constexpr const char* kHasRelayTable =
    "SELECT to_regclass('lightning_send_mappings') IS NOT NULL";

}  // namespace postgres

}  // namespace lsp_statements
