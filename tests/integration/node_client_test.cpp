// The real NodeClient (libcurl) against the node simulator over real HTTP on loopback, and the
// simulator's own contract: cursors, filters, both dialects, errors in the node's shape. No
// database. The unit tests script single responses; these check that the client and a server
// that keeps state agree page after page.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "lsp_sweeper/node/client.hpp"
#include "lsp_sweeper/util/hex.hpp"
#include "sim/simulator.hpp"

namespace lsp_sweeper {
namespace {

using nlohmann::json;
using node::Dialect;
using node::NodeClient;
using node::NodeClientOptions;
using node::NodeError;
using node::NodeErrorKind;
using node::PaymentPage;
using node::PaymentQuery;
using node::ScanStats;

constexpr const char* kToken = "node-client-test-token-4kPz";

const std::filesystem::path kScenarios = SCENARIO_DIR;

std::string hash_of(int n) {
  const std::string digits = std::to_string(n);
  return std::string(64 - digits.size(), 'a') + digits;
}

json payment(int n, const std::string& type, const std::string& status, std::int64_t created_ago) {
  return {{"payment_hash", hash_of(n)},
          {"payment_type", type},
          {"status", status},
          {"amt_msat", 1000 * n},
          {"asset_id", nullptr},
          {"asset_amount", nullptr},
          {"created_ago", created_ago},
          {"updated_ago", created_ago},
          {"payee_pubkey", "03" + std::string(64, 'b')},
          {"preimage", nullptr},
          {"description_hash", nullptr}};
}

// Everything a scan delivered, in order.
struct Collected {
  std::vector<NodePayment> payments;
  std::size_t rejected = 0;
  ScanStats stats;
};

class NodeClientSimulator : public ::testing::Test {
 protected:
  void serve(sim::Scenario scenario) {
    sim_ = std::make_unique<sim::NodeSimulator>(std::move(scenario), kToken);
    sim_->start();
  }
  void serve(const json& payments, const std::string& dialect = "paginated") {
    serve(sim::parse_scenario({{"dialect", dialect}, {"payments", payments}}, sim::unix_now()));
  }
  void serve_file(const std::string& name) {
    serve(sim::load_scenario(kScenarios / name, sim::unix_now()));
  }

  NodeClientOptions options(const std::string& token = kToken) const {
    NodeClientOptions o;
    o.base_url = sim_->url();
    o.token = token;
    o.timeout = std::chrono::milliseconds(5000);
    o.first_backoff = std::chrono::milliseconds(1);
    return o;
  }

  Collected scan(const PaymentQuery& query, std::uint32_t page_size) {
    NodeClient client(options());
    Collected out;
    out.stats = client.scan(query, page_size, [&](PaymentPage& page) {
      out.payments.insert(out.payments.end(), page.payments.begin(), page.payments.end());
      out.rejected += page.rejected.size();
    });
    return out;
  }

  std::unique_ptr<sim::NodeSimulator> sim_;
};

NodeErrorKind error_kind(const std::function<void()>& call) {
  try {
    call();
  } catch (const NodeError& e) {
    EXPECT_EQ(std::string(e.what()).find(kToken), std::string::npos) << e.what();
    return e.kind;
  }
  ADD_FAILURE() << "no NodeError";
  return NodeErrorKind::Protocol;
}

// Thirty payments created 100 s apart, oldest first (index 1), cycling through a held inbound,
// a succeeded outbound and an auto-claimed inbound payment.
json thirty_mixed_payments() {
  json payments = json::array();
  for (int i = 1; i <= 30; ++i) {
    const std::int64_t ago = 3000 - 100 * i;
    switch (i % 3) {
      case 1: payments.push_back(payment(i, "InboundHodl", "Claimable", ago)); break;
      case 2: payments.push_back(payment(i, "Outbound", "Succeeded", ago)); break;
      default: payments.push_back(payment(i, "InboundAutoClaim", "Succeeded", ago)); break;
    }
  }
  return payments;
}

TEST_F(NodeClientSimulator, PagesThroughAFilteredListingNewestFirst) {
  serve(thirty_mixed_payments());
  const Collected held = scan({NodeStatus::Claimable, Direction::Inbound, std::nullopt}, 4);

  ASSERT_EQ(held.payments.size(), 10u);  // i = 28, 25, ..., 1
  for (std::size_t k = 0; k < held.payments.size(); ++k) {
    EXPECT_EQ(held.payments[k].payment_hash, hash_of(28 - 3 * static_cast<int>(k)));
    EXPECT_EQ(held.payments[k].type, PaymentType::InboundHodl);
    EXPECT_EQ(held.payments[k].status, NodeStatus::Claimable);
  }
  // Pages of 4, 4 and 2, then the empty page that ends the scan: one request each.
  EXPECT_EQ(held.stats.pages, 4);
  EXPECT_FALSE(held.stats.stopped_at_unindexed);
  EXPECT_EQ(sim_->request_count("/listpayments"), 4u);

  // The outbound filter leaves out the auto-claimed inbound payments of the same status, and
  // created_after cuts the older ones: i = 16..30 were created at most 1400 s ago.
  const Collected recent =
      scan({NodeStatus::Succeeded, Direction::Outbound, sim::unix_now() - 1450}, 2);
  std::vector<std::string> hashes;
  for (const auto& p : recent.payments) hashes.push_back(p.payment_hash);
  EXPECT_EQ(hashes, (std::vector<std::string>{hash_of(29), hash_of(26), hash_of(23), hash_of(20),
                                              hash_of(17)}));
  EXPECT_EQ(recent.stats.pages, 4);  // 2 + 2 + 1, then the empty page
}

TEST_F(NodeClientSimulator, CursorEndingOnIndexZeroStopsInsteadOfLooping) {
  serve_file("index_zero.json");
  // Pages of 4: indexes 6..3, then 2, 1, 0, 0 whose last_index_offset 0 would restart from the
  // newest. The scan stops there, says older payments may be unreachable, and asks no more.
  const Collected full = scan({NodeStatus::Claimable, Direction::Inbound, std::nullopt}, 4);
  EXPECT_EQ(full.payments.size(), 8u);
  EXPECT_EQ(full.stats.pages, 2);
  EXPECT_TRUE(full.stats.stopped_at_unindexed);
  EXPECT_EQ(sim_->request_count("/listpayments"), 2u);

  // Pages of 6: indexes 6..1, then the four 0s, a short page: everything was seen.
  const Collected short_page = scan({}, 6);
  EXPECT_EQ(short_page.payments.size(), 10u);
  EXPECT_EQ(short_page.stats.pages, 2);
  EXPECT_FALSE(short_page.stats.stopped_at_unindexed);
}

TEST_F(NodeClientSimulator, LegacyDialectIsDetectedAndReadInOneRequest) {
  serve_file("legacy.json");
  const Collected all =
      scan({NodeStatus::Succeeded, Direction::Outbound, sim::unix_now() - 14 * 24 * 3600}, 2);
  EXPECT_EQ(all.stats.dialect, Dialect::Legacy);
  EXPECT_EQ(all.stats.pages, 1);
  EXPECT_EQ(sim_->request_count("/listpayments"), 1u);
  // The legacy node ignores the filters and the page size: all five payments, and the held
  // HODL payment shows as a Pending inbound payment of unknown kind.
  ASSERT_EQ(all.payments.size(), 5u);
  EXPECT_EQ(all.rejected, 0u);
  const auto held = std::find_if(all.payments.begin(), all.payments.end(), [](const auto& p) {
    return p.type == PaymentType::InboundUnknown && p.status == NodeStatus::Pending;
  });
  EXPECT_NE(held, all.payments.end());
  EXPECT_EQ(std::count_if(all.payments.begin(), all.payments.end(),
                          [](const auto& p) { return p.status == NodeStatus::Claimable; }),
            0);
}

TEST_F(NodeClientSimulator, LostCallbacksScenarioReadsBothLegsOfAHashAndLowercasesHex) {
  serve_file("lost_callbacks.json");
  const Collected held = scan({NodeStatus::Claimable, Direction::Inbound, std::nullopt}, 3);
  const Collected sent = scan({NodeStatus::Succeeded, Direction::Outbound, std::nullopt}, 3);
  EXPECT_EQ(held.rejected + sent.rejected, 0u);

  const std::string a = "cf8921b9310989e571ae2e628bad038850b1df34e931dd2750ef52db0140abcd";
  const std::string c = "6495ebecdb762335a544f9280106de1b3b09f0d0070cacb3604f3c95b34e0b10";
  const std::string e = "cc9801f5e48c40bd007e82d01ae96cc06f23c3322a42b03e4ae8ed1988477799";
  const auto find = [](const Collected& in, const std::string& hash) -> const NodePayment* {
    for (const auto& p : in.payments) {
      if (p.payment_hash == hash) return &p;
    }
    return nullptr;
  };
  ASSERT_NE(find(held, a), nullptr);  // served in uppercase
  EXPECT_EQ(find(held, a)->claim_deadline_height, 800144);
  ASSERT_NE(find(held, c), nullptr);
  ASSERT_NE(find(sent, c), nullptr);
  // Every outbound preimage of the scenario is genuine except E's, the forged one.
  for (const auto& p : sent.payments) {
    ASSERT_TRUE(p.preimage) << p.payment_hash;
    EXPECT_EQ(util::preimage_matches(*p.preimage, p.payment_hash), p.payment_hash != e)
        << p.payment_hash;
  }
  EXPECT_EQ(sent.payments.size(), 3u);  // C, D, E
  EXPECT_EQ(held.payments.size(), 6u);  // A, B, C, F, G, I
}

TEST_F(NodeClientSimulator, MalformedPaymentsAreServedVerbatimAndRejectedOneByOne) {
  json payments = thirty_mixed_payments();
  payments.push_back({{"payment_hash", "zz"},
                      {"payment_type", "Outbound"},
                      {"status", "Succeeded"},
                      {"amt_msat", -5},
                      {"created_ago", 10},
                      {"updated_ago", 10},
                      {"payee_pubkey", "03"}});
  payments.push_back({{"payment_hash", hash_of(99)},
                      {"payment_type", "Outbound"},
                      {"status", "Succeeded"},
                      {"amt_msat", 1.5e20},
                      {"created_ago", 10},
                      {"updated_ago", 10},
                      {"payee_pubkey", "03"}});
  payments.push_back("not a payment");
  serve(payments);
  const Collected all = scan({}, 7);
  EXPECT_EQ(all.payments.size(), 30u);
  EXPECT_EQ(all.rejected, 3u);
}

TEST_F(NodeClientSimulator, ReadsTheCurrentHeight) {
  serve(json::array());
  NodeClient client(options());
  EXPECT_EQ(client.current_height(), 800000);
  sim_->set_height(800007);
  EXPECT_EQ(client.current_height(), 800007);
}

TEST_F(NodeClientSimulator, RefusedTokenIsUnauthorizedAndNotRetried) {
  serve(json::array());
  NodeClient client(options("not-the-token"));
  EXPECT_EQ(error_kind([&] { client.current_height(); }), NodeErrorKind::Unauthorized);
  EXPECT_EQ(sim_->request_count(), 1u);
}

TEST_F(NodeClientSimulator, LockedNodeIsLockedAndNotRetried) {
  serve(thirty_mixed_payments());
  sim_->set_locked(true);
  NodeClient client(options());
  EXPECT_EQ(error_kind([&] { client.scan({}, 10, [](PaymentPage&) {}); }), NodeErrorKind::Locked);
  EXPECT_EQ(sim_->request_count(), 1u);
  sim_->set_locked(false);
  EXPECT_EQ(client.current_height(), 800000);
}

TEST_F(NodeClientSimulator, GetPaymentLooksUpOneLegOrSaysTheNodeDoesNotKnowIt) {
  serve_file("lost_callbacks.json");
  NodeClient client(options());
  // C: both legs on the node; asked in lowercase, the LSP's form.
  const std::string c = "6495ebecdb762335a544f9280106de1b3b09f0d0070cacb3604f3c95b34e0b10";
  const auto out = client.get_payment(c, PaymentType::Outbound);
  ASSERT_TRUE(out && out->payment);
  EXPECT_EQ(out->dialect, Dialect::Paginated);
  EXPECT_EQ(out->payment->type, PaymentType::Outbound);
  EXPECT_EQ(out->payment->status, NodeStatus::Succeeded);
  EXPECT_EQ(out->payment->payment_hash, c);
  const auto in = client.get_payment(c, PaymentType::InboundHodl);
  ASSERT_TRUE(in && in->payment);
  EXPECT_EQ(in->payment->status, NodeStatus::Claimable);
  // 403 PaymentNotFound is an answer, not an error, and is not retried.
  EXPECT_FALSE(client.get_payment(hash_of(1), PaymentType::Outbound));
  EXPECT_FALSE(client.get_payment(c, PaymentType::InboundAutoClaim));
  EXPECT_EQ(sim_->request_count("/getpayment"), 4u);
}

TEST_F(NodeClientSimulator, GetPaymentRetriesServerErrorsAndALockStaysAnError) {
  serve_file("lost_callbacks.json");
  NodeClient client(options());
  const std::string c = "6495ebecdb762335a544f9280106de1b3b09f0d0070cacb3604f3c95b34e0b10";
  sim_->fail_next("/getpayment", 503, 2);
  EXPECT_TRUE(client.get_payment(c, PaymentType::Outbound));
  EXPECT_EQ(sim_->request_count("/getpayment"), 3u);

  // A locked node answers 403 too, named LockedNode: never mistaken for "not found".
  sim_->set_locked(true);
  EXPECT_EQ(error_kind([&] { client.get_payment(c, PaymentType::Outbound); }),
            NodeErrorKind::Locked);
  EXPECT_EQ(sim_->request_count("/getpayment"), 4u);
}

// A node that answers getpayment about another payment than the one asked for (the real node
// should not; a client must still never plan an answer against the wrong records).
TEST(NodeClientForgedAnswer, GetPaymentAboutAnotherHashOrLegIsAProtocolError) {
  httplib::Server server;
  std::mutex mu;
  json answered;
  server.Post("/getpayment", [&](const httplib::Request&, httplib::Response& res) {
    std::lock_guard lock(mu);
    res.set_content(json{{"payment", answered}}.dump(), "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread listener([&] { server.listen_after_bind(); });
  const auto answer = [&](const std::string& hash, const std::string& type) {
    std::lock_guard lock(mu);
    answered = payment(1, type, type == "Outbound" ? "Succeeded" : "Claimable", 0);
    answered.erase("created_ago");
    answered.erase("updated_ago");
    answered["created_at"] = answered["updated_at"] = sim::unix_now() - 60;
    answered["payment_hash"] = hash;
  };
  NodeClientOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port);
  o.token = kToken;
  o.first_backoff = std::chrono::milliseconds(1);
  NodeClient client(o);
  const std::string asked = hash_of(1);

  answer(hash_of(2), "Outbound");  // another hash
  EXPECT_EQ(error_kind([&] { client.get_payment(asked, PaymentType::Outbound); }),
            NodeErrorKind::Protocol);
  answer(asked, "InboundHodl");  // the other leg of the same hash
  EXPECT_EQ(error_kind([&] { client.get_payment(asked, PaymentType::Outbound); }),
            NodeErrorKind::Protocol);
  answer(asked, "Outbound");  // what was asked: accepted
  const auto found = client.get_payment(asked, PaymentType::Outbound);
  ASSERT_TRUE(found && found->payment);
  EXPECT_EQ(found->payment->payment_hash, asked);

  server.stop();
  listener.join();
}

TEST_F(NodeClientSimulator, GetPaymentFromALegacyNodeSaysItsDialect) {
  serve_file("legacy.json");
  NodeClient client(options());
  const auto answer = client.get_payment(
      "cc9801f5e48c40bd007e82d01ae96cc06f23c3322a42b03e4ae8ed1988477799", PaymentType::Outbound);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->dialect, Dialect::Legacy);
  EXPECT_EQ(client.dialect(), Dialect::Legacy);
}

TEST_F(NodeClientSimulator, ResponseOverTheSizeLimitIsAProtocolError) {
  serve(thirty_mixed_payments());
  NodeClientOptions o = options();
  o.max_response_bytes = 2048;  // one page of 30 payments is about 10 kB
  NodeClient client(o);
  EXPECT_EQ(error_kind([&] { client.scan({}, 100, [](PaymentPage&) {}); }),
            NodeErrorKind::Protocol);
  EXPECT_EQ(sim_->request_count(), 1u);
}

TEST_F(NodeClientSimulator, ServiceUnavailableIsRetriedThenGivenUp) {
  serve(thirty_mixed_payments());
  NodeClient client(options());  // 4 attempts
  sim_->fail_next("/networkinfo", 503, 3);
  EXPECT_EQ(client.current_height(), 800000);
  EXPECT_EQ(sim_->request_count("/networkinfo"), 4u);

  sim_->fail_next("/listpayments", 503, 4);
  EXPECT_EQ(error_kind([&] { client.scan({}, 10, [](PaymentPage&) {}); }),
            NodeErrorKind::Transport);
  EXPECT_EQ(sim_->request_count("/listpayments"), 4u);
}

// --- Prefetch: the next page is fetched while the caller handles this one ---

// Waits (`patience` at most) until the simulator has received `n` listing requests; their
// count then.
std::uint64_t listing_requests_reach(const sim::NodeSimulator& node, std::uint64_t n,
                                     std::chrono::milliseconds patience = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (node.request_count("/listpayments") < n && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return node.request_count("/listpayments");
}

sim::Fault fault(sim::FaultKind kind, int status = 500) {
  sim::Fault f;
  f.kind = kind;
  f.status = status;
  return f;
}

TEST_F(NodeClientSimulator, NextPageIsAskedForWhileThisOneIsHandledAndPagesStayInOrder) {
  serve(thirty_mixed_payments());
  NodeClient client(options());
  std::vector<std::string> hashes;
  std::vector<std::uint64_t> requests_seen;  // by each page's callback, page k waiting for k + 1
  const ScanStats stats = client.scan({}, 4, [&](PaymentPage& page) {
    requests_seen.push_back(listing_requests_reach(*sim_, requests_seen.size() + 2));
    // The callback may use the client meanwhile: the two requests take turns.
    EXPECT_EQ(client.current_height(), 800000);
    for (const auto& p : page.payments) hashes.push_back(p.payment_hash);
  });

  std::vector<std::string> newest_first;
  for (int i = 30; i >= 1; --i) newest_first.push_back(hash_of(i));
  EXPECT_EQ(hashes, newest_first);
  // Pages of 4 (seven) and 2, then the empty page that ends the scan; each page's successor
  // was asked for during its callback, and not one request more than a serial scan makes.
  EXPECT_EQ(stats.pages, 9);
  EXPECT_EQ(requests_seen, (std::vector<std::uint64_t>{2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(sim_->request_count("/listpayments"), 9u);
}

TEST_F(NodeClientSimulator, NoPageIsAskedForPastACursorThatEndsTheScan) {
  serve_file("index_zero.json");
  NodeClient client(options());
  // Pages of 4: the second ends on index 0, which ends the scan: nothing is fetched after it,
  // however long its callback takes.
  int handled = 0;
  const ScanStats stats =
      client.scan({NodeStatus::Claimable, Direction::Inbound, std::nullopt}, 4, [&](PaymentPage&) {
        if (++handled == 2) listing_requests_reach(*sim_, 3, std::chrono::milliseconds(300));
      });
  EXPECT_EQ(handled, 2);
  EXPECT_TRUE(stats.stopped_at_unindexed);
  EXPECT_EQ(sim_->request_count("/listpayments"), 2u);
}

TEST_F(NodeClientSimulator, FaultOnAPrefetchedPageSurfacesAfterThePagesBeforeIt) {
  serve(thirty_mixed_payments());
  NodeClient client(options());
  // Page 3 comes back cut: a protocol error, not retried, reported once pages 1 and 2 are
  // handled, naming page 3 and its cursor exactly as a serial scan does.
  sim_->inject("/listpayments", 3, fault(sim::FaultKind::TruncatedBody));
  int handled = 0;
  try {
    client.scan({}, 4, [&](PaymentPage&) { ++handled; });
    ADD_FAILURE() << "no NodeError";
  } catch (const NodeError& e) {
    EXPECT_EQ(e.kind, NodeErrorKind::Protocol);
    EXPECT_TRUE(std::string(e.what()).starts_with("GET /listpayments page 3 (index_offset=23): "))
        << e.what();
  }
  EXPECT_EQ(handled, 2);
  EXPECT_EQ(sim_->request_count("/listpayments"), 3u);

  // A transient fault on a prefetched page is retried as before, and the scan completes.
  sim_->inject("/listpayments", 6, fault(sim::FaultKind::Status, 503));
  std::size_t payments = 0;
  const ScanStats stats =
      client.scan({}, 4, [&](PaymentPage& page) { payments += page.payments.size(); });
  EXPECT_EQ(payments, 30u);
  EXPECT_EQ(stats.pages, 9);
  EXPECT_EQ(sim_->request_count("/listpayments"), 3u + 9u + 1u);  // one retry
}

TEST_F(NodeClientSimulator, ACallbackErrorWinsOverThePrefetchedPage) {
  serve(thirty_mixed_payments());
  NodeClient client(options());
  sim_->inject("/listpayments", 3, fault(sim::FaultKind::TruncatedBody));
  struct StoreDown {};
  int handled = 0;
  EXPECT_THROW(client.scan({}, 4,
                           [&](PaymentPage&) {
                             if (++handled == 2) throw StoreDown{};
                           }),
               StoreDown);
  // Page 3 had been asked for while page 2 was handled; nothing after it.
  EXPECT_EQ(sim_->request_count("/listpayments"), 3u);
}

// --- The simulator's own contract, seen through plain HTTP requests ---

struct Reply {
  long status = 0;
  std::string content_type;
  std::string body;
  json doc() const { return json::parse(body); }
};

std::size_t append_body(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// One request, without the client's retries or checks, so any answer can be looked at.
Reply request(const std::string& url, const std::string& token, const std::string& post = {}) {
  Reply reply;
  CURL* curl = curl_easy_init();
  curl_slist* headers = nullptr;
  if (!token.empty())
    headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
  headers = curl_slist_append(headers, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  if (!post.empty()) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post.c_str());
  EXPECT_EQ(curl_easy_perform(curl), CURLE_OK) << url;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  const char* type = nullptr;
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
  if (type != nullptr) reply.content_type = type;
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return reply;
}

class NodeSimulatorContract : public NodeClientSimulator {
 protected:
  Reply get(const std::string& path, const std::string& token = kToken) {
    return request(sim_->url() + path, token);
  }
  Reply post(const std::string& path, const json& body) {
    return request(sim_->url() + path, kToken, body.dump());
  }
};

TEST_F(NodeSimulatorContract, ErrorsHaveTheNodeShapeAndEveryAnswerIsJson) {
  serve(thirty_mixed_payments());
  const Reply no_token = get("/listpayments", "");
  EXPECT_EQ(no_token.status, 401);
  EXPECT_EQ(no_token.content_type, "application/json");
  EXPECT_EQ(no_token.doc(),
            (json{{"code", 401}, {"error", "Unauthorized"}, {"name", "Unauthorized"}}));

  sim_->set_locked(true);
  const Reply locked = get("/networkinfo");
  EXPECT_EQ(locked.status, 403);
  EXPECT_EQ(locked.doc()["name"], "LockedNode");
  sim_->set_locked(false);

  const Reply unknown = get("/nosuchpath");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.content_type, "application/json");
  EXPECT_EQ(unknown.doc()["code"], 404);

  const Reply bad_query = get("/listpayments?status=Sleeping");
  EXPECT_EQ(bad_query.status, 400);
  EXPECT_EQ(bad_query.content_type, "application/json");

  sim_->fail_next("/networkinfo", 500);
  EXPECT_EQ(get("/networkinfo").status, 500);
  EXPECT_EQ(get("/networkinfo").status, 200);
  EXPECT_EQ(sim_->request_count("/networkinfo"), 3u);
  EXPECT_EQ(sim_->request_count(), 6u);
}

TEST_F(NodeSimulatorContract, ZeroCursorStartsOverFromTheNewestLikeTheRealNode) {
  serve_file("index_zero.json");
  const json first = get("/listpayments?max_payments=4").doc();
  EXPECT_EQ(first["first_index_offset"], 6);
  EXPECT_EQ(first["last_index_offset"], 3);
  const json second = get("/listpayments?max_payments=4&index_offset=3").doc();
  EXPECT_EQ(second["first_index_offset"], 2);
  EXPECT_EQ(second["last_index_offset"], 0);
  // A client that trusts that 0 gets the first page again, for ever.
  EXPECT_EQ(get("/listpayments?max_payments=4&index_offset=0").doc(), first);
  // The default page size is 100; the payments are the scenario's, minus the simulator's keys.
  const json all = get("/listpayments").doc();
  ASSERT_EQ(all["payments"].size(), 10u);
  for (const auto& p : all["payments"]) {
    EXPECT_FALSE(p.contains("index") || p.contains("label") || p.contains("created_ago"));
    EXPECT_TRUE(p["created_at"].is_number_integer());
  }
}

TEST_F(NodeSimulatorContract, GetPaymentFindsAHashPerDirectionInAnyCase) {
  serve_file("lost_callbacks.json");
  const std::string c = "6495EBECDB762335A544F9280106DE1B3B09F0D0070CACB3604F3C95B34E0B10";
  const Reply out = post("/getpayment", {{"payment_hash", c}, {"payment_type", "Outbound"}});
  EXPECT_EQ(out.status, 200);
  EXPECT_EQ(out.doc()["payment"]["status"], "Succeeded");
  const Reply in = post("/getpayment", {{"payment_hash", c}, {"payment_type", "InboundHodl"}});
  EXPECT_EQ(in.doc()["payment"]["status"], "Claimable");
  // The real node answers an unknown payment 403, the status it also uses for a locked node.
  const Reply missing =
      post("/getpayment", {{"payment_hash", hash_of(1)}, {"payment_type", "Outbound"}});
  EXPECT_EQ(missing.status, 403);
  EXPECT_EQ(missing.doc()["name"], "PaymentNotFound");

  ASSERT_TRUE(sim_->set_payment_status(c, "InboundHodl", "Succeeded", std::string(64, 'f')));
  const json now =
      post("/getpayment", {{"payment_hash", c}, {"payment_type", "InboundHodl"}}).doc()["payment"];
  EXPECT_EQ(now["status"], "Succeeded");
  EXPECT_EQ(now["preimage"], std::string(64, 'f'));
  EXPECT_FALSE(sim_->set_payment_status(hash_of(1), "Outbound", "Failed"));
}

TEST_F(NodeSimulatorContract, LegacyDialectSpeaksTheOldContract) {
  serve_file("legacy.json");
  const json all = get("/listpayments?max_payments=1&status=Failed&index_offset=3").doc();
  EXPECT_EQ(all.size(), 1u);  // only "payments": no cursors
  ASSERT_EQ(all["payments"].size(), 5u);
  for (const auto& p : all["payments"]) {
    EXPECT_FALSE(p.contains("payment_type"));
    EXPECT_TRUE(p["inbound"].is_boolean());
    EXPECT_NE(p["status"], "Claimable");
  }
  // The legacy request has no payment_type.
  const Reply one = post("/getpayment", {{"payment_hash", all["payments"][0]["payment_hash"]}});
  EXPECT_EQ(one.status, 200);
  EXPECT_TRUE(one.doc()["payment"].contains("inbound"));
}

TEST(NodeSimulatorScenario, IndexesDefaultToFileOrderAndRelativeTimesResolve) {
  const json doc = json::parse(R"({"payments": [
      {"index": 0, "created_ago": 100},
      {"label": "first indexed", "updated_ago": 5},
      {"index": 7},
      {}]})");
  const sim::Scenario s = sim::parse_scenario(doc, 1000);
  ASSERT_EQ(s.payments.size(), 4u);
  EXPECT_EQ(s.payments[0].index, 0u);
  EXPECT_EQ(s.payments[0].wire, (json{{"created_at", 900}}));
  EXPECT_EQ(s.payments[1].index, 1u);
  EXPECT_EQ(s.payments[1].wire, (json{{"updated_at", 995}}));
  EXPECT_EQ(s.payments[2].index, 7u);
  EXPECT_EQ(s.payments[3].index, 8u);
  EXPECT_EQ(s.dialect, sim::Dialect::Paginated);
  EXPECT_EQ(s.height, 800000);
}

TEST(NodeSimulatorScenario, AuthorMistakesAreRefused) {
  for (const char* bad :
       {R"({"payments": [{"index": -1}]})", R"({"payments": [{"index": "3"}]})",
        R"({"payments": [{"created_ago": 5, "created_at": 7}]})",
        R"({"payments": [{"updated_ago": 1.5}]})", R"({"dialect": "soap", "payments": []})",
        R"({"height": "tall", "payments": []})", R"({"dialect": "legacy"})",
        R"({"payments": {}})"}) {
    EXPECT_THROW(sim::parse_scenario(json::parse(bad), 1000), sim::ScenarioError) << bad;
  }
}

}  // namespace
}  // namespace lsp_sweeper
