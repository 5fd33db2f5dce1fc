// Applier on the LSP's SQLite file: each repair is the LSP's own conditional UPDATE and its own
// INSERT OR IGNORE of the job, so the rows written are those its callback handler would write.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sqlite_store.hpp"

namespace lsp_sweeper::store::sqlite {

namespace {

// A write transaction takes repairs until its statements have run this long or it holds
// kMaxRepairsPerTransaction, then commits. The LSP's writers should never wait more than
// ~100 ms behind the sweeper, and its own payment_sent takes up to ~60 ms alone: a repair
// dirties two or three pages at random places (the record, the job's index entry, the audit
// row), and the commit writes each twice (journal and file), so the commit costs about as long
// as the statements did. Measured on the bench's 200k seed (README "Performance").
constexpr auto kStatementBudget = std::chrono::milliseconds(10);
constexpr std::size_t kMaxRepairsPerTransaction = 500;

// What each missed callback sets besides status and updated_at, in the LSP's own form
// (lsp/README.md); ?1 is the deadline height or the preimage. APay keeps a claimable_at or
// deadline the LSP already wrote: the first claimable callback is the one that counts.
struct CallbackUpdate {
  plan::RepairKind kind;
  Flow flow;
  std::string_view to;
  std::string_view sets;
};

constexpr CallbackUpdate kCallbackUpdates[] = {
    {plan::RepairKind::MissedClaimable, Flow::Apay, "claimable",
     "status = 'claimable', claimable_at = COALESCE(claimable_at, CURRENT_TIMESTAMP), "
     "claim_deadline_height = COALESCE(claim_deadline_height, ?1), updated_at = "
     "CURRENT_TIMESTAMP"},
    {plan::RepairKind::MissedClaimable, Flow::Relay, "claimable",
     "status = 'claimable', claim_deadline_height = ?1, updated_at = CURRENT_TIMESTAMP"},
    {plan::RepairKind::MissedPaymentSent, Flow::Apay, "outbound_claimed",
     "status = 'outbound_claimed', payment_preimage = COALESCE(payment_preimage, ?1), "
     "updated_at = CURRENT_TIMESTAMP"},
    {plan::RepairKind::MissedPaymentSent, Flow::Relay, "outbound_claimed",
     "status = 'outbound_claimed', payment_preimage = COALESCE(payment_preimage, ?1), "
     "updated_at = CURRENT_TIMESTAMP"},
};

const CallbackUpdate* callback_update(const plan::Repair& repair) {
  for (const CallbackUpdate& u : kCallbackUpdates) {
    if (u.kind == repair.kind && u.flow == repair.flow) return &u;
  }
  return nullptr;
}

// The LSP's own enqueue: a job that already exists (in any status) is kept as it is.
constexpr std::string_view kEnqueue =
    "INSERT OR IGNORE INTO async_rotating_invoice_outbox (payment_hash, action, status, "
    "available_at) VALUES (?, ?, 'pending', CURRENT_TIMESTAMP)";

const std::string kAudit = "INSERT INTO lsp_sweeper_actions (" + std::string(kAuditColumns) +
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

// The conditional UPDATE of a missed callback: ?1 the value, ?2 the row id, ?3 the hash, ?4 the
// statuses it must still be in (JSON), ?5 the action. A job of that action the LSP will not run
// again (done, failed) makes the transition useless, so the row is left for a person.
std::string update_statement(const RecordTable& t, const CallbackUpdate& u) {
  return "UPDATE " + std::string(t.table) + " SET " + std::string(u.sets) +
         " WHERE id = ?2 AND payment_hash = ?3 AND status IN (SELECT value FROM json_each(?4)) "
         "AND NOT EXISTS (SELECT 1 FROM " +
         std::string(kOutboxTable) +
         " o WHERE o.payment_hash = ?3 AND o.action = ?5 AND o.status IN ('done', 'failed'))";
}

// The job of a record already in its state, only while it still is: ?1 the hash, ?2 the
// action, ?3 the row id, ?4 the statuses (JSON). Inside the write transaction nobody can move
// the row between the check and the insert.
std::string missing_job_statement(const RecordTable& t) {
  return "INSERT OR IGNORE INTO " + std::string(kOutboxTable) +
         " (payment_hash, action, status, available_at) SELECT ?1, ?2, 'pending', "
         "CURRENT_TIMESTAMP WHERE EXISTS (SELECT 1 FROM " +
         std::string(t.table) +
         " WHERE id = ?3 AND payment_hash = ?1 AND status IN (SELECT value FROM json_each(?4)))";
}

// The planner never builds these; refusing them keeps a claimable record from ever getting a
// NULL deadline the LSP's next job would trip over, and a record from a status its columns
// do not imply (the LSP's migration rewrites statuses from them).
void validate(const plan::Repair& repair) {
  const auto refuse = [&](const std::string& why) {
    throw StoreError(repair_context(repair) + ": " + why);
  };
  if (repair.kind == plan::RepairKind::MissedClaimable && !repair.claim_deadline_height) {
    refuse("no claim deadline height");
  }
  if (repair.kind == plan::RepairKind::MissedPaymentSent && !repair.preimage) {
    refuse("no preimage");
  }
  if (repair.from.empty()) refuse("no status to move from");
  if (repair.outbox_action.empty()) refuse("no outbox action");
  const CallbackUpdate* update = callback_update(repair);
  if (update && repair.to != update->to) {
    refuse("moves to " + repair.to + ", but this transition sets " + std::string(update->to));
  }
}

class SqliteApplier final : public Applier {
 public:
  explicit SqliteApplier(std::shared_ptr<Session> session) : session_(std::move(session)) {}

  void apply(std::vector<plan::Repair>& repairs, const std::string& run_id) override {
    for (const plan::Repair& repair : repairs) validate(repair);
    for (std::size_t begin = 0; begin < repairs.size();) {
      begin = apply_batch(repairs, begin, run_id);
    }
  }

 private:
  struct Statements {
    std::map<std::pair<plan::RepairKind, Flow>, Stmt> repair;
    std::optional<Stmt> enqueue, audit;
  };

  // Repairs from `begin` on in one write transaction, within its budget; `applied` is set only
  // once it committed. Returns where the next transaction starts.
  std::size_t apply_batch(std::vector<plan::Repair>& repairs, std::size_t begin,
                          const std::string& run_id) {
    Db& db = session_->db;
    const std::size_t last = std::min(repairs.size(), begin + kMaxRepairsPerTransaction);
    std::vector<bool> applied;
    std::size_t current = begin;
    try {
      Statements statements;
      Transaction txn(db, Transaction::Kind::Write, "update, outbox job and audit row");
      const auto started = std::chrono::steady_clock::now();
      do {
        applied.push_back(apply_one(statements, repairs[current], run_id));
        ++current;
      } while (current < last && std::chrono::steady_clock::now() - started < kStatementBudget);
      const std::size_t end = current;
      current = begin;  // a failed commit is the whole batch's
      txn.commit();
      current = end;
    } catch (const StoreBusy& e) {
      throw StoreBusy(repair_context(repairs[current]) + ": " + e.what());
    } catch (const StoreError& e) {
      throw StoreError(repair_context(repairs[current]) + ": " + e.what());
    }
    for (std::size_t i = begin; i < current; ++i) repairs[i].applied = applied[i - begin];
    return current;
  }

  bool apply_one(Statements& s, const plan::Repair& r, const std::string& run_id) {
    Db& db = session_->db;
    const RecordTable& t = record_table(r.flow);
    const std::string from = json_array(r.from);
    auto [found, inserted] = s.repair.try_emplace({r.kind, r.flow}, db,
                                                  r.kind == plan::RepairKind::MissingOutboxJob
                                                      ? missing_job_statement(t)
                                                      : update_statement(t, *callback_update(r)),
                                                  "conditional update");
    Stmt& change = found->second;
    bool applied = false;
    if (r.kind == plan::RepairKind::MissingOutboxJob) {
      change.bind(1, r.payment_hash).bind(2, r.outbox_action).bind(3, r.row_id).bind(4, from);
      applied = change.run() == 1;
    } else {
      if (r.kind == plan::RepairKind::MissedClaimable) {
        change.bind(1, *r.claim_deadline_height);
      } else {
        change.bind(1, *r.preimage);
      }
      change.bind(2, r.row_id).bind(3, r.payment_hash).bind(4, from).bind(5, r.outbox_action);
      applied = change.run() == 1;
      if (applied) {
        if (!s.enqueue) s.enqueue.emplace(db, kEnqueue, "outbox job");
        s.enqueue->bind(1, r.payment_hash).bind(2, r.outbox_action).run();
        s.enqueue->reset();
      }
    }
    change.reset();
    if (!s.audit) s.audit.emplace(db, kAudit, "audit row");
    bind_audit(*s.audit, run_id, r, applied);
    s.audit->run();
    s.audit->reset();
    return applied;
  }

  std::shared_ptr<Session> session_;
};

}  // namespace

std::unique_ptr<Applier> make_applier(std::shared_ptr<Session> session) {
  return std::make_unique<SqliteApplier>(std::move(session));
}

}  // namespace lsp_sweeper::store::sqlite
