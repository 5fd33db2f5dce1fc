// Ledger on the LSP's SQLite file: the sweeper's own lsp_sweeper_ tables, and the sweep lock as
// a lock on a file beside the database.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sqlite_store.hpp"

namespace lsp_sweeper::store::sqlite {

namespace {

// The sweeper's own timestamps: UTC text with milliseconds, which sorts as text.
constexpr std::string_view kNow = "strftime('%Y-%m-%d %H:%M:%f', 'now')";

// Unix seconds (floor) of a timestamp column.
std::string epoch(std::string_view column) {
  return "CAST(strftime('%s', " + std::string(column) + ") AS INTEGER)";
}

// Columns 0-8 of a divergence row, read by to_stored_divergence.
std::string divergence_columns() {
  return "id, kind, COALESCE(flow, ''), payment_hash, detail, needs_person, " +
         epoch("first_seen_at") + ", " + epoch("last_seen_at") + ", " + epoch("last_alerted_at");
}

StoredDivergence to_stored_divergence(const Stmt& row, bool is_new) {
  StoredDivergence d;
  d.id = row.int64(0);
  d.divergence.kind =
      plan::parse_divergence_kind(row.text(1)).value_or(plan::DivergenceKind::UnexplainedState);
  d.divergence.flow = parse_flow(row.text(2));
  d.divergence.payment_hash = row.text(3);
  d.divergence.detail = row.text(4);
  d.divergence.needs_person = row.int64(5) != 0;
  d.is_new = is_new;
  d.first_seen_at = row.int64(6);
  d.last_seen_at = row.int64(7);
  d.last_alerted_at = row.optional_int64(8);
  return d;
}

class SqliteLedger final : public Ledger {
 public:
  explicit SqliteLedger(std::shared_ptr<Session> session) : session_(std::move(session)) {}

  // A lock on a sidecar file, not inside the database: SQLite has no advisory locks, and a
  // lock row would have to be held by a write transaction open for the whole run, which would
  // lock the LSP out of its own file. flock() is released by the kernel when the process dies,
  // so a crashed run never leaves it behind.
  //
  // On a read-only database (`history`, a dry run) the file is opened read-only and never
  // created: flock() needs no write access, and a lock file that is not there was never
  // taken, so no run holds it.
  bool try_lock_sweep() override {
    if (session_->lock_fd >= 0) return true;
    const std::string path = session_->db.path() + ".lsp-sweeper-lock";
    const bool read_only = session_->db.read_only();
    const int fd = read_only ? ::open(path.c_str(), O_RDONLY | O_CLOEXEC)
                             : ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && read_only && errno == ENOENT) return true;
    if (fd < 0) {
      throw StoreError("taking the sweep lock: opening " + path + ": " + std::strerror(errno));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd);
      if (error == EWOULDBLOCK) return false;
      throw StoreError("taking the sweep lock " + path + ": " + std::strerror(error));
    }
    session_->lock_fd = fd;
    return true;
  }

  void unlock_sweep() override {
    if (session_->lock_fd < 0) return;
    ::close(session_->lock_fd);  // releases the flock
    session_->lock_fd = -1;
  }

  // Every write here is its own Transaction::Kind::Write, never an autocommit statement: one
  // of those meeting the LSP inside a read would wait for it in SQLite's busy handler holding
  // RESERVED, and fail the LSP's UPDATE (db.hpp, Transaction).
  void begin_run(const std::string& run_id, bool dry_run) override {
    const std::string step = "begin run " + run_id;
    Transaction txn(session_->db, Transaction::Kind::Write, step);
    Stmt insert(session_->db,
                "INSERT INTO lsp_sweeper_runs (run_id, started_at, dry_run, status) VALUES (?, " +
                    std::string(kNow) + ", ?, 'running')",
                step);
    insert.bind(1, run_id).bind(2, std::int64_t{dry_run ? 1 : 0}).run();
    txn.commit();
  }

  // One write transaction (Transaction::Kind::Write says why not BEGIN IMMEDIATE): the rows of
  // the sweeper's own table, none of the LSP's.
  void record_deliveries(const std::vector<plan::Repair>& repairs,
                         const std::string& run_id) override {
    const std::string step = "record deliveries";
    for (const plan::Repair& r : repairs) {
      // The run loop sets it on every repair it replayed: one without it is the caller's bug.
      if (!r.delivery) throw StoreError(step + ": " + repair_context(r) + ": no delivery");
    }
    if (repairs.empty()) return;
    Db& db = session_->db;
    Transaction txn(db, Transaction::Kind::Write, step);
    // An HTTP status of 0 (no answer) and an empty message are stored as NULL.
    Stmt insert(db,
                "INSERT INTO lsp_sweeper_actions (" + std::string(kAuditColumns) +
                    ", via, callback_outcome, callback_http_status, callback_answer, "
                    "callback_attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                    "'lsp_callback', ?10, NULLIF(?11, 0), NULLIF(?12, ''), ?13)",
                step);
    for (const plan::Repair& r : repairs) {
      bind_audit(insert, run_id, r, r.applied);
      insert.bind(10, plan::to_string(r.delivery->outcome))
          .bind(11, std::int64_t{r.delivery->http_status})
          .bind(12, r.delivery->answer)
          .bind(13, std::int64_t{r.delivery->attempts})
          .run();
      insert.reset();
    }
    txn.commit();
  }

  void finish_run(const RunRecord& run) override {
    const std::string step = "finish run " + run.run_id;
    // An empty report (a run that failed before it had one) is stored as NULL; json() refuses
    // one that is not JSON.
    Transaction txn(session_->db, Transaction::Kind::Write, step);
    Stmt update(session_->db,
                "UPDATE lsp_sweeper_runs SET finished_at = " + std::string(kNow) +
                    ", status = ?, exit_code = ?, report = json(NULLIF(?, '')) WHERE run_id = ?",
                step);
    update.bind(1, run.status)
        .bind(2, std::int64_t{run.exit_code})
        .bind(3, run.report_json)
        .bind(4, run.run_id);
    if (update.run() != 1) throw StoreError(step + ": no such run was begun");
    txn.commit();
  }

  DivergenceUpdate record_divergences(const std::vector<plan::Divergence>& seen,
                                      bool resolve_unseen,
                                      const std::vector<std::string>& keep_open) override {
    const std::string step = "record divergences";
    Db& db = session_->db;
    DivergenceUpdate update;
    Transaction txn(db, Transaction::Kind::Write, step);
    Stmt find(db,
              "SELECT id FROM lsp_sweeper_divergences WHERE kind = ? AND COALESCE(flow, '') = ? "
              "AND payment_hash = ? AND resolved_at IS NULL",
              step + ": find open");
    Stmt refresh(db,
                 "UPDATE lsp_sweeper_divergences SET detail = ?, needs_person = ?, last_seen_at "
                 "= " +
                     std::string(kNow) + " WHERE id = ? RETURNING " + divergence_columns(),
                 step + ": refresh");
    Stmt open(db,
              "INSERT INTO lsp_sweeper_divergences (kind, flow, payment_hash, detail, "
              "needs_person, first_seen_at, last_seen_at) VALUES (?, NULLIF(?, ''), ?, ?, ?, " +
                  std::string(kNow) + ", " + std::string(kNow) + ") RETURNING " +
                  divergence_columns(),
              step + ": open");
    std::set<std::int64_t> opened;
    std::vector<std::int64_t> seen_ids;
    for (const plan::Divergence& d : seen) {
      const std::string kind(plan::to_string(d.kind));
      const std::string flow = d.flow ? std::string(to_string(*d.flow)) : std::string();
      const std::int64_t needs_person = d.needs_person ? 1 : 0;
      find.bind(1, kind).bind(2, flow).bind(3, d.payment_hash);
      const bool exists = find.step();
      const std::int64_t id = exists ? find.int64(0) : 0;
      find.reset();
      Stmt& write = exists ? refresh : open;
      if (exists) {
        refresh.bind(1, d.detail).bind(2, needs_person).bind(3, id);
      } else {
        open.bind(1, kind)
            .bind(2, flow)
            .bind(3, d.payment_hash)
            .bind(4, d.detail)
            .bind(5, needs_person);
      }
      write.step();
      if (!exists) opened.insert(write.int64(0));
      // Opened by this call, also when `seen` names it twice.
      update.seen.push_back(to_stored_divergence(write, opened.count(write.int64(0)) > 0));
      seen_ids.push_back(write.int64(0));
      write.reset();
    }
    if (resolve_unseen) {
      Stmt resolve(db,
                   "UPDATE lsp_sweeper_divergences SET resolved_at = " + std::string(kNow) +
                       " WHERE resolved_at IS NULL AND id NOT IN (SELECT value FROM "
                       "json_each(?)) AND payment_hash NOT IN (SELECT value FROM json_each(?)) "
                       "RETURNING " +
                       divergence_columns(),
                   step + ": resolve");
      resolve.bind(1, json_array(seen_ids)).bind(2, json_array(keep_open));
      while (resolve.step()) update.resolved.push_back(to_stored_divergence(resolve, false));
    }
    txn.commit();
    return update;
  }

  void mark_alerted(const std::vector<std::int64_t>& ids) override {
    if (ids.empty()) return;
    const std::string step = "mark divergences alerted";
    Transaction txn(session_->db, Transaction::Kind::Write, step);
    Stmt update(session_->db,
                "UPDATE lsp_sweeper_divergences SET last_alerted_at = " + std::string(kNow) +
                    " WHERE id IN (SELECT value FROM json_each(?))",
                step);
    update.bind(1, json_array(ids)).run();
    txn.commit();
  }

  std::vector<StoredDivergence> open_divergences() override {
    Stmt rows(session_->db,
              "SELECT " + divergence_columns() +
                  " FROM lsp_sweeper_divergences WHERE resolved_at IS NULL ORDER BY "
                  "first_seen_at, id",
              "open divergences");
    std::vector<StoredDivergence> open;
    while (rows.step()) open.push_back(to_stored_divergence(rows, false));
    return open;
  }

  std::vector<RunSummary> recent_runs(int limit) override {
    Stmt rows(session_->db,
              "SELECT run_id, " + epoch("started_at") +
                  ", (julianday(finished_at) - julianday(started_at)) * 86400.0, status, "
                  "exit_code, json_extract(report, '$.node.payments_scanned'), "
                  "json_extract(report, '$.summary.repairs_applied'), "
                  "json_extract(report, '$.summary.divergences') FROM lsp_sweeper_runs ORDER BY "
                  "started_at DESC, run_id LIMIT ?",
              "recent runs");
    rows.bind(1, std::int64_t{limit});
    std::vector<RunSummary> runs;
    while (rows.step()) {
      RunSummary run;
      run.run_id = rows.text(0);
      run.started_at = rows.int64(1);
      if (!rows.is_null(2)) run.duration_seconds = rows.real(2);
      run.status = rows.text(3);
      if (!rows.is_null(4)) run.exit_code = static_cast<int>(rows.int64(4));
      run.scanned = rows.optional_int64(5);
      run.repaired = rows.optional_int64(6);
      run.divergences = rows.optional_int64(7);
      runs.push_back(std::move(run));
    }
    return runs;
  }

 private:
  std::shared_ptr<Session> session_;
};

}  // namespace

std::unique_ptr<Ledger> make_ledger(std::shared_ptr<Session> session) {
  return std::make_unique<SqliteLedger>(std::move(session));
}

}  // namespace lsp_sweeper::store::sqlite
