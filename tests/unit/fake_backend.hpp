// In-memory test doubles of the sweep's two seams, as ninja tests its builder through an
// in-memory disk interface: a FakeDatabase behind store::Backend (the LSP's two record tables,
// the outbox, and the sweeper's own ledger) and a FakeNode behind node::PaymentSource. Each
// follows the contract of its header (store.hpp, client.hpp) and nothing more, so run_sweep can
// be tested without a network or a database. Plain vectors and linear scans: a test double
// must be obviously right, not fast.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "lsp_sweeper/domain.hpp"
#include "lsp_sweeper/lsp/callbacks.hpp"
#include "lsp_sweeper/node/client.hpp"
#include "lsp_sweeper/plan/plan.hpp"
#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::testing {

// One row of async_rotating_invoices (Apay) or lightning_send_mappings (Relay), the columns a
// sweep reads or writes. claimable_at is only ever set or not, so a flag stands for it.
struct FakeRow {
  std::int64_t id = 0;
  std::string payment_hash;
  std::string status;
  std::optional<std::int64_t> amount_msat;
  std::optional<std::int64_t> claim_deadline_height;
  std::optional<std::string> preimage;
  bool claimable_at_set = false;
  // Unix seconds; none stands for a created_at that cannot be read (the run then narrows no
  // listing), which is what rows that do not set it get.
  std::optional<std::int64_t> created_at;
  bool operator==(const FakeRow&) const = default;
};

struct FakeJob {
  std::string payment_hash;
  std::string action;
  std::string status;  // pending, processing, done, failed
  // The columns stuck_jobs reads; the job's id is its position in FakeDatabase::jobs, plus 1.
  std::int64_t attempts = 0;
  std::int64_t age_seconds = 0;                                 // since created_at
  std::optional<std::int64_t> locked_until_ago = std::nullopt;  // seconds since locked_until
  std::optional<std::string> last_error = std::nullopt;
  auto operator<=>(const FakeJob&) const = default;
};

// Readable failure messages instead of gtest's byte dumps.
inline void PrintTo(const FakeRow& r, std::ostream* os) {
  *os << "{id " << r.id << " " << r.payment_hash.substr(0, 8) << " " << r.status << " deadline "
      << (r.claim_deadline_height ? std::to_string(*r.claim_deadline_height) : "-") << " preimage "
      << r.preimage.value_or("-").substr(0, 8) << (r.claimable_at_set ? " claimable_at" : "")
      << "}";
}
inline void PrintTo(const FakeJob& j, std::ostream* os) {
  *os << "{" << j.payment_hash.substr(0, 8) << " " << j.action << " " << j.status << "}";
}

// One row of the sweeper's actions table: written for every repair, applied or not.
struct FakeAudit {
  std::string run_id;
  plan::RepairKind kind = plan::RepairKind::MissedClaimable;
  Flow flow = Flow::Apay;
  std::int64_t row_id = 0;
  std::string payment_hash;
  std::string from_status;
  std::string to_status;
  std::string outbox_action;
  bool applied = false;
  // --apply lsp-callbacks: what the LSP answered; none for a repair applied by SQL.
  std::optional<plan::Delivery> delivery;
  bool operator==(const FakeAudit&) const = default;
};

struct FakeRun {
  std::string run_id;
  bool dry_run = false;
  std::int64_t started_at = 0;
  std::optional<std::int64_t> finished_at;
  std::string status = "running";
  std::optional<int> exit_code;
  std::string report_json;
  bool operator==(const FakeRun&) const = default;
};

struct FakeDivergence {
  std::int64_t id = 0;
  plan::Divergence divergence;
  std::int64_t first_seen_at = 0;
  std::int64_t last_seen_at = 0;
  std::optional<std::int64_t> last_alerted_at;
  std::optional<std::int64_t> resolved_at;
  bool operator==(const FakeDivergence& o) const;
};

struct FakeDatabase {
  std::vector<FakeRow> apay;
  std::vector<FakeRow> relay;
  // The LSP's PostgreSQL form has no lightning_send_mappings: flows() then offers Apay only.
  bool has_relay_table = true;
  std::vector<FakeJob> jobs;
  std::vector<FakeAudit> audit;
  std::vector<FakeRun> runs;
  std::vector<FakeDivergence> divergences;
  bool sweep_locked = false;
  std::int64_t clock = 0;  // the ledger's last timestamp, see tick()

  // Run inside records_for after the rows were read (a live callback landing between the
  // sweep's read and its apply), and at the start of apply. Not part of the compared state.
  std::function<void(FakeDatabase&)> after_records_for;
  std::function<void(FakeDatabase&)> before_apply;

  // Everything a sweep may change, hooks aside: a dry run must leave it equal.
  bool operator==(const FakeDatabase& o) const;

  std::vector<FakeRow>& rows(Flow flow) { return flow == Flow::Apay ? apay : relay; }
  const std::vector<FakeRow>& rows(Flow flow) const { return flow == Flow::Apay ? apay : relay; }

  // Appends a row with the next id of its table; returns the id.
  std::int64_t add(Flow flow, const std::string& hash, const std::string& status,
                   std::optional<std::int64_t> amount = 3'000'000,
                   std::optional<std::int64_t> deadline = std::nullopt);
  void add_job(const std::string& hash, const std::string& action, const std::string& status);

  // The row with this id (throws std::out_of_range when there is none).
  FakeRow& row(Flow flow, std::int64_t id);
  // The only row of this hash in `flow` (throws std::out_of_range otherwise).
  FakeRow& only_row(Flow flow, const std::string& hash);
  // How many jobs of this hash and action exist, in any status.
  int job_count(const std::string& hash, const std::string& action) const;

  // Unix seconds for the ledger, strictly increasing from call to call, so "seen again later"
  // is visible within one wall-clock second.
  std::int64_t tick();
};

// A Backend whose three parts work on `db`, which must outlive it.
store::Backend make_backend(FakeDatabase& db);

// The node's payments, served as the REST API would filter and page them. `payments` is in the
// node's order, newest first.
class FakeNode : public node::PaymentSource {
 public:
  std::vector<NodePayment> payments;
  std::int64_t height = 800'000;
  // When set, the request of this number (1-based, every call below counts one, each page of
  // a scan too) throws NodeError Transport: a node lost in the middle of a sweep.
  std::optional<int> fail_at_request;
  int requests = 0;
  int lookups = 0;  // get_payment calls

  std::int64_t current_height() override;
  node::ScanStats scan(const node::PaymentQuery& query, std::uint32_t page_size,
                       const node::PageSink& on_page) override;
  std::optional<node::SinglePayment> get_payment(const std::string& payment_hash,
                                                 PaymentType type) override;
  node::Dialect dialect() override;

 private:
  void request(const char* what);
};

// The LSP's two callback endpoints over `db`, as utexo-lsp's handlers apply them: a hash with a
// relay row belongs to the relay flow, else to APay; its row in the callback's from-state moves (APay claimable keeping a recorded deadline)
// and gets its job, once; a callback that finds it moved on changes nothing and answers 200.
// `answers` scripts the next answers instead, front first, each used once; a scripted 200 with
// `applies` also runs the handler.
class FakeLsp : public lsp::CallbackEndpoints {
 public:
  explicit FakeLsp(FakeDatabase& db) : db_(db) {}
  struct Scripted {
    lsp::Answer answer;
    bool applies = false;
  };
  std::vector<Scripted> answers;
  struct Call {
    std::string endpoint, payment_hash, preimage;
    std::uint64_t amount_msat = 0;
    std::int64_t claim_deadline_height = 0;
  };
  std::vector<Call> calls;

  lsp::Answer claimable(const std::string& payment_hash, std::uint64_t amount_msat,
                        std::int64_t claim_deadline_height) override;
  lsp::Answer payment_sent(const std::string& payment_hash, const std::string& preimage) override;

 private:
  lsp::Answer answer(const Call& call);
  FakeDatabase& db_;
};

}  // namespace lsp_sweeper::testing
