// Targeted lookups (POST /getpayment per record awaiting the node) against the listings, with
// the real binary, a real PostgreSQL and the simulator over HTTP: both modes on the same node
// and the same LSP records (one database each) must find the same repairs and divergences, and
// auto mode must pick each where it should.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "integration/sweep_fixture.hpp"
#include "lsp_sweeper/domain.hpp"
#include "lsp_sweeper/plan/plan.hpp"

namespace lsp_sweeper {
namespace {

using nlohmann::json;
using namespace testing;

const std::filesystem::path kScenarios = SCENARIO_DIR;

// The scenario's LSP rows in the form of this run's backend: NAME.sqlite.sql or
// NAME.postgres.sql.
std::string scenario_sql(const std::string& name) {
  return name + "." + to_string(suite_backend()) + ".sql";
}

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A distinct payment secret per number.
Secret numbered_secret(int n) {
  char bytes[33];
  std::snprintf(bytes, sizeof bytes, "%032d", n);
  const std::string raw(bytes, 32);
  std::string hex;
  for (unsigned char c : raw) {
    hex.push_back("0123456789abcdef"[c >> 4]);
    hex.push_back("0123456789abcdef"[c & 15]);
  }
  return {hex, util::sha256_hex(raw)};
}

std::multiset<std::string> repairs_of(const json& report) {
  std::multiset<std::string> out;
  for (const auto& r : report["repairs"]) {
    out.insert(r["kind"].get<std::string>() + " " + r["flow"].get<std::string>() + " " +
               r["payment_hash"].get<std::string>() + " " + r["from"].get<std::string>() + " " +
               r["to"].get<std::string>() + " " + r["outbox_action"].get<std::string>() +
               (r["applied"].get<bool>() ? " applied" : ""));
  }
  return out;
}

// Details aside: they quote seconds since an update, which differ between two runs.
std::multiset<std::string> divergences_of(const json& list) {
  std::multiset<std::string> out;
  for (const auto& d : list) {
    out.insert(d["kind"].get<std::string>() + " " + d["flow"].dump() + " " +
               d["payment_hash"].get<std::string>() + " " + d["needs_person"].dump() + " " +
               d.value("state", json()).dump());
  }
  return out;
}

// What only one side has, for a failure message a person can read.
std::string only_in(const std::multiset<std::string>& listed,
                    const std::multiset<std::string>& targeted) {
  std::string out;
  for (const auto& x : listed) {
    if (!targeted.count(x)) out += "\n  listing only:  " + x;
  }
  for (const auto& x : targeted) {
    if (!listed.count(x)) out += "\n  targeted only: " + x;
  }
  return out;
}

class Lookup : public SweepFixture {
 protected:
  void serve_scenario(const sim::Scenario& scenario) {
    node_ = std::make_unique<sim::NodeSimulator>(scenario, kToken);
    node_->set_request_log([this](const std::string& line) {
      std::lock_guard lock(log_mutex_);
      requests_.push_back(line);
    });
    node_->start();
  }

  // The requests made since the last call, each "METHOD /path" without the query or body.
  std::vector<std::string> take_requests() {
    std::lock_guard lock(log_mutex_);
    std::vector<std::string> out;
    for (const auto& r : requests_) {
      out.push_back(r.substr(0, std::min(r.find('?'), r.find(' ', r.find(' ') + 1))));
    }
    requests_.clear();
    return out;
  }

  static int count_of(const std::vector<std::string>& requests, const std::string& request) {
    return static_cast<int>(std::count(requests.begin(), requests.end(), request));
  }

  json run_on(TestDatabase& db, const std::vector<std::string>& args) {
    const ProcessResult r = run_sweeper(node_->url(), db.uri_as_sweeper(), args);
    EXPECT_NE(r.exit_code, 2) << r.err;
    return report(r);
  }

  // Runs the full scan (--lookup list --whole-window) on db_ and --lookup targeted on
  // targeted_db_, and expects the same.
  std::pair<json, json> run_both_and_compare() {
    const json listed = run_on(db_, {"--lookup", "list", "--whole-window"});
    const json targeted = run_on(targeted_db_, {"--lookup", "targeted"});
    EXPECT_EQ(listed["lookup"]["mode"], "list");
    EXPECT_EQ(targeted["lookup"]["mode"], "targeted");
    EXPECT_TRUE(listed["complete"]);
    EXPECT_TRUE(targeted["complete"]);
    const auto same = [](const std::multiset<std::string>& a, const std::multiset<std::string>& b) {
      EXPECT_TRUE(a == b) << only_in(a, b);
    };
    same(repairs_of(listed), repairs_of(targeted));
    same(divergences_of(listed["divergences"]), divergences_of(targeted["divergences"]));
    same(divergences_of(listed["resolved_divergences"]),
         divergences_of(targeted["resolved_divergences"]));
    EXPECT_EQ(listed["exit_code"], targeted["exit_code"]);
    EXPECT_EQ(lsp_state(db_), lsp_state(targeted_db_));
    return {listed, targeted};
  }

  void seed_both(const std::string& sql) {
    db_.exec(sql);
    targeted_db_.exec(sql);
  }

  TestDatabase targeted_db_;
  std::mutex log_mutex_;
  std::vector<std::string> requests_;
};

TEST_F(Lookup, LostCallbacksScenarioGivesTheSameRepairsAndDivergencesInBothModes) {
  serve_scenario(sim::load_scenario(kScenarios / "lost_callbacks.json", sim::unix_now()));
  seed_both(read_text(kScenarios / scenario_sql("lost_callbacks")));

  const auto [listed, targeted] = run_both_and_compare();
  EXPECT_GT(listed["summary"]["repairs_applied"], 0);
  EXPECT_GT(listed["summary"]["divergences"], 0);
  // The second runs see what the first left: nothing to repair, the same open divergences.
  const auto [listed2, targeted2] = run_both_and_compare();
  EXPECT_EQ(listed2["summary"]["repairs_planned"], 0);
}

// Every state of both flows (and an unknown one) against every node answer the planner tells
// apart, inside and outside the listings (lookback, status, deferral), then again after some
// payments changed moments ago and others left the node: divergences resolve alike too.
TEST_F(Lookup, EveryStateAgainstEveryNodeAnswerGivesTheSameResultInBothModes) {
  // Every state the planner knows, and one it does not.
  const auto states = [](Flow flow) {
    auto all = plan::known_states(flow);
    all.push_back("bogus");
    return all;
  };
  constexpr std::int64_t kAmount = 1000000;
  constexpr std::int64_t kDays30 = 30 * 24 * 3600;
  const auto hodl = [&](const Secret& s, const std::string& status) {
    json p = hodl_claimable(s.hash, kAmount);
    p["status"] = status;
    return p;
  };
  const auto out = [&](const Secret& s, const std::string& status) {
    json p = outbound_succeeded(s.hash, s.preimage);
    p["amt_msat"] = kAmount;
    p["status"] = status;
    return p;
  };
  // Each variant: the node's payments for one record's hash.
  const std::vector<std::function<json(const Secret&)>> variants{
      [&](const Secret&) { return json::array(); },
      [&](const Secret& s) { return json::array({hodl(s, "Claimable")}); },
      [&](const Secret& s) {
        json p = hodl(s, "Claimable");
        p.erase("claim_deadline_height");
        return json::array({p});
      },
      [&](const Secret& s) {
        json p = hodl(s, "Claimable");
        p["amt_msat"] = kAmount + 1;
        return json::array({p});
      },
      [&](const Secret& s) {
        json p = hodl(s, "Claimable");
        p["claim_deadline_height"] = kHeight;
        return json::array({p});
      },
      [&](const Secret& s) {
        json p = hodl(s, "Claimable");
        p["created_ago"] = kDays30;
        return json::array({p});
      },
      [&](const Secret& s) { return json::array({out(s, "Succeeded")}); },
      [&](const Secret& s) {
        json p = out(s, "Succeeded");
        p["updated_ago"] = 7200;  // past --waiting-grace
        return json::array({p});
      },
      [&](const Secret& s) {
        json p = out(s, "Succeeded");
        p["preimage"] = numbered_secret(0).preimage;
        return json::array({p});
      },
      [&](const Secret& s) {
        json p = out(s, "Succeeded");
        p.erase("preimage");
        return json::array({p});
      },
      [&](const Secret& s) {
        json p = out(s, "Succeeded");
        p["created_ago"] = kDays30;  // outside --lookback
        return json::array({p});
      },
      [&](const Secret& s) {
        json p = out(s, "Succeeded");
        p["updated_ago"] = 2;  // inside --min-age
        return json::array({p});
      },
      [&](const Secret& s) { return json::array({out(s, "Failed")}); },
      [&](const Secret& s) { return json::array({out(s, "Cancelled")}); },
      [&](const Secret& s) {
        json p = out(s, "Failed");
        p["created_ago"] = kDays30;
        return json::array({p});
      },
      [&](const Secret& s) { return json::array({out(s, "Pending")}); },
      [&](const Secret& s) { return json::array({hodl(s, "Failed")}); },
      [&](const Secret& s) { return json::array({hodl(s, "Cancelled")}); },
      [&](const Secret& s) {
        return json::array({hodl(s, "Succeeded"), hodl(s, "Pending")});
      },
      [&](const Secret& s) {
        json p = hodl(s, "Failed");
        p["payment_type"] = "InboundAutoClaim";
        return json::array({p});
      },
      [&](const Secret& s) {
        return json::array({hodl(s, "Claimable"), out(s, "Succeeded")});
      },
      [&](const Secret& s) {
        return json::array({hodl(s, "Cancelled"), out(s, "Failed")});
      },
  };

  json payments = json::array();
  int n = 1;
  for (const Flow flow : {Flow::Apay, Flow::Relay}) {
    for (const auto& status : states(flow)) {
      for (const auto& variant : variants) {
        const Secret s = numbered_secret(n++);
        for (const auto& p : variant(s)) payments.push_back(p);
        for (TestDatabase* db : {&db_, &targeted_db_}) {
          if (flow == Flow::Apay) {
            testing::seed_apay(*db, s.hash, status, kAmount);
          } else {
            testing::seed_relay(*db, s.hash, status, kAmount);
          }
        }
      }
    }
  }
  // Other traffic of the node: orphans for the listings, never asked about by lookups.
  for (int i = 0; i < 5; ++i) payments.push_back(out(numbered_secret(n++), "Succeeded"));
  serve(payments);

  const auto [listed, targeted] = run_both_and_compare();
  EXPECT_GT(listed["summary"]["repairs_applied"], 10);
  EXPECT_GT(listed["summary"]["divergences"], 50);
  EXPECT_EQ(targeted["summary"]["orphans"], 0);
  EXPECT_GT(listed["summary"]["orphans"], 0);

  // A third of the payments changed moments ago (their divergences must stay open), a third
  // left the node (theirs resolve).
  json changed = json::array();
  for (std::size_t i = 0; i < payments.size(); ++i) {
    json p = payments[i];
    if (i % 3 == 1) continue;
    if (i % 3 == 2) p["updated_ago"] = 1;
    changed.push_back(p);
  }
  node_->replace_payments(changed);
  const auto [listed2, targeted2] = run_both_and_compare();
  EXPECT_GT(listed2["summary"]["divergences_resolved"], 0);
  EXPECT_GT(listed2["summary"]["deferred"], 0);
}

// A malformed answer about a leg both modes read is reported by both; one about a leg no
// lookup needs (the record is past it) only by the listing, which reads every payment it lists.
TEST_F(Lookup, MalformedPaymentsAreReportedForTheLegsAModeReads) {
  const Secret read = secret('a'), past = secret('b');
  json bad_read = outbound_succeeded(read.hash, read.preimage);
  bad_read["amt_msat"] = "lots";
  json bad_past = outbound_succeeded(past.hash, past.preimage);
  bad_past["amt_msat"] = "lots";
  serve(json::array({bad_read, bad_past}));
  for (TestDatabase* db : {&db_, &targeted_db_}) {
    testing::seed_apay(*db, read.hash, "outbound_paid", 1000000);
    testing::seed_apay(*db, past.hash, "inbound_claimed", 1000000);
  }
  const json listed = run_on(db_, {"--lookup", "list"});
  const json targeted = run_on(targeted_db_, {"--lookup", "targeted"});
  EXPECT_EQ(divergences_of(listed["divergences"]),
            (std::multiset<std::string>{"malformed_payment null " + read.hash + " true \"new\"",
                                        "malformed_payment null " + past.hash + " true \"new\""}));
  EXPECT_EQ(divergences_of(targeted["divergences"]),
            (std::multiset<std::string>{"malformed_payment null " + read.hash + " true \"new\""}));
}

TEST_F(Lookup, AutoLooksUpUnderTheThresholdAndListsOverIt) {
  serve_scenario(sim::load_scenario(kScenarios / "lost_callbacks.json", sim::unix_now()));
  db_.exec(read_text(kScenarios / scenario_sql("lost_callbacks")));
  const int awaiting = db_.query_value<int>(
      "SELECT (SELECT count(*) FROM async_rotating_invoices WHERE status <> 'inbound_claimed') + "
      "(SELECT count(*) FROM lightning_send_mappings WHERE status <> 'settled')");

  const json dry = run_on(db_, {"--dry-run"});
  EXPECT_EQ(dry["lookup"]["mode"], "targeted");
  EXPECT_EQ(dry["lookup"]["records_awaiting_node"], awaiting);
  EXPECT_NE(dry["lookup"]["reason"].get<std::string>().find("--targeted-max 200"),
            std::string::npos);
  auto requests = take_requests();
  EXPECT_EQ(count_of(requests, "GET /listpayments"), 0);
  EXPECT_EQ(count_of(requests, "POST /getpayment"), dry["lookup"]["getpayment_requests"]);
  EXPECT_GE(count_of(requests, "POST /getpayment"), awaiting);

  const json over = run_on(db_, {"--dry-run", "--targeted-max", "0"});
  EXPECT_EQ(over["lookup"]["mode"], "list");
  EXPECT_EQ(over["lookup"]["records_awaiting_node"], awaiting);
  requests = take_requests();
  EXPECT_EQ(count_of(requests, "POST /getpayment"), 0);
  int listed = 0;
  for (const auto& l : over["lookup"]["listings"]) {
    EXPECT_NE(l["mode"], "targeted");
    listed += l["mode"] == "list";
  }
  EXPECT_GE(count_of(requests, "GET /listpayments"), listed);
  EXPECT_GT(listed, 0);
  // The same plan either way.
  EXPECT_EQ(repairs_of(dry), repairs_of(over));
  EXPECT_EQ(divergences_of(dry["divergences"]), divergences_of(over["divergences"]));

  // A real run, then one with nothing awaiting the node: targeted, and it asks the node nothing
  // but its height.
  db_.exec("UPDATE async_rotating_invoices SET status = 'inbound_claimed'");
  db_.exec("UPDATE lightning_send_mappings SET status = 'settled'");
  take_requests();
  const json idle = run_on(db_, {});
  EXPECT_EQ(idle["lookup"]["mode"], "targeted");
  EXPECT_EQ(idle["lookup"]["records_awaiting_node"], 0);
  EXPECT_EQ(take_requests(), std::vector<std::string>{"GET /networkinfo"});
}

TEST_F(Lookup, AutoListsWhileAMalformedPaymentOfOtherTrafficIsOpen) {
  json bad = outbound_succeeded(secret('m').hash, secret('m').preimage);
  bad["amt_msat"] = "lots";
  serve(json::array({bad}));
  // No record awaits the node, so auto looks up nothing and cannot see this payment, nor does
  // a narrowed listing (no record can need one: each but the held one is skipped); a listing of the
  // whole window does, and opens its divergence.
  EXPECT_EQ(run_on(db_, {})["summary"]["divergences"], 0);
  const json narrowed = run_on(db_, {"--lookup", "list"});
  EXPECT_EQ(narrowed["summary"]["divergences"], 0);
  for (const auto& l : narrowed["lookup"]["listings"]) {
    // Held HODL payments are never narrowed nor skipped; the others are not needed.
    EXPECT_EQ(l["mode"], l["status"] == "Claimable" ? "list" : "skipped") << l;
  }
  EXPECT_EQ(run_on(db_, {"--lookup", "list", "--whole-window"})["summary"]["divergences"], 1);
  const json second = run_on(db_, {});
  EXPECT_EQ(second["lookup"]["mode"], "list");
  EXPECT_NE(second["lookup"]["reason"].get<std::string>().find("malformed_payment"),
            std::string::npos);
  // Forced, it may not resolve what it cannot see.
  node_->replace_payments(json::array());
  const json forced = run_on(db_, {"--lookup", "targeted"});
  EXPECT_EQ(forced["resolved_divergences"], json::array());
  EXPECT_EQ(run_on(db_, {})["summary"]["divergences_resolved"], 1);
}

TEST_F(Lookup, LegacyNodeIsListedEvenWhenFewRecordsAwaitIt) {
  serve_scenario(sim::load_scenario(kScenarios / "legacy.json", sim::unix_now()));
  seed_both(read_text(kScenarios / scenario_sql("lost_callbacks")));
  const json autom = run_on(db_, {});
  EXPECT_EQ(autom["lookup"]["mode"], "list");
  EXPECT_NE(autom["lookup"]["reason"].get<std::string>().find("legacy"), std::string::npos);
  EXPECT_EQ(autom["node"]["dialect"], "legacy");
  const json listed = run_on(targeted_db_, {"--lookup", "list"});
  EXPECT_EQ(repairs_of(autom), repairs_of(listed));
  EXPECT_EQ(divergences_of(autom["divergences"]), divergences_of(listed["divergences"]));
  EXPECT_EQ(autom["notes"], listed["notes"]);
}

TEST_F(Lookup, LegacyNodeFoundByAListingInAutoSaysSo) {
  serve_scenario(sim::load_scenario(kScenarios / "legacy.json", sim::unix_now()));
  seed_both(read_text(kScenarios / scenario_sql("lost_callbacks")));
  // More records than --targeted-max 0: auto lists, and the first listing meets the legacy node.
  const json autom = run_on(db_, {"--dry-run", "--targeted-max", "0"});
  EXPECT_EQ(autom["node"]["dialect"], "legacy");
  EXPECT_EQ(autom["lookup"]["mode"], "list");
  EXPECT_NE(autom["lookup"]["reason"].get<std::string>().find("legacy dialect, which ignores every "
                                                              "filter"),
            std::string::npos)
      << autom["lookup"];
  for (const auto& l : autom["lookup"]["listings"]) EXPECT_EQ(l["mode"], "list") << l;
}

// --- Narrowed listings against the full scan --------------------------------------------------

// Sets the created_at of a record to `ago` seconds before now, in the backend's own form.
void set_created_ago(TestDatabase& db, Flow flow, std::int64_t id, std::int64_t ago) {
  const std::string table =
      flow == Flow::Apay ? "async_rotating_invoices" : "lightning_send_mappings";
  if (db.is_sqlite()) {
    db.exec("UPDATE " + table + " SET created_at = datetime('now', $1) WHERE id = $2",
            "-" + std::to_string(ago) + " seconds", id);
  } else {
    db.exec("UPDATE " + table + " SET created_at = now() - make_interval(secs => $1) WHERE id = $2",
            static_cast<double>(ago), id);
  }
}

// A seeded history: records of both flows in every state (and an unknown one), created over 20
// days, each hash's node payments created after its first record (up to 10 minutes before, as
// clock skew), in every status the planner tells apart: lost callbacks, failed and cancelled
// legs, wrong amounts and preimages, payments changed moments ago, outside the lookback; twin
// rows of a hash (a released reservation's terminal row and a newer one, or two live ones, one
// of them awaiting the node) with payments older than the newer row; other traffic of the node
// (orphans) over 30 days. The same records go to every database given.
json generate_history(std::uint32_t seed, const std::vector<TestDatabase*>& dbs) {
  std::mt19937 rng(seed);
  const auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  constexpr std::int64_t kAmount = 1000000, kDay = 24 * 3600;
  const bool relay = dbs.front()->has_relay();
  json payments = json::array();
  struct Row {
    Flow flow;
    std::string hash, status;
    std::int64_t ago;
  };
  std::vector<Row> rows;
  const auto add_record = [&](Flow flow, const std::string& hash, const std::string& status,
                              std::int64_t ago) {
    rows.push_back({flow, hash, status, ago});
  };
  const auto payment = [&](const Secret& s, bool inbound, std::int64_t not_before_ago) {
    static const char* const kInbound[] = {"Claimable", "Claimable", "Succeeded",
                                           "Failed",    "Cancelled", "Pending"};
    static const char* const kOutbound[] = {"Succeeded", "Succeeded", "Failed", "Cancelled",
                                            "Pending"};
    json p = inbound ? hodl_claimable(s.hash, kAmount) : outbound_succeeded(s.hash, s.preimage);
    p["status"] = inbound ? kInbound[pick(0, 5)] : kOutbound[pick(0, 4)];
    if (!inbound) p["amt_msat"] = kAmount;
    // Most payments come within the hour after their hash's first record (up to 10 minutes
    // before it, the clock skew the margin covers); the rest any time since.
    const std::int64_t created = pick(0, 2) == 0
                                     ? pick(0, not_before_ago + 600)
                                     : std::max<std::int64_t>(0, not_before_ago - pick(-600, 3000));
    p["created_ago"] = created;
    p["updated_ago"] = pick(0, 9) == 0 ? pick(0, 20) : pick(0, created);
    switch (pick(0, 11)) {
      case 0: p["amt_msat"] = kAmount + 1; break;
      case 1: p["claim_deadline_height"] = kHeight; break;
      case 2: p.erase("claim_deadline_height"); break;
      case 3: p["preimage"] = numbered_secret(0).preimage; break;
      case 4:
        // The node keeps one inbound payment per hash, HODL or not.
        if (inbound) p["payment_type"] = "InboundAutoClaim";
        break;
      default: break;
    }
    payments.push_back(p);
  };
  int n = 1000 + static_cast<int>(seed % 1000) * 1000;
  for (int i = 0; i < 80; ++i) {
    const Flow flow = relay && pick(0, 2) == 0 ? Flow::Relay : Flow::Apay;
    auto states = plan::known_states(flow);
    states.push_back("bogus");
    // Most records finished, as on a real LSP; the rest in any state.
    const std::string status =
        pick(0, 2) == 0 ? (flow == Flow::Apay ? "inbound_claimed" : "settled")
                        : states[static_cast<std::size_t>(pick(0, std::ssize(states) - 1))];
    const Secret s = numbered_secret(n++);
    // Finished records over 20 days (past the 14 days of --lookback); the others within it,
    // mostly recent, so that the oldest of them, not the lookback, bounds a listing.
    const bool finished = status == "inbound_claimed" || status == "settled";
    std::int64_t ago = finished ? pick(0, 20 * kDay) : pick(0, pick(0, 3) == 0 ? 10 * kDay : kDay);
    std::int64_t first = ago;
    if (flow == Flow::Apay && !finished && pick(0, 3) == 0) {
      // A twin row of the hash, older: terminal, or live (then both live rows diverge).
      first = ago + pick(600, 3 * kDay);
      add_record(Flow::Apay, s.hash, pick(0, 2) == 0 ? "claimable" : "failed", first);
    }
    add_record(flow, s.hash, status, ago);
    const int legs = static_cast<int>(pick(0, 3));
    if (legs & 1) payment(s, true, first);
    if (legs & 2) payment(s, false, first);
  }
  for (int i = 0; i < 40; ++i) {
    const Secret s = numbered_secret(n++);
    json p = outbound_succeeded(s.hash, s.preimage);
    p["status"] = pick(0, 1) == 0 ? "Succeeded" : "Failed";
    p["created_ago"] = pick(0, 30 * kDay);
    payments.push_back(p);
  }
  for (TestDatabase* db : dbs) {
    db->exec("BEGIN");
    for (const Row& r : rows) {
      std::int64_t id = 0;
      if (r.flow == Flow::Apay) {
        id = testing::seed_apay(*db, r.hash, r.status, kAmount);
      } else {
        testing::seed_relay(*db, r.hash, r.status, kAmount);
        id = db->query_value<std::int64_t>(
            "SELECT id FROM lightning_send_mappings WHERE payment_hash = $1", r.hash);
      }
      set_created_ago(*db, r.flow, id, r.ago);
    }
    db->exec("COMMIT");
  }
  return payments;
}

class Narrowing : public Lookup {
 protected:
  // The full scan on db_, the narrowed listings on targeted_db_ and narrowed auto (with
  // `targeted_max`) on auto_db_: the same repairs, divergences, resolutions, exit code and
  // LSP state afterwards. Returns the three reports.
  std::array<json, 3> run_all_and_compare(const std::string& targeted_max) {
    const json full = run_on(db_, {"--lookup", "list", "--whole-window"});
    const json narrowed = run_on(targeted_db_, {"--lookup", "list"});
    const json autom = run_on(auto_db_, {"--targeted-max", targeted_max});
    for (const json* other : {&narrowed, &autom}) {
      EXPECT_TRUE((*other)["complete"]);
      EXPECT_TRUE(repairs_of(full) == repairs_of(*other))
          << only_in(repairs_of(full), repairs_of(*other));
      EXPECT_TRUE(divergences_of(full["divergences"]) == divergences_of((*other)["divergences"]))
          << only_in(divergences_of(full["divergences"]), divergences_of((*other)["divergences"]));
      EXPECT_TRUE(divergences_of(full["resolved_divergences"]) ==
                  divergences_of((*other)["resolved_divergences"]))
          << only_in(divergences_of(full["resolved_divergences"]),
                     divergences_of((*other)["resolved_divergences"]));
      EXPECT_EQ(full["exit_code"], (*other)["exit_code"]);
    }
    const std::string state = lsp_state(db_);
    EXPECT_EQ(state, lsp_state(targeted_db_));
    EXPECT_EQ(state, lsp_state(auto_db_));
    return {full, narrowed, autom};
  }

  TestDatabase auto_db_;
};

// The differential test of the narrowing (README, "Targeted lookups"): on generated histories,
// the full scan and the narrowed runs agree on everything they find about LSP records, run
// after run, as payments leave the node and others change moments ago.
TEST_F(Narrowing, NarrowedListingsFindWhatTheFullScanFinds) {
  int narrowed_listings = 0, mixed = 0;
  for (const std::uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    for (TestDatabase* db : {&db_, &targeted_db_, &auto_db_}) {
      db->exec("DELETE FROM async_rotating_invoice_outbox");
      db->exec("DELETE FROM async_rotating_invoices");
      if (db->has_relay()) db->exec("DELETE FROM lightning_send_mappings");
      db->exec("DELETE FROM lsp_sweeper.divergences");
    }
    const json payments = generate_history(seed, {&db_, &targeted_db_, &auto_db_});
    serve(payments);
    // Between the listings' counts, so that auto looks some up and lists others.
    std::string targeted_max = "40";
    for (int round = 0; round < 3; ++round) {
      SCOPED_TRACE("round " + std::to_string(round));
      const auto [full, narrowed, autom] = run_all_and_compare(targeted_max);
      if (round == 0) {
        EXPECT_GT(full["summary"]["repairs_applied"], 0);
        EXPECT_GT(full["summary"]["divergences"], 10);
      }
      std::vector<std::int64_t> counts;
      for (const auto& l : full["lookup"]["listings"]) {
        EXPECT_EQ(l["mode"], "list");
        counts.push_back(l["records_awaiting_node"].get<std::int64_t>());
      }
      std::sort(counts.begin(), counts.end());
      targeted_max = std::to_string(counts[1]);
      for (const auto& l : narrowed["lookup"]["listings"]) {
        narrowed_listings += l["mode"] == "list" && l["reason"].get<std::string>().starts_with(
                                                        "from the oldest record that can need it");
      }
      mixed += autom["lookup"]["mode"] == "mixed";
      // Then some payments leave the node (their divergences resolve), others change moments
      // ago (theirs stay open).
      json changed = json::array();
      for (std::size_t i = 0; i < payments.size(); ++i) {
        json p = payments[i];
        if ((i + round) % 3 == 1) continue;
        if ((i + round) % 3 == 2) p["updated_ago"] = 1;
        changed.push_back(p);
      }
      node_->replace_payments(changed);
    }
  }
  // The comparisons above are not vacuous: listings were narrowed, and auto mixed its ways.
  EXPECT_GT(narrowed_listings, 0);
  EXPECT_GT(mixed, 0);
}

// The edges of the narrowing, one at a time: a payment stamped minutes before its record (the
// node's clock behind the LSP's), a payment older than its live row but not than the hash's
// terminal twin (a released reservation's hash back from the pool), a record whose created_at
// cannot be read. Each is found by the narrowed runs as by the full scan.
TEST_F(Narrowing, SkewTwinsAndUnreadableTimesAreCovered) {
  constexpr std::int64_t kDay = 24 * 3600, kAmount = 1000000;
  const auto reset = [&] {
    for (TestDatabase* db : {&db_, &targeted_db_, &auto_db_}) {
      db->exec("DELETE FROM async_rotating_invoice_outbox");
      db->exec("DELETE FROM async_rotating_invoices");
      db->exec("DELETE FROM lsp_sweeper.divergences");
    }
  };
  const auto seed = [&](const std::string& hash, const std::string& status, std::int64_t ago) {
    for (TestDatabase* db : {&db_, &targeted_db_, &auto_db_}) {
      set_created_ago(*db, Flow::Apay, testing::seed_apay(*db, hash, status, kAmount), ago);
    }
  };
  // Skew: the payment_sent the LSP missed is stamped 5 minutes before its record.
  const Secret skewed = numbered_secret(1);
  seed(skewed.hash, "outbound_paid", 2 * kDay);
  json sent = outbound_succeeded(skewed.hash, skewed.preimage);
  sent["created_ago"] = 2 * kDay + 300;
  serve(json::array({sent}));
  json full, narrowed;
  const auto run = [&](const std::string& targeted_max) {
    const auto reports = run_all_and_compare(targeted_max);
    full = reports[0];
    narrowed = reports[1];
  };
  run("200");
  EXPECT_EQ(full["summary"]["repairs_applied"], 1);
  EXPECT_NE(narrowed["lookup"]["listings"][1]["created_after"], nullptr);

  // Twins: the held HTLC of the live row's hash was cancelled before the live row existed.
  reset();
  const Secret twin = numbered_secret(2);
  seed(twin.hash, "failed", 5 * kDay);
  seed(twin.hash, "claimable", kDay);
  json cancelled = hodl_claimable(twin.hash, kAmount);
  cancelled["status"] = "Cancelled";
  cancelled["created_ago"] = 4 * kDay;
  serve(json::array({cancelled}));
  run("0");
  EXPECT_EQ(
      divergences_of(full["divergences"]),
      (std::multiset<std::string>{"node_leg_failed \"apay\" " + twin.hash + " true \"new\""}));
  EXPECT_NE(narrowed["lookup"]["listings"][3]["created_after"], nullptr);

  // An unreadable created_at: the whole window (SQLite only: PostgreSQL's is a timestamptz).
  if (db_.is_sqlite()) {
    reset();
    const Secret old = numbered_secret(3);
    seed(old.hash, "outbound_paid", kDay);
    for (TestDatabase* db : {&db_, &targeted_db_, &auto_db_}) {
      db->exec("UPDATE async_rotating_invoices SET created_at = 'yesterday'");
    }
    json late = outbound_succeeded(old.hash, old.preimage);
    late["created_ago"] = 3 * kDay;
    serve(json::array({late}));
    run("0");
    EXPECT_EQ(full["summary"]["repairs_applied"], 1);
    EXPECT_EQ(narrowed["lookup"]["listings"][1]["reason"],
              "the whole window: a record it may need has a created_at that cannot be read, or "
              "one later than now by more than the clock-skew margin");
  }
}

// What the narrowing gives up, by design (README, "Targeted lookups"): other traffic of the
// node older than every record that can need a listing. Its orphans are not counted, and a
// malformed payment of it is not reported, until a full scan (--whole-window) opened its
// divergence; from then on every run lists the whole window and keeps it open.
TEST_F(Narrowing, OtherTrafficOlderThanEveryRecordInFlightIsNotRead) {
  const Secret mine = numbered_secret(1), orphan = numbered_secret(2), bad = numbered_secret(3);
  for (TestDatabase* db : {&db_, &targeted_db_}) {
    set_created_ago(*db, Flow::Apay, testing::seed_apay(*db, mine.hash, "outbound_paid", 1000000),
                    3600);
  }
  json old_orphan = outbound_succeeded(orphan.hash, orphan.preimage);
  old_orphan["created_ago"] = 3 * 24 * 3600;
  json malformed = outbound_succeeded(bad.hash, bad.preimage);
  malformed["amt_msat"] = "lots";
  malformed["created_ago"] = 3 * 24 * 3600;
  serve(json::array({outbound_succeeded(mine.hash, mine.preimage), old_orphan, malformed}));
  const json narrowed = run_on(targeted_db_, {"--lookup", "list"});
  const json full = run_on(db_, {"--lookup", "list", "--whole-window"});
  EXPECT_EQ(repairs_of(narrowed), repairs_of(full));
  EXPECT_EQ(narrowed["summary"]["orphans"], 0);
  EXPECT_EQ(full["summary"]["orphans"], 1);
  EXPECT_EQ(divergences_of(narrowed["divergences"]), std::multiset<std::string>{});
  EXPECT_EQ(divergences_of(full["divergences"]),
            (std::multiset<std::string>{"malformed_payment null " + bad.hash + " true \"new\""}));
  // Open, it makes the narrowed run list the whole window: it stays open, and is seen again.
  const json after = run_on(db_, {"--lookup", "list"});
  EXPECT_EQ(
      divergences_of(after["divergences"]),
      (std::multiset<std::string>{"malformed_payment null " + bad.hash + " true \"ongoing\""}));
  // Each listing over its whole window, as the full scan (whose bounds are its own run's
  // now - lookback, a second or more earlier).
  ASSERT_EQ(after["lookup"]["listings"].size(), 4u);
  for (const auto& l : after["lookup"]["listings"]) {
    EXPECT_EQ(l["reason"], "the whole window: a malformed_payment divergence is open") << l;
  }
}

TEST_F(Lookup, GetPaymentFaultsEndOrRetryTheRun) {
  const Secret s = secret('k');
  seed_apay(s.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(s.hash, s.preimage)}));

  // Locked after the height was read: the 403 of a lock ends the run, it is not "not found".
  sim::Fault lock;
  lock.kind = sim::FaultKind::Action;
  lock.action = [this] { node_->set_locked(true); };
  node_->inject("/getpayment", 1, lock);
  const ProcessResult locked = sweep();
  EXPECT_EQ(locked.exit_code, 2) << locked.err;
  EXPECT_NE(report(locked)["error"].get<std::string>().find("locked"), std::string::npos);
  EXPECT_EQ(apay_status(s.hash), "outbound_paid");

  // Server errors are retried: the run completes.
  node_->set_locked(false);
  node_->fail_next("/getpayment", 503, 2);
  const ProcessResult retried = sweep();
  EXPECT_EQ(retried.exit_code, 0) << retried.err;
  EXPECT_EQ(report(retried)["lookup"]["mode"], "targeted");
  EXPECT_EQ(apay_status(s.hash), "outbound_claimed");
}

}  // namespace
}  // namespace lsp_sweeper
