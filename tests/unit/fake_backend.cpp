#include "unit/fake_backend.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace lsp_sweeper::testing {

namespace {

bool contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

LspRecord to_record(Flow flow, const FakeRow& row) {
  LspRecord r;
  r.flow = flow;
  r.row_id = row.id;
  r.payment_hash = row.payment_hash;
  r.status = row.status;
  r.amount_msat = row.amount_msat;
  r.claim_deadline_height = row.claim_deadline_height;
  return r;
}

// Every job of the hash, ordered by action as the real lookups read them.
std::vector<OutboxJob> jobs_of(const FakeDatabase& db, const std::string& hash) {
  std::vector<OutboxJob> out;
  for (const FakeJob& j : db.jobs) {
    if (j.payment_hash == hash) out.push_back({j.action, j.status});
  }
  std::sort(out.begin(), out.end(),
            [](const OutboxJob& a, const OutboxJob& b) { return a.action < b.action; });
  return out;
}

const FakeJob* find_job(const FakeDatabase& db, const std::string& hash,
                        const std::string& action) {
  for (const FakeJob& j : db.jobs) {
    if (j.payment_hash == hash && j.action == action) return &j;
  }
  return nullptr;
}

// Keyset pages by id of the rows of `flow` that `wanted` accepts, as the backends page: each
// page evaluated afresh (the sink may have applied repairs since), until a short page or the
// sink says stop.
void page_by_id(FakeDatabase& db, Flow flow, std::size_t page_size, bool with_jobs,
                const std::function<bool(const FakeRow&)>& wanted, const store::RecordSink& sink) {
  if (page_size == 0) return;
  std::int64_t after = 0;
  for (;;) {
    std::vector<const FakeRow*> matching;
    for (const FakeRow& row : db.rows(flow)) {
      if (row.id > after && wanted(row)) matching.push_back(&row);
    }
    std::sort(matching.begin(), matching.end(),
              [](const FakeRow* a, const FakeRow* b) { return a->id < b->id; });
    if (matching.size() > page_size) matching.resize(page_size);
    std::vector<LspRecord> page;
    for (const FakeRow* row : matching) {
      page.push_back(to_record(flow, *row));
      if (with_jobs) page.back().outbox_jobs = jobs_of(db, row->payment_hash);
    }
    if (page.empty()) return;
    after = page.back().row_id;
    const bool full = page.size() == page_size;
    if (!sink(page) || !full) return;
  }
}

class FakeRecords final : public store::LspRecords {
 public:
  explicit FakeRecords(FakeDatabase& db) : db_(db) {}

  std::vector<Flow> flows() const override {
    if (db_.has_relay_table) return {Flow::Apay, Flow::Relay};
    return {Flow::Apay};
  }

  std::vector<LspRecord> records_for(const std::vector<std::string>& hashes) override {
    std::vector<LspRecord> out;
    for (Flow flow : flows()) {
      std::vector<const FakeRow*> rows;
      for (const FakeRow& row : db_.rows(flow)) {
        if (contains(hashes, row.payment_hash)) rows.push_back(&row);
      }
      std::sort(rows.begin(), rows.end(),
                [](const FakeRow* a, const FakeRow* b) { return a->id < b->id; });
      for (const FakeRow* row : rows) {
        out.push_back(to_record(flow, *row));
        out.back().outbox_jobs = jobs_of(db_, row->payment_hash);
      }
    }
    // After the read: whatever the hook writes, the sweep plans from the rows above.
    if (db_.after_records_for) db_.after_records_for(db_);
    return out;
  }

  void records_lacking_outbox_job(Flow flow, const std::vector<RequiredJob>& jobs,
                                  std::uint32_t page_size,
                                  const store::RecordSink& on_page) override {
    require_table(flow);
    page_by_id(
        db_, flow, page_size, true,
        [&](const FakeRow& row) {
          for (const RequiredJob& need : jobs) {
            if (row.status == need.status && !find_job(db_, row.payment_hash, need.action)) {
              return true;
            }
          }
          return false;
        },
        on_page);
  }

  std::vector<StuckJob> stuck_jobs(std::int64_t stuck_after_seconds) override {
    std::vector<StuckJob> out;
    const auto job_of = [&](JobStuckReason reason, std::size_t i, std::int64_t blocked_by) {
      const FakeJob& j = db_.jobs[i];
      return StuckJob{reason,         static_cast<std::int64_t>(i) + 1,
                      j.payment_hash, j.action,
                      j.status,       j.attempts,
                      j.age_seconds,  j.last_error,
                      blocked_by};
    };
    std::int64_t counts[3] = {0, 0, 0};
    const auto add = [&](JobStuckReason reason, std::size_t i, std::int64_t blocked_by) {
      if (counts[static_cast<std::size_t>(reason)]++ < store::kMaxStuckJobs) {
        out.push_back(job_of(reason, i, blocked_by));
      }
    };
    for (std::size_t i = 0; i < db_.jobs.size(); ++i) {
      const FakeJob& j = db_.jobs[i];
      if (j.status == "pending" && j.attempts >= 3 && j.age_seconds > stuck_after_seconds) {
        add(JobStuckReason::Retrying, i, 0);
      }
    }
    for (std::size_t i = 0; i < db_.jobs.size(); ++i) {
      const FakeJob& j = db_.jobs[i];
      if (j.status == "processing" && j.locked_until_ago &&
          *j.locked_until_ago > stuck_after_seconds) {
        add(JobStuckReason::LockExpired, i, 0);
      }
    }
    for (std::size_t i = 0; i < db_.jobs.size(); ++i) {
      if (db_.jobs[i].status != "pending" || db_.jobs[i].attempts != 0) continue;
      std::int64_t failing = 0;
      for (std::size_t k = 0; k < i; ++k) {
        failing += db_.jobs[k].status == "pending" && db_.jobs[k].attempts > 0 ? 1 : 0;
      }
      if (failing >= store::kHeadOfLineSlots) add(JobStuckReason::HeadOfLine, i, failing);
    }
    return out;
  }

  std::vector<store::AwaitingSince> awaiting_node_since(
      Flow flow, const std::vector<std::vector<std::string>>& quiet,
      const std::vector<std::string>& open_hashes) override {
    require_table(flow);
    std::vector<store::AwaitingSince> out(quiet.size());
    for (std::size_t i = 0; i < quiet.size(); ++i) {
      store::AwaitingSince& a = out[i];
      for (const FakeRow& row : db_.rows(flow)) {
        const bool awaits = !contains(quiet[i], row.status);
        a.records += awaits ? 1 : 0;
        if (!awaits && !contains(open_hashes, row.payment_hash)) continue;
        for (const Flow f : flows()) {
          for (const FakeRow& twin : db_.rows(f)) {
            if (twin.payment_hash != row.payment_hash) continue;
            if (!twin.created_at) {
              a.unreadable = true;
              continue;
            }
            a.oldest = std::min(a.oldest.value_or(*twin.created_at), *twin.created_at);
            a.newest = std::max(a.newest.value_or(*twin.created_at), *twin.created_at);
          }
        }
      }
    }
    return out;
  }

  void records_awaiting_node(Flow flow, const std::vector<std::string>& quiet, std::size_t batch,
                             const store::RecordSink& sink) override {
    require_table(flow);
    page_by_id(
        db_, flow, batch, false, [&](const FakeRow& row) { return !contains(quiet, row.status); },
        sink);
  }

  std::vector<std::string> live_twin_hashes(Flow flow, const std::vector<std::string>& terminal,
                                            std::int64_t limit) override {
    require_table(flow);
    std::map<std::string, int> live;
    for (const FakeRow& row : db_.rows(flow)) {
      if (!contains(terminal, row.status)) ++live[row.payment_hash];
    }
    std::vector<std::string> out;
    for (const auto& [hash, n] : live) {
      if (n > 1 && std::ssize(out) < limit) out.push_back(hash);
    }
    return out;
  }

  std::vector<LspRecord> records_with_malformed_hash(Flow flow,
                                                     const std::vector<std::string>& terminal,
                                                     std::int64_t limit) override {
    require_table(flow);
    std::vector<const FakeRow*> rows;
    for (const FakeRow& row : db_.rows(flow)) {
      const std::string& h = row.payment_hash;
      const bool lower_hex = h.size() == 64 && std::all_of(h.begin(), h.end(), [](char c) {
                               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                             });
      if (!lower_hex && !contains(terminal, row.status)) rows.push_back(&row);
    }
    std::sort(rows.begin(), rows.end(),
              [](const FakeRow* a, const FakeRow* b) { return a->id < b->id; });
    std::vector<LspRecord> out;
    for (const FakeRow* row : rows) {
      if (std::ssize(out) >= limit) break;
      out.push_back(to_record(flow, *row));
    }
    return out;
  }

 private:
  // Asking about a table that does not exist would be an SQL error on a real backend.
  void require_table(Flow flow) const {
    if (flow == Flow::Relay && !db_.has_relay_table) {
      throw store::StoreError("no such table: lightning_send_mappings");
    }
  }

  FakeDatabase& db_;
};

class FakeApplier final : public store::Applier {
 public:
  explicit FakeApplier(FakeDatabase& db) : db_(db) {}

  // One batch for all: the fake never fails part-way, so batches would change nothing.
  void apply(std::vector<plan::Repair>& repairs, const std::string& run_id) override {
    if (db_.before_apply) db_.before_apply(db_);
    for (const plan::Repair& r : repairs) validate(r);
    for (plan::Repair& r : repairs) {
      const bool applied =
          r.kind == plan::RepairKind::MissingOutboxJob ? add_missing_job(r) : move_record(r);
      db_.audit.push_back({run_id, r.kind, r.flow, r.row_id, r.payment_hash, r.observed_status,
                           r.to, r.outbox_action, applied, std::nullopt});
      r.applied = applied;
    }
  }

 private:
  // The planner never builds these; a real backend refuses them too.
  static void validate(const plan::Repair& r) {
    const bool bad = r.from.empty() || r.outbox_action.empty() ||
                     (r.kind == plan::RepairKind::MissedClaimable && !r.claim_deadline_height) ||
                     (r.kind == plan::RepairKind::MissedPaymentSent && !r.preimage);
    if (bad) throw store::StoreError("apply " + std::string(plan::to_string(r.kind)) + ": invalid");
  }

  // The row of the repair while it is still in a `from` status, else nullptr.
  FakeRow* row_in_from(const plan::Repair& r) {
    for (FakeRow& row : db_.rows(r.flow)) {
      if (row.id == r.row_id && row.payment_hash == r.payment_hash && contains(r.from, row.status))
        return &row;
    }
    return nullptr;
  }

  // The conditional UPDATE, blocked by a job of its action the LSP will not run again, then
  // the job only when the row changed, an existing one kept (ON CONFLICT DO NOTHING).
  bool move_record(const plan::Repair& r) {
    FakeRow* row = row_in_from(r);
    const FakeJob* job = find_job(db_, r.payment_hash, r.outbox_action);
    if (row == nullptr || (job && (job->status == "done" || job->status == "failed"))) {
      return false;
    }
    row->status = r.to;
    if (r.kind == plan::RepairKind::MissedClaimable) {
      if (r.flow == Flow::Apay) {
        // APay keeps a claimable_at and a deadline the LSP already wrote.
        row->claimable_at_set = true;
        if (!row->claim_deadline_height) row->claim_deadline_height = r.claim_deadline_height;
      } else {
        row->claim_deadline_height = r.claim_deadline_height;
      }
    } else if (!row->preimage) {
      row->preimage = r.preimage;
    }
    if (!job) db_.add_job(r.payment_hash, r.outbox_action, "pending");
    return true;
  }

  // The job only while the record is still in that state, and only if none exists.
  bool add_missing_job(const plan::Repair& r) {
    if (row_in_from(r) == nullptr || find_job(db_, r.payment_hash, r.outbox_action)) return false;
    db_.add_job(r.payment_hash, r.outbox_action, "pending");
    return true;
  }

  FakeDatabase& db_;
};

StoredDivergence stored(const FakeDivergence& d, bool is_new) {
  return {d.id, d.divergence, is_new, d.first_seen_at, d.last_seen_at, d.last_alerted_at};
}

class FakeLedger final : public store::Ledger {
 public:
  explicit FakeLedger(FakeDatabase& db) : db_(db) {}
  ~FakeLedger() override {
    if (holds_lock_) db_.sweep_locked = false;
  }
  FakeLedger(const FakeLedger&) = delete;
  FakeLedger& operator=(const FakeLedger&) = delete;

  bool try_lock_sweep() override {
    if (holds_lock_) return true;
    if (db_.sweep_locked) return false;
    db_.sweep_locked = holds_lock_ = true;
    return true;
  }

  void unlock_sweep() override {
    if (holds_lock_) db_.sweep_locked = holds_lock_ = false;
  }

  void begin_run(const std::string& run_id, bool dry_run) override {
    FakeRun run;
    run.run_id = run_id;
    run.dry_run = dry_run;
    run.started_at = db_.tick();
    db_.runs.push_back(std::move(run));
  }

  void finish_run(const RunRecord& record) override {
    for (FakeRun& run : db_.runs) {
      if (run.run_id != record.run_id) continue;
      run.finished_at = db_.tick();
      run.status = record.status;
      run.exit_code = record.exit_code;
      run.report_json = record.report_json;
      return;
    }
    throw store::StoreError("finish run: no such run was begun");
  }

  DivergenceUpdate record_divergences(const std::vector<plan::Divergence>& seen,
                                      bool resolve_unseen,
                                      const std::vector<std::string>& keep_open) override {
    const std::int64_t now = db_.tick();
    DivergenceUpdate update;
    std::set<std::int64_t> opened, seen_ids;
    for (const plan::Divergence& d : seen) {
      FakeDivergence* open = find_open(d);
      if (open == nullptr) {
        FakeDivergence row;
        row.id = static_cast<std::int64_t>(db_.divergences.size()) + 1;
        row.divergence = d;
        row.first_seen_at = now;
        db_.divergences.push_back(row);
        open = &db_.divergences.back();
        opened.insert(open->id);
      }
      open->divergence.detail = d.detail;
      open->divergence.needs_person = d.needs_person;
      open->last_seen_at = now;
      // New when this call opened it, also when `seen` names it twice.
      update.seen.push_back(stored(*open, opened.contains(open->id)));
      seen_ids.insert(open->id);
    }
    if (resolve_unseen) {
      for (FakeDivergence& d : db_.divergences) {
        if (d.resolved_at || seen_ids.contains(d.id) ||
            contains(keep_open, d.divergence.payment_hash)) {
          continue;
        }
        d.resolved_at = now;
        update.resolved.push_back(stored(d, false));
      }
    }
    return update;
  }

  void mark_alerted(const std::vector<std::int64_t>& ids) override {
    const std::int64_t now = db_.tick();
    for (FakeDivergence& d : db_.divergences) {
      if (std::find(ids.begin(), ids.end(), d.id) != ids.end()) d.last_alerted_at = now;
    }
  }

  std::vector<StoredDivergence> open_divergences() override {
    std::vector<StoredDivergence> out;
    for (const FakeDivergence& d : db_.divergences) {
      if (!d.resolved_at) out.push_back(stored(d, false));
    }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return std::pair(a.first_seen_at, a.id) < std::pair(b.first_seen_at, b.id);
    });
    return out;
  }

  void record_deliveries(const std::vector<plan::Repair>& repairs,
                         const std::string& run_id) override {
    for (const plan::Repair& r : repairs) {
      db_.audit.push_back({run_id, r.kind, r.flow, r.row_id, r.payment_hash, r.observed_status,
                           r.to, r.outbox_action, r.applied, r.delivery});
    }
  }

  std::vector<RunSummary> recent_runs(int limit) override {
    std::vector<RunSummary> out;
    for (auto it = db_.runs.rbegin(); it != db_.runs.rend() && std::ssize(out) < limit; ++it) {
      RunSummary s;
      s.run_id = it->run_id;
      s.started_at = it->started_at;
      if (it->finished_at) {
        s.duration_seconds = static_cast<double>(*it->finished_at - it->started_at);
      }
      s.status = it->status;
      s.exit_code = it->exit_code;
      if (!it->report_json.empty()) {
        const auto report = nlohmann::json::parse(it->report_json);
        s.scanned = report["node"]["payments_scanned"].get<std::int64_t>();
        s.repaired = report["summary"]["repairs_applied"].get<std::int64_t>();
        s.divergences = report["summary"]["divergences"].get<std::int64_t>();
      }
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  // The open row of (kind, flow, payment_hash).
  FakeDivergence* find_open(const plan::Divergence& d) {
    for (FakeDivergence& row : db_.divergences) {
      if (!row.resolved_at && row.divergence.kind == d.kind && row.divergence.flow == d.flow &&
          row.divergence.payment_hash == d.payment_hash) {
        return &row;
      }
    }
    return nullptr;
  }

  FakeDatabase& db_;
  bool holds_lock_ = false;
};

}  // namespace

bool FakeDivergence::operator==(const FakeDivergence& o) const {
  const auto& a = divergence;
  const auto& b = o.divergence;
  return id == o.id && a.kind == b.kind && a.flow == b.flow && a.payment_hash == b.payment_hash &&
         a.detail == b.detail && a.needs_person == b.needs_person &&
         first_seen_at == o.first_seen_at && last_seen_at == o.last_seen_at &&
         last_alerted_at == o.last_alerted_at && resolved_at == o.resolved_at;
}

bool FakeDatabase::operator==(const FakeDatabase& o) const {
  return apay == o.apay && relay == o.relay && has_relay_table == o.has_relay_table &&
         jobs == o.jobs && audit == o.audit && runs == o.runs && divergences == o.divergences &&
         sweep_locked == o.sweep_locked;
}

std::int64_t FakeDatabase::add(Flow flow, const std::string& hash, const std::string& status,
                               std::optional<std::int64_t> amount,
                               std::optional<std::int64_t> deadline) {
  auto& table = rows(flow);
  FakeRow row;
  row.id = table.empty() ? 1 : table.back().id + 1;
  row.payment_hash = hash;
  row.status = status;
  row.amount_msat = amount;
  row.claim_deadline_height = deadline;
  table.push_back(std::move(row));
  return table.back().id;
}

void FakeDatabase::add_job(const std::string& hash, const std::string& action,
                           const std::string& status) {
  // UNIQUE(payment_hash, action): a test seeding twice is a test bug.
  if (job_count(hash, action) != 0) throw std::logic_error("outbox job exists: " + action);
  FakeJob job;
  job.payment_hash = hash;
  job.action = action;
  job.status = status;
  jobs.push_back(std::move(job));
}

FakeRow& FakeDatabase::row(Flow flow, std::int64_t id) {
  for (FakeRow& r : rows(flow)) {
    if (r.id == id) return r;
  }
  throw std::out_of_range("no row " + std::to_string(id));
}

FakeRow& FakeDatabase::only_row(Flow flow, const std::string& hash) {
  FakeRow* found = nullptr;
  for (FakeRow& r : rows(flow)) {
    if (r.payment_hash != hash) continue;
    if (found) throw std::out_of_range("two rows of " + hash);
    found = &r;
  }
  if (!found) throw std::out_of_range("no row of " + hash);
  return *found;
}

int FakeDatabase::job_count(const std::string& hash, const std::string& action) const {
  return static_cast<int>(std::count_if(jobs.begin(), jobs.end(), [&](const FakeJob& j) {
    return j.payment_hash == hash && j.action == action;
  }));
}

std::int64_t FakeDatabase::tick() {
  const std::int64_t wall = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  clock = std::max(clock + 1, wall);
  return clock;
}

store::Backend make_backend(FakeDatabase& db) {
  store::Backend backend;
  backend.kind = "fake";
  backend.records = std::make_unique<FakeRecords>(db);
  backend.applier = std::make_unique<FakeApplier>(db);
  backend.ledger = std::make_unique<FakeLedger>(db);
  return backend;
}

// FakeNode

void FakeNode::request(const char* what) {
  ++requests;
  if (fail_at_request && requests == *fail_at_request) {
    throw node::NodeError(node::NodeErrorKind::Transport,
                          std::string(what) + ": connection reset (fake node)");
  }
}

std::int64_t FakeNode::current_height() {
  request("GET /networkinfo");
  return height;
}

node::ScanStats FakeNode::scan(const node::PaymentQuery& query, std::uint32_t page_size,
                               const node::PageSink& on_page) {
  std::vector<NodePayment> matching;
  for (const NodePayment& p : payments) {
    if (node::matches(query, p)) matching.push_back(p);
  }
  const std::size_t size = std::max<std::size_t>(page_size, 1);
  node::ScanStats stats;
  std::size_t begin = 0;
  // One page even when nothing matches: the node answers an empty listing with an empty page.
  do {
    request("GET /listpayments");
    node::PaymentPage page;
    const std::size_t end = std::min(matching.size(), begin + size);
    page.payments.assign(matching.begin() + static_cast<std::ptrdiff_t>(begin),
                         matching.begin() + static_cast<std::ptrdiff_t>(end));
    // Index offsets count down from the newest, as the node's do; never 0 here.
    if (!page.payments.empty()) {
      page.first_index_offset = matching.size() - begin;
      page.last_index_offset = matching.size() - end + 1;
    }
    ++stats.pages;
    on_page(page);
    begin = end;
  } while (begin < matching.size());
  return stats;
}

std::optional<node::SinglePayment> FakeNode::get_payment(const std::string& payment_hash,
                                                         PaymentType type) {
  request("POST /getpayment");
  ++lookups;
  for (const NodePayment& p : payments) {
    if (p.payment_hash == payment_hash && p.type == type) {
      return node::SinglePayment{node::Dialect::Paginated, p, std::nullopt};
    }
  }
  return std::nullopt;
}

node::Dialect FakeNode::dialect() {
  request("GET /listpayments?max_payments=1");
  return node::Dialect::Paginated;
}

lsp::Answer FakeLsp::claimable(const std::string& payment_hash, std::uint64_t amount_msat,
                               std::int64_t claim_deadline_height) {
  return answer(
      calls.emplace_back(Call{"claimable", payment_hash, "", amount_msat, claim_deadline_height}));
}

lsp::Answer FakeLsp::payment_sent(const std::string& payment_hash, const std::string& preimage) {
  return answer(calls.emplace_back(Call{"payment_sent", payment_hash, preimage, 0, 0}));
}

lsp::Answer FakeLsp::answer(const Call& call) {
  bool handle = true;
  lsp::Answer reply;
  reply.status = 200;
  if (!answers.empty()) {
    const Scripted next = answers.front();
    answers.erase(answers.begin());
    reply = next.answer;
    handle = reply.status == 200 && next.applies;
  }
  if (!handle) return reply;
  const bool claimable = call.endpoint == "claimable";
  // As the LSP's handlers route: a hash with a relay record belongs to the relay flow.
  const bool relay_owns = std::any_of(db_.relay.begin(), db_.relay.end(), [&](const FakeRow& r) {
    return r.payment_hash == call.payment_hash;
  });
  for (Flow flow : {relay_owns ? Flow::Relay : Flow::Apay}) {
    for (FakeRow& row : db_.rows(flow)) {
      if (row.payment_hash != call.payment_hash) continue;
      const std::vector<std::string> from =
          claimable            ? std::vector<std::string>{flow == Flow::Apay ? "active" : "quoted"}
          : flow == Flow::Apay ? std::vector<std::string>{"outbound_paid"}
                               : std::vector<std::string>{"outbound_pending", "outbound_paid"};
      if (std::find(from.begin(), from.end(), row.status) == from.end()) continue;
      row.status = claimable ? "claimable" : "outbound_claimed";
      if (claimable) {
        row.claimable_at_set = flow == Flow::Apay;
        if (!row.claim_deadline_height) row.claim_deadline_height = call.claim_deadline_height;
      } else if (!row.preimage) {
        row.preimage = call.preimage;
      }
      const std::string action = claimable ? (flow == Flow::Apay ? "request_outbound_invoice"
                                                                 : "lightning_send_pay_outbound")
                                 : flow == Flow::Apay ? "claim_inbound_invoice"
                                                      : "lightning_send_claim_inbound";
      if (db_.job_count(call.payment_hash, action) == 0) {
        db_.add_job(call.payment_hash, action, "pending");
      }
      return reply;
    }
  }
  return reply;
}

}  // namespace lsp_sweeper::testing
