// Faults from the node, over real HTTP, against the real binary: for each, the run ends with
// its documented exit code and one clear message, no repair is half-applied, and a following
// clean run converges to exactly the state a fault-free run gives on a fresh database.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "integration/sweep_fixture.hpp"

namespace lsp_sweeper {
namespace {

using nlohmann::json;
using namespace testing;
using sim::Fault;
using sim::FaultKind;

// With pages of 2 the first listing (held HODL payments) is pages 1-3, so a fault on
// /listpayments request 2 strikes after page 1's repairs were committed.
constexpr std::uint64_t kSecondPage = 2;
// The faults strike the listings' pages.
const std::vector<std::string> kPaging{"--page-size", "2", "--lookup", "list"};

const Secret kApay1 = secret('1'), kApay2 = secret('2'), kRelay1 = secret('3'),
             kRelay2 = secret('4'), kSent1 = secret('5'), kSent2 = secret('6'),
             kRelaySent = secret('7'), kJunk = secret('8');

// Seven missed transitions across both listings and both flows, and one record the junk
// payments of some rows point at.
void seed_world(TestDatabase& db) {
  seed_apay(db, kApay1.hash, "active", 3000000);
  seed_apay(db, kApay2.hash, "active", 3000000);
  seed_relay(db, kRelay1.hash, "quoted", 3000000);
  seed_relay(db, kRelay2.hash, "quoted", 3000000);
  seed_apay(db, kSent1.hash, "outbound_paid", 2000000);
  seed_apay(db, kSent2.hash, "outbound_paid", 2000000);
  seed_relay(db, kRelaySent.hash, "outbound_pending", 2000000);
  seed_apay(db, kJunk.hash, "active", 3000000);
}

json world_payments() {
  return json::array({hodl_claimable(kApay1.hash, 3000000), hodl_claimable(kApay2.hash, 3000000),
                      hodl_claimable(kRelay1.hash, 3000000), hodl_claimable(kRelay2.hash, 3000000),
                      outbound_succeeded(kSent1.hash, kSent1.preimage),
                      outbound_succeeded(kSent2.hash, kSent2.preimage),
                      outbound_succeeded(kRelaySent.hash, kRelaySent.preimage)});
}

struct NodeFaultCase {
  std::string name;
  // Payments served besides the world's (data faults).
  json extra_payments = json::array();
  // Schedules the fault on the started simulator.
  std::function<void(sim::NodeSimulator&)> inject;
  std::vector<std::string> args;
  int exit_code = 0;
  std::string message;  // in stderr; for exit 2, in its one error line
};

Fault fault(FaultKind kind) {
  Fault f;
  f.kind = kind;
  return f;
}

Fault status(int code, const std::string& name = "InjectedFault") {
  Fault f = fault(FaultKind::Status);
  f.status = code;
  f.name = name;
  return f;
}

// The fault on `count` requests to /listpayments from page 2 on: retries meet it too.
std::function<void(sim::NodeSimulator&)> on_pages(const Fault& f, int count = 1) {
  return [f, count](sim::NodeSimulator& node) {
    for (int i = 0; i < count; ++i) {
      node.inject("/listpayments", kSecondPage + static_cast<std::uint64_t>(i), f);
    }
  };
}

json junk(const char* field, json value) {
  json p = hodl_claimable(kJunk.hash, 3000000);
  p[field] = std::move(value);
  return p;
}

std::vector<NodeFaultCase> cases() {
  std::vector<NodeFaultCase> out;
  Fault slow = fault(FaultKind::Slow);
  slow.delay = std::chrono::milliseconds(1500);
  Fault oversized = fault(FaultKind::Oversized);
  oversized.size = 8192;
  // Retried transport failures: 4 attempts per request (the client's default).
  out.push_back({"Http500GivenUp",
                 {},
                 on_pages(status(500), 4),
                 {},
                 2,
                 "HTTP 500 (node said: 'Injected fault (node simulator)'); gave up after 4"});
  out.push_back({"Http503Retried", {}, on_pages(status(503), 3), {}, 0, ""});
  out.push_back({"Http401", {}, on_pages(status(401)), {}, 2, "node refused the token (401)"});
  out.push_back({"Http403Locked",
                 {},
                 on_pages(status(403, "LockedNode")),
                 {},
                 2,
                 "node is locked (403 LockedNode): unlock it (POST /unlock) and rerun"});
  out.push_back({"Http403OtherName", {}, on_pages(status(403)), {}, 2, "HTTP 403 'InjectedFault'"});
  out.push_back({"SlowerThanTimeout",
                 {},
                 on_pages(slow, 4),
                 {"--timeout", "0.3"},
                 2,
                 "gave up after 4 attempts"});
  out.push_back({"ResetMidBodyGivenUp",
                 {},
                 on_pages(fault(FaultKind::ResetMidBody), 4),
                 {},
                 2,
                 "gave up after 4 attempts"});
  out.push_back({"ResetMidBodyRetried", {}, on_pages(fault(FaultKind::ResetMidBody)), {}, 0, ""});
  out.push_back({"TruncatedJson",
                 {},
                 on_pages(fault(FaultKind::TruncatedBody)),
                 {},
                 2,
                 "page 2 (index_offset="});
  out.push_back({"WrongContentType",
                 {},
                 on_pages(fault(FaultKind::WrongContentType)),
                 {},
                 2,
                 "content type 'text/html' is not JSON"});
  out.push_back({"LargerThanLimit",
                 {},
                 on_pages(oversized),
                 {"--max-response-bytes", "4096"},
                 2,
                 "response larger than 4096 bytes (--max-response-bytes): lower --page-size"});
  out.push_back({"CursorRepeats",
                 {},
                 on_pages(fault(FaultKind::CursorRepeat)),
                 {},
                 2,
                 "stopping rather than looping"});
  out.push_back({"CursorGrows",
                 {},
                 on_pages(fault(FaultKind::CursorGrow)),
                 {},
                 2,
                 "stopping rather than looping"});
  // The newest entry repeats the oldest held payment: pages 1 and 3 both carry it.
  out.push_back({"SamePaymentOnTwoPages",
                 json::array({hodl_claimable(kApay1.hash, 3000000)}),
                 {},
                 {},
                 0,
                 ""});
  // Before page 2 is served, the payment it would carry is claimed on the node.
  out.push_back({"StatusChangesBetweenPages",
                 {},
                 [](sim::NodeSimulator& node) {
                   Fault f = fault(FaultKind::Action);
                   f.action = [&node] {
                     node.set_payment_status(kApay1.hash, "InboundHodl", "Succeeded");
                   };
                   node.inject("/listpayments", kSecondPage, f);
                 },
                 {},
                 0,
                 ""});
  out.push_back({"FieldsOfTheWrongType",
                 json::array({junk("amt_msat", "lots"), junk("claim_deadline_height", "soon")}),
                 {},
                 {},
                 1,
                 "node payment rejected"});
  // nlohmann serves integers beyond 64 bits in floating-point notation; the decoder's unit
  // tests cover the plain integer literal.
  out.push_back({"NumbersOverflow64Bits",
                 json::array({junk("amt_msat", 18446744073709551616.0),
                              junk("claim_deadline_height", -9223372036854775809.0)}),
                 {},
                 {},
                 1,
                 "node payment rejected"});
  // Hashes and preimages no decoder may pass on: each payment is rejected on its own.
  json forged_preimage = outbound_succeeded(kJunk.hash, std::string(63, 'a') + "\u00e9");
  out.push_back({"HostileHashesAndPreimages",
                 json::array({junk("payment_hash", "'; DROP TABLE async_rotating_invoices; --"),
                              junk("payment_hash", kJunk.hash.substr(0, 32) + std::string(1, '\0') +
                                                       kJunk.hash.substr(33)),
                              junk("payment_hash", kJunk.hash.substr(0, 63) + "\u00e9"),
                              junk("payment_hash", kJunk.hash + "00"),
                              junk("payment_hash", std::string(64, 'g')), forged_preimage}),
                 {},
                 {},
                 1,
                 "node payment rejected"});
  return out;
}

class NodeFault : public SweepFixture, public ::testing::WithParamInterface<NodeFaultCase> {};

TEST_P(NodeFault, EndsCleanlyAndTheNextRunConverges) {
  const NodeFaultCase& c = GetParam();
  json payments = world_payments();
  for (const auto& p : c.extra_payments) payments.push_back(p);
  serve(payments);
  seed_world(db_);
  if (c.inject) c.inject(*node_);

  std::vector<std::string> args = kPaging;
  args.insert(args.end(), c.args.begin(), c.args.end());
  const ProcessResult faulty = sweep(args);
  ASSERT_FALSE(faulty.timed_out);
  EXPECT_EQ(faulty.exit_code, c.exit_code) << faulty.err;
  EXPECT_NE(faulty.err.find(c.message), std::string::npos) << faulty.err;
  if (c.exit_code == 2) {
    EXPECT_EQ(error_lines(faulty.err), 1) << faulty.err;
    EXPECT_FALSE(report(faulty)["complete"]);
  }
  EXPECT_EQ(half_applied(db_), 0);

  const ProcessResult clean = sweep(kPaging);
  TestDatabase reference;
  seed_world(reference);
  const ProcessResult fault_free = run_sweeper(node_->url(), reference.uri_as_sweeper(), kPaging);
  ASSERT_NE(fault_free.exit_code, 2) << fault_free.err;
  EXPECT_EQ(clean.exit_code, fault_free.exit_code) << clean.err;
  EXPECT_EQ(lsp_state(db_), lsp_state(reference));
  EXPECT_EQ(half_applied(db_), 0);
}

INSTANTIATE_TEST_SUITE_P(Table, NodeFault, ::testing::ValuesIn(cases()),
                         [](const auto& row) { return row.param.name; });

}  // namespace
}  // namespace lsp_sweeper
