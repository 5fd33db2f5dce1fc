// What the parts of the SQLite backend share: the one connection of a Backend (and its sweep
// lock), the LSP's record tables, and JSON arrays for list parameters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "db.hpp"
#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::store::sqlite {

// One open database: the connection the three parts of a Backend share and, once taken, the
// sweep lock's file descriptor. Destroyed with the last part.
struct Session {
  explicit Session(const std::string& path, OpenMode mode) : db(path, mode) {}
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  Db db;
  int lock_fd = -1;
};

// The table each flow keeps its records in. The only place that names the LSP's record tables;
// these are constants, never outside input, so composing them into statement text is safe.
struct RecordTable {
  Flow flow;
  std::string_view table;
  std::string_view amount_column;  // the inbound amount the node's amt_msat is checked against
  bool hash_indexed;               // the LSP's DDL indexes payment_hash (UNIQUE)
};

inline constexpr RecordTable kRecordTables[] = {
    {Flow::Apay, "async_rotating_invoices", "amount_msat", false},
    {Flow::Relay, "lightning_send_mappings", "inbound_amount_msat", true},
};

inline constexpr std::string_view kOutboxTable = "async_rotating_invoice_outbox";

const RecordTable& record_table(Flow flow);

bool table_exists(Db& db, std::string_view name);

// A JSON array of `values`, bound as one parameter and read with json_each(?).
std::string json_array(const std::vector<std::string>& values);
std::string json_array(const std::vector<std::int64_t>& values);

// "apply <kind> <flow> <hash>", for errors.
std::string repair_context(const plan::Repair& repair);

// The columns of lsp_sweeper_actions every audit row sets, ?1-?9 of its INSERT as bind_audit
// binds them. The repairs of the sweeper's own SQL leave `via` and the callback columns to their
// defaults (via = 'db', NULL); a replayed callback's row sets them too (ledger.cpp).
inline constexpr std::string_view kAuditColumns =
    "run_id, kind, flow, record_id, payment_hash, from_status, to_status, outbox_action, applied";
void bind_audit(Stmt& insert, const std::string& run_id, const plan::Repair& repair, bool applied);

std::unique_ptr<LspRecords> make_records(std::shared_ptr<Session> session);
std::unique_ptr<Applier> make_applier(std::shared_ptr<Session> session);
std::unique_ptr<Ledger> make_ledger(std::shared_ptr<Session> session);

}  // namespace lsp_sweeper::store::sqlite
