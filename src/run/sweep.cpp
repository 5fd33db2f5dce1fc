#include "lsp_sweeper/run/sweep.hpp"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "lsp_sweeper/util/hex.hpp"

namespace lsp_sweeper::run {

namespace {

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// The listings that can hold a missed callback or a failed leg, in the order they run (held
// HODL payments first, so a claimable repair lands before the same hash's outbound leg is
// judged), over their whole window: held HODL payments have no time bound (they stay
// Claimable until claimed or timed out); the rest are bounded by the lookback window so a
// steady-state sweep does not walk the whole history. The run narrows each further
// (Sweep::plan_listings).
std::vector<node::PaymentQuery> queries(std::int64_t created_after) {
  return {
      {NodeStatus::Claimable, Direction::Inbound, std::nullopt},
      {NodeStatus::Succeeded, Direction::Outbound, created_after},
      {NodeStatus::Failed, std::nullopt, created_after},
      {NodeStatus::Cancelled, std::nullopt, created_after},
  };
}

// How long before the oldest record a listing still needs its payments are still listed. A
// node payment of a hash is newer than the LSP's first record of it: the LSP writes the record
// and then asks the node for the invoice (or pays), and the payer can only pay an invoice it
// was given. The LSP's database and the node stamp the two with their own clocks, so the margin
// covers the skew between them (and a record committed a moment after its invoice): an hour is
// far more than NTP-kept clocks drift, and small against a lookback of days. A record stamped
// more than this past the run's start shows a skew it does not cover: the run then narrows
// nothing.
constexpr std::int64_t kSkewMargin = 3600;

// Records per batch of targeted lookups: each batch is then planned like a page of a listing.
constexpr std::size_t kLookupBatch = 100;

// Most records with a malformed payment_hash reported per flow and run: each is a divergence
// for a person, and a table full of them says enough with the first ones.
constexpr std::int64_t kMalformedHashLimit = 1000;

class Sweep {
  using Way = report::ListingWay;

  // One of the node's listings: what a listing of it asks (narrowed), and its whole window,
  // which payments looked up one by one are held to.
  struct Listing {
    node::PaymentQuery query;
    node::PaymentQuery window;
  };

 public:
  Sweep(node::PaymentSource& node, store::Backend& db, const SweepOptions& options,
        report::RunResult& result, lsp::CallbackEndpoints* lsp)
      : node_(node),
        records_(*db.records),
        applier_(*db.applier),
        ledger_(*db.ledger),
        flows_(records_.flows()),
        options_(options),
        result_(result) {
    if (options.apply == ApplyMode::LspCallbacks) {
      if (!lsp) throw std::invalid_argument("--apply lsp-callbacks needs the LSP's endpoints");
      replayer_.emplace(*lsp, records_, options.replay);
    }
  }

  void run() {
    const std::int64_t now = unix_seconds(result_.started_at);
    context_.now = now;
    context_.min_age = options_.min_age;
    context_.waiting_grace = options_.waiting_grace;
    context_.claim_min_blocks = options_.claim_min_blocks;
    context_.current_height = node_.current_height();
    result_.node.height = context_.current_height;
    if (std::find(flows_.begin(), flows_.end(), Flow::Relay) == flows_.end()) {
      note(
          "the LSP database has no lightning_send_mappings table: the relay flow was not "
          "reconciled");
    }

    check_record_hashes();
    ask_node(now);

    for (Flow flow : flows_) {
      records_.records_lacking_outbox_job(
          flow, plan::jobs_required_by_state(flow), options_.page_size,
          [this](std::vector<LspRecord>& records) {
            // Reported by check_record_hashes, never repaired.
            std::erase_if(records,
                          [](const LspRecord& r) { return !plan::is_lookup_hash(r.payment_hash); });
            apply(plan::plan_missing_outbox_jobs(records, outbound_legs(records)));
            return true;
          });
    }

    // Jobs the LSP may never finish: reported, never edited, retried or deleted.
    plan::Plan stuck;
    stuck.divergences = plan::divergences_for_stuck_jobs(records_.stuck_jobs(options_.stuck_after));
    apply(std::move(stuck));
  }

  // Live records whose payment_hash is not 64 lowercase hex digits: no lookup by the node's
  // normalized hash finds them, so their payments would count as orphans and their repairs be
  // lost in silence. Each is a RecordHashMalformed divergence instead; a node payment whose
  // hash one of them spells in another case is left alone (neither an orphan nor planned),
  // and no targeted lookup or missing-job repair is made for them.
  void check_record_hashes() {
    for (Flow flow : flows_) {
      const std::vector<LspRecord> records = records_.records_with_malformed_hash(
          flow, plan::terminal_states(flow), kMalformedHashLimit);
      if (std::ssize(records) >= kMalformedHashLimit) {
        note("more than " + std::to_string(kMalformedHashLimit - 1) + " live " +
             std::string(to_string(flow)) +
             " records have a payment_hash that is not 64 lowercase hex digits; the first " +
             std::to_string(kMalformedHashLimit) + " are reported");
      }
      for (const LspRecord& r : records) {
        if (auto lower = util::normalize_hex32(r.payment_hash)) unmatchable_.insert(*lower);
      }
      plan::Plan plan;
      plan.divergences = plan::divergences_for_malformed_hashes(records);
      apply(std::move(plan));
    }
  }

  // Decides how each listing runs (plan_listings), then runs them in order: a listed one page
  // by page, consecutive looked-up ones in one pass of targeted lookups. A legacy node, found
  // by either, is listed once, whole, as it ignores every filter.
  void ask_node(std::int64_t now) {
    plan_listings(now);
    for (std::size_t i = 0; i < listings_.size();) {
      const Way way = result_.lookup.listings[i].way;
      if (way == Way::Skipped) {
        ++i;
        continue;
      }
      if (way == Way::Listed) {
        if (!list_one(listings_[i].query)) {
          if (options_.lookup == LookupMode::Auto) {
            result_.lookup.reason =
                "the node speaks the legacy dialect, which ignores every filter: its whole "
                "history was listed once";
          }
          all_listed();
          return;
        }
        ++i;
        continue;
      }
      std::vector<std::size_t> group;
      for (; i < listings_.size() && result_.lookup.listings[i].way != Way::Listed; ++i) {
        if (result_.lookup.listings[i].way == Way::LookedUp) group.push_back(i);
      }
      if (!look_up_targeted(group)) {
        result_.lookup.reason =
            "the node speaks the legacy dialect, whose getpayment cannot tell a hash's inbound "
            "and outbound legs apart";
        list_one(listings_.front().window);
        all_listed();
        return;
      }
    }
  }

  // A legacy node was listed whole: that answered every listing.
  void all_listed() {
    for (auto& l : result_.lookup.listings) {
      l.way = Way::Listed;
      l.created_after.reset();
    }
  }

  // Each listing's way and bound, from one read of the records per flow. A listing asks only
  // for what can still matter: a node payment concerns a record created before it, so a
  // listing reaches back no further than the oldest record a payment of its status could
  // change (plan::legs_to_look_up, per status), or of an open divergence, less kSkewMargin,
  // and within the lookback; one that no record can need is skipped. Records in an unreadable
  // (or future) created_at, an open malformed_payment divergence (only a listing of the whole
  // window sees it again) or SweepOptions::narrow off: the whole window. Then, per listing, as
  // auto mode chose for the whole run before: targeted lookups for at most --targeted-max
  // records, else the listing; --lookup list and targeted force one way for every listing.
  void plan_listings(std::int64_t now) {
    auto& lookup = result_.lookup;
    // Open divergences keep their records looked at (a deferred payment keeps one open, as a
    // listing would); one that belongs to no record (a malformed payment) only a listing sees.
    std::int64_t unbound = 0;
    for (const StoredDivergence& d : ledger_.open_divergences()) {
      if (d.divergence.flow) {
        open_hashes_.insert(d.divergence.payment_hash);
      } else if (d.divergence.kind == plan::DivergenceKind::MalformedPayment) {
        ++unbound;
      }
    }
    any_open_ = unbound > 0 || !open_hashes_.empty();
    // Live twins are reported by whichever payment of their hash is planned, so they are
    // looked at as an open divergence's records are.
    for (Flow flow : flows_) {
      for (std::string& hash :
           records_.live_twin_hashes(flow, plan::terminal_states(flow), kMalformedHashLimit)) {
        open_hashes_.insert(std::move(hash));
      }
    }
    for (const auto& q : queries(now - options_.lookback)) listings_.push_back({q, q});
    // [0]: any listing (every record awaiting the node), then each listing's own.
    std::vector<store::AwaitingSince> need(listings_.size() + 1);
    const std::vector<std::string> open(open_hashes_.begin(), open_hashes_.end());
    for (Flow flow : flows_) {
      std::vector<std::vector<std::string>> quiet{plan::states_needing_no_lookup(flow)};
      for (const Listing& l : listings_) {
        quiet.push_back(plan::states_needing_no_lookup(flow, *l.window.status));
      }
      const auto found = records_.awaiting_node_since(flow, quiet, open);
      for (std::size_t i = 0; i < need.size(); ++i) {
        store::AwaitingSince& n = need[i];
        const store::AwaitingSince& f = found[i];
        n.records += f.records;
        if (f.oldest) n.oldest = std::min(n.oldest.value_or(*f.oldest), *f.oldest);
        if (f.newest) n.newest = std::max(n.newest.value_or(*f.newest), *f.newest);
        n.unreadable = n.unreadable || f.unreadable;
      }
    }
    const auto open_count = static_cast<std::int64_t>(open_hashes_.size());
    lookup.records_awaiting_node = open_count + need[0].records;

    const std::string max = std::to_string(options_.targeted_max);
    const bool whole_window = !options_.narrow || unbound > 0;
    if (options_.lookup == LookupMode::List) {
      lookup.reason = "--lookup list";
    } else if (options_.lookup == LookupMode::Targeted) {
      lookup.reason = "--lookup targeted";
    } else if (unbound > 0) {
      lookup.reason = "a malformed_payment divergence is open: only a listing sees it again";
    } else {
      lookup.reason = "each listing looked up when at most --targeted-max " + max +
                      " records can need it, else listed";
    }
    if (unbound > 0 && options_.lookup == LookupMode::Targeted) {
      saw_everything_ = false;
      note(
          "targeted lookups cannot see malformed payments of other traffic; open divergences "
          "were left open");
    }
    for (std::size_t i = 0; i < listings_.size(); ++i) {
      const store::AwaitingSince& n = need[i + 1];
      Listing& listing = listings_[i];
      report::ListingLookup entry;
      entry.status = *listing.window.status;
      entry.records_awaiting_node = open_count + n.records;
      if (options_.lookup == LookupMode::Targeted) {
        entry.way = Way::LookedUp;
      } else if (options_.lookup == LookupMode::List || unbound > 0) {
        entry.way = Way::Listed;
      } else {
        entry.way =
            entry.records_awaiting_node <= options_.targeted_max ? Way::LookedUp : Way::Listed;
      }
      if (whole_window) {
        entry.reason = options_.narrow ? "the whole window: a malformed_payment divergence is open"
                                       : "the whole window: narrowing is off";
      } else if (n.unreadable || (n.newest && *n.newest > now + kSkewMargin)) {
        entry.reason =
            "the whole window: a record it may need has a created_at that cannot be read, or one "
            "later than now by more than the clock-skew margin";
      } else if (entry.status == NodeStatus::Claimable) {
        // Held HODL payments are few (each a locked HTLC) and every one is worth seeing: an
        // answer of the node about one that contradicts another is found only if it is read.
        // Looked up, they are held to the whole window as every looked-up payment is.
        entry.reason = "the whole window: held HODL payments are never narrowed";
      } else if (!n.oldest) {
        entry.way = Way::Skipped;
        entry.reason = "no record can need a payment of this status";
      } else {
        // Looked up payments are held to the whole window: narrowing saves them nothing.
        const std::int64_t from = *n.oldest - kSkewMargin;
        if (!listing.window.created_after || from > *listing.window.created_after) {
          listing.query.created_after = from;
        }
        entry.reason = "from the oldest record that can need it, less " +
                       std::to_string(kSkewMargin) + " s for clock skew";
      }
      if (entry.way == Way::Listed) entry.created_after = listing.query.created_after;
      lookup.listings.push_back(std::move(entry));
    }
  }

  // Lists one query, page by page. False when the node speaks the legacy dialect: it ignores
  // every filter and returned its whole history at once, which is then read in full (a page cut
  // by a narrowed bound is read again without it), and no other listing is needed.
  bool list_one(const node::PaymentQuery& query) {
    listing_pages_ = 0;
    bool cut_legacy_page = false;
    node::ScanStats stats = node_.scan(query, options_.page_size, [&](node::PaymentPage& page) {
      if (page.dialect == node::Dialect::Legacy && query.created_after) {
        cut_legacy_page = true;
      } else {
        on_page(page);
      }
    });
    result_.node.pages += stats.pages;
    if (cut_legacy_page) {
      node::PaymentQuery whole = query;
      whole.created_after.reset();
      stats =
          node_.scan(whole, options_.page_size, [this](node::PaymentPage& page) { on_page(page); });
      result_.node.pages += stats.pages;
    }
    result_.node.dialect = stats.dialect;
    if (stats.stopped_at_unindexed) {
      saw_everything_ = false;
      note(
          "the node's cursor reached payments stored before it had an index (index 0); "
          "older payments of this listing cannot be paged and were not checked");
    }
    if (stats.dialect == node::Dialect::Legacy) {
      saw_everything_ = false;
      // The legacy node ignores every filter and returned its whole history at once.
      note(
          "legacy node API: it has no Claimable status, so missed claimable callbacks "
          "cannot be checked; payment_sent and failed legs were checked");
      return false;
    }
    return true;
  }

  // Asks the node about each record awaiting a payment of the listings `group` (consecutive
  // ones, by index) instead of listing them. False: the node speaks the legacy dialect, whose
  // getpayment cannot tell a hash's two legs apart; the run lists instead.
  //
  // Same repairs and divergences as those listings: a record left out is one no payment of
  // their statuses can change (plan::legs_to_look_up per status), each payment found is held
  // to the listings' own filters over their whole window (node::matches, --lookback included)
  // and then planned exactly as a listed one, deferral included; records with an open
  // divergence are looked up too, so a deferred payment keeps it open as a listing would. A
  // listing alone sees malformed payments of other traffic: auto mode lists while such a
  // divergence is open, forced targeted leaves it open.
  bool look_up_targeted(const std::vector<std::size_t>& group) {
    std::vector<node::PaymentQuery> windows;
    for (std::size_t i : group) windows.push_back(listings_[i].window);
    const auto legs_of = [&](Flow flow, std::string_view status) {
      plan::Legs any;
      for (const auto& w : windows) {
        const plan::Legs legs = plan::legs_to_look_up(flow, status, *w.status);
        any.inbound = any.inbound || legs.inbound;
        any.outbound = any.outbound || legs.outbound;
      }
      return any;
    };
    bool legacy = false;
    std::set<std::string> looked_up;  // the open-divergence hashes met among awaiting records
    // One page per listing, planned in the listings' order.
    const auto look_up_batch = [&](std::vector<LspRecord>& batch, bool open_divergence) {
      std::vector<node::PaymentPage> pages(windows.size());
      for (const LspRecord& record : batch) {
        // A RecordHashMalformed divergence already: the node's answer could not be matched.
        if (!plan::is_lookup_hash(record.payment_hash)) continue;
        const bool open = open_divergence || open_hashes_.contains(record.payment_hash);
        if (open) looked_up.insert(record.payment_hash);
        const plan::Legs legs = open ? plan::Legs{true, true} : legs_of(record.flow, record.status);
        for (const auto& [needed, leg] : {std::pair{legs.inbound, Direction::Inbound},
                                          std::pair{legs.outbound, Direction::Outbound}}) {
          if (needed && !look_up(record.payment_hash, leg, windows, pages)) {
            legacy = true;
            return false;
          }
        }
      }
      for (auto& page : pages) {
        if (!page.payments.empty() || !page.rejected.empty()) on_page(page);
      }
      return true;
    };
    for (Flow flow : flows_) {
      if (legacy) break;
      // The known states in which no listing of the group needs either leg.
      std::vector<std::string> quiet;
      for (const std::string& status : plan::known_states(flow)) {
        const plan::Legs legs = legs_of(flow, status);
        if (!legs.inbound && !legs.outbound) quiet.push_back(status);
      }
      records_.records_awaiting_node(flow, quiet, kLookupBatch, [&](std::vector<LspRecord>& batch) {
        return look_up_batch(batch, false);
      });
    }
    // The records of open divergences that no payment can change any more: one batch, since
    // open divergences are few.
    std::vector<std::string> rest;
    for (const std::string& hash : open_hashes_) {
      if (!looked_up.contains(hash)) rest.push_back(hash);
    }
    if (!legacy && !rest.empty()) {
      std::vector<LspRecord> records = records_.records_for(rest);
      look_up_batch(records, true);
    }
    // No payment found, so no answer told the dialect; it matters only to open divergences,
    // which a legacy node's listing would leave open.
    if (!legacy && !result_.node.dialect && any_open_) {
      result_.node.dialect = node_.dialect();
      legacy = result_.node.dialect == node::Dialect::Legacy;
    }
    return !legacy;
  }

  // Which open divergences this run may resolve. Only a run that read every listing to its
  // end can tell "gone" from "not looked at": a legacy node has no Claimable listing, and a
  // cursor stuck at index 0 leaves older payments unread, so such runs resolve nothing.
  // Payments deferred by --min-age were seen but not judged: theirs stay open either way.
  // A payment that fell out of --lookback is not seen again, and its divergence resolves:
  // the lookback is the operator's statement of how far back still matters.
  void record_divergences() {
    auto update = ledger_.record_divergences(result_.divergences, saw_everything_, deferred_);
    result_.tracked = std::move(update.seen);
    result_.resolved = std::move(update.resolved);
    result_.divergences_recorded = true;
    for (const auto& d : result_.resolved) {
      spdlog::info("divergence resolved {} {} {} (open since {})",
                   plan::to_string(d.divergence.kind),
                   d.divergence.flow ? to_string(*d.divergence.flow) : "-",
                   d.divergence.payment_hash, report::rfc3339(report::from_unix(d.first_seen_at)));
    }
  }

 private:
  void on_page(node::PaymentPage& page) {
    result_.node.payments_scanned +=
        static_cast<std::int64_t>(page.payments.size() + page.rejected.size());
    result_.node.payments_rejected += static_cast<std::int64_t>(page.rejected.size());
    if (options_.on_progress) {
      report::NodeSummary so_far = result_.node;
      so_far.pages += ++listing_pages_;
      options_.on_progress(so_far);
    }
    for (const auto& rejected : page.rejected) {
      spdlog::warn("node payment rejected: hash '{}': {}", rejected.payment_hash, rejected.reason);
    }
    auto rejected = plan::divergences_for_rejected(page.rejected);
    result_.divergences.insert(result_.divergences.end(), rejected.begin(), rejected.end());

    // A payment the run acted on (a repair, a divergence, a deferral) is judged once: when
    // the same (hash, direction) comes back on a later page or listing (its status changed
    // meanwhile, or the node repeats it) the first answer wins, so nothing is applied or
    // reported twice. A later answer that contradicts the last one (plan::contradiction:
    // another amount or type, a status gone back) is a NodeContradictsItself divergence, and
    // nothing more is planned for that hash in this run; what the earlier answer caused is
    // done already. Only the payments acted on are remembered, key and last answer, and the
    // hashes found contradicted, so memory follows the run's work, not the node's history; a
    // payment that needed nothing is judged again on its later answer, which can only be
    // newer. Repeats within the page are the planner's to judge.
    std::vector<NodePayment> fresh;
    std::vector<std::string> hashes;
    std::vector<std::pair<std::string, std::string>> newly_contradicted;  // hash, why
    fresh.reserve(page.payments.size());
    for (auto& p : page.payments) {
      if (contradicted_.contains(p.payment_hash)) continue;
      // Its record's hash is in another case: a RecordHashMalformed divergence, not an orphan.
      if (unmatchable_.contains(p.payment_hash)) continue;
      const auto seen = acted_on_.find(key_of(p));
      if (seen == acted_on_.end()) {
        hashes.push_back(p.payment_hash);
        fresh.push_back(std::move(p));
        continue;
      }
      const plan::NodeAnswer answer = plan::answer_of(p);
      if (auto why = plan::contradiction(seen->second, answer)) {
        contradicted_.insert(p.payment_hash);
        hashes.push_back(p.payment_hash);
        newly_contradicted.emplace_back(p.payment_hash, *why + "; the earlier answer was acted on");
      } else {
        seen->second = answer;
      }
    }
    // The other leg of a hash found contradicted on this page is not acted on either.
    std::erase_if(fresh,
                  [&](const NodePayment& p) { return contradicted_.contains(p.payment_hash); });
    if (fresh.empty() && newly_contradicted.empty()) return;
    const std::vector<LspRecord> records = records_.records_for(hashes);
    plan::Plan plan = plan::plan_payments(fresh, records, context_);
    for (const auto& [hash, why] : newly_contradicted) {
      auto divergences = plan::divergences_for_contradiction(hash, why, records);
      plan.divergences.insert(plan.divergences.end(), divergences.begin(), divergences.end());
    }
    std::unordered_set<std::string_view> acted;
    for (const auto& r : plan.repairs) acted.insert(r.payment_hash);
    for (const auto& d : plan.divergences) {
      acted.insert(d.payment_hash);
      if (d.kind == plan::DivergenceKind::NodeContradictsItself) {
        contradicted_.insert(d.payment_hash);
      }
    }
    for (const auto& h : plan.deferred_hashes) acted.insert(h);
    for (const auto& p : fresh) {
      // The page's last answer for the key: a later page may only move on from it.
      if (acted.contains(p.payment_hash)) acted_on_[key_of(p)] = plan::answer_of(p);
    }
    apply(std::move(plan));
  }

  // A payment's (hash, direction) in 33 bytes, for the set of payments already judged.
  using PaymentKey = std::array<unsigned char, 33>;
  struct PaymentKeyHash {
    std::size_t operator()(const PaymentKey& k) const {
      return std::hash<std::string_view>{}({reinterpret_cast<const char*>(k.data()), k.size()});
    }
  };
  static PaymentKey key_of(const NodePayment& p) {
    PaymentKey key{};
    // The decoder passes only 64 hex digits, normalized.
    const auto hash = util::decode_hex32(p.payment_hash).value();
    std::copy(hash.begin(), hash.end(), key.begin());
    key[32] = p.direction() == Direction::Inbound ? 'i' : 'o';
    return key;
  }

  // Adds the payment of this leg of `hash` to the page of the listing that would hold it, if
  // any (a malformed one to the first). False when the node answered in the legacy dialect.
  bool look_up(const std::string& hash, Direction leg,
               const std::vector<node::PaymentQuery>& listings,
               std::vector<node::PaymentPage>& pages) {
    auto answer = get_payment(
        hash, leg == Direction::Inbound ? PaymentType::InboundHodl : PaymentType::Outbound);
    // The node keeps one inbound payment per hash, HODL or not, and a listing shows either.
    if (!answer && leg == Direction::Inbound) {
      answer = get_payment(hash, PaymentType::InboundAutoClaim);
    }
    if (!answer) return true;
    result_.node.dialect = answer->dialect;
    if (answer->dialect == node::Dialect::Legacy) return false;
    if (answer->rejected) {
      pages.front().rejected.push_back(std::move(*answer->rejected));
      return true;
    }
    const auto listing = std::find_if(
        listings.begin(), listings.end(),
        [&](const node::PaymentQuery& q) { return node::matches(q, *answer->payment); });
    if (listing != listings.end()) {
      pages[static_cast<std::size_t>(listing - listings.begin())].payments.push_back(
          std::move(*answer->payment));
    }
    return true;
  }

  // What the node says of the outbound leg of each record whose missing job pays: nothing
  // when it has no outbound payment of the hash. Asked with no transaction open.
  plan::OutboundLegs outbound_legs(const std::vector<LspRecord>& records) {
    plan::OutboundLegs legs;
    for (const std::string& hash : plan::hashes_needing_outbound_leg(records)) {
      const auto answer = get_payment(hash, PaymentType::Outbound);
      if (!answer) {
        legs.emplace(hash, std::nullopt);
      } else if (answer->dialect == node::Dialect::Legacy) {
        legs.emplace(hash,
                     "unknown: the legacy dialect cannot tell a hash's outbound leg from "
                     "its inbound one");
      } else if (answer->rejected) {
        legs.emplace(hash, "unreadable: " + answer->rejected->reason);
      } else {
        legs.emplace(hash, std::string(to_string(answer->payment->status)));
      }
    }
    return legs;
  }

  std::optional<node::SinglePayment> get_payment(const std::string& hash, PaymentType type) {
    ++result_.lookup.requests;
    auto answer = node_.get_payment(hash, type);
    if (!answer) ++result_.lookup.not_found;
    return answer;
  }

  void apply(plan::Plan plan) {
    result_.orphans += plan.orphans;
    result_.deferred += plan.deferred;
    deferred_.insert(deferred_.end(), plan.deferred_hashes.begin(), plan.deferred_hashes.end());
    if (replayer_) {
      // No endpoint of the LSP adds a missing job: reported, in a dry run too.
      std::erase_if(plan.repairs, [&plan](const plan::Repair& r) {
        if (r.kind != plan::RepairKind::MissingOutboxJob) return false;
        plan.divergences.push_back(missing_job_divergence(r));
        return true;
      });
    }
    for (auto& d : plan.divergences) add(std::move(d));
    if (options_.dry_run || plan.repairs.empty()) {
      record(plan.repairs);
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    const auto count_time = [&] {
      result_.apply_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    };
    if (replayer_) {
      deliver(plan.repairs);
      count_time();
      return;
    }
    try {
      applier_.apply(plan.repairs, result_.run_id);
      count_time();
    } catch (...) {
      count_time();
      // Batches committed before the failing one stay committed: report those.
      std::erase_if(plan.repairs, [](const plan::Repair& r) { return !r.applied; });
      record(plan.repairs);
      throw;
    }
    record(plan.repairs);
  }

  void add(plan::Divergence d) {
    // The planner reports a hash's two live rows once per page; the hash's other leg comes
    // on another listing's page (or lookup page) and would report them again.
    if (d.kind == plan::DivergenceKind::DuplicateLiveRecords &&
        !duplicate_rows_reported_.emplace(d.flow, d.payment_hash).second) {
      return;
    }
    spdlog::warn("divergence {} {} {}: {}", plan::to_string(d.kind),
                 d.flow ? to_string(*d.flow) : "-", d.payment_hash, d.detail);
    result_.divergences.push_back(std::move(d));
  }

  // Replays each repair to the LSP in plan order, writing its audit row right after it (the
  // LSP may have applied it: the row must not wait for the page). The run ends on the way when
  // the token is refused, the LSP stays unavailable past every attempt, or a read or audit write
  // fails; the rest are left to the next run.
  void deliver(std::vector<plan::Repair>& repairs) {
    std::size_t delivered = 0;
    std::optional<LspError> stop;
    std::exception_ptr failure;
    try {
      for (; delivered < repairs.size() && !stop; ++delivered) {
        plan::Repair& repair = repairs[delivered];
        std::optional<plan::Divergence> divergence;
        try {
          divergence = replayer_->deliver(repair);
        } catch (...) {
          // Sent, but the record could not be read again: not confirmed.
          if (repair.delivery && repair.delivery->attempts > 0) {
            repair.delivery->outcome = plan::DeliveryOutcome::Unconfirmed;
            ledger_.record_deliveries({repair}, result_.run_id);
            ++delivered;
          }
          throw;
        }
        ledger_.record_deliveries({repair}, result_.run_id);
        stop = run_ending_error(repair);
        if (divergence) add(std::move(*divergence));
        if (repair.delivery->outcome == plan::DeliveryOutcome::Deferred) {
          ++result_.deferred;
          deferred_.push_back(repair.payment_hash);
        }
      }
    } catch (...) {
      failure = std::current_exception();
    }
    repairs.resize(delivered);
    record(repairs);  // the report shows what the LSP was told
    if (failure) std::rethrow_exception(failure);
    if (stop) throw *stop;
  }

  void record(std::vector<plan::Repair>& repairs) {
    for (auto& repair : repairs) {
      std::string outcome = options_.dry_run ? "would apply"
                            : repair.applied ? "applied"
                                             : "not applied: the record had already moved";
      if (repair.delivery) {
        const plan::Delivery& d = *repair.delivery;
        outcome = "replayed to the LSP: " + std::string(plan::to_string(d.outcome)) +
                  (d.http_status ? " (HTTP " + std::to_string(d.http_status) + ")" : "") +
                  (d.answer.empty() ? "" : " " + d.answer);
      }
      spdlog::info("repair {} {} {}: {} -> {}, outbox {}: {}", plan::to_string(repair.kind),
                   to_string(repair.flow), repair.payment_hash, repair.observed_status, repair.to,
                   repair.outbox_action, outcome);
      result_.repairs.push_back(std::move(repair));
    }
  }

  void note(std::string text) {
    if (std::find(result_.notes.begin(), result_.notes.end(), text) != result_.notes.end()) return;
    spdlog::warn("{}", text);
    result_.notes.push_back(std::move(text));
  }

  node::PaymentSource& node_;
  store::LspRecords& records_;
  store::Applier& applier_;
  store::Ledger& ledger_;
  const std::vector<Flow> flows_;
  const SweepOptions& options_;
  report::RunResult& result_;
  plan::PlanContext context_;
  std::unordered_map<PaymentKey, plan::NodeAnswer, PaymentKeyHash> acted_on_;
  std::unordered_set<std::string> contradicted_;  // hashes the node contradicted itself about
  std::unordered_set<std::string> unmatchable_;   // lowercase forms of records' mixed-case hashes
  std::vector<std::string> deferred_;
  std::vector<Listing> listings_;      // in the order they run (queries())
  std::set<std::string> open_hashes_;  // of open divergences of a record's flow, and live twins
  bool any_open_ = false;              // any divergence open, malformed payments included
  std::set<std::pair<std::optional<Flow>, std::string>> duplicate_rows_reported_;
  std::optional<Replayer> replayer_;  // --apply lsp-callbacks
  bool saw_everything_ = true;
  int listing_pages_ = 0;  // pages of the current listing, for progress before its total is in
};

// Sends the alert the run owes to every webhook. A delivery that fails is logged and counted
// and changes nothing else; rows are marked alerted when at least one webhook took the
// alert (a broken second receiver must not make the working one repeat it every run).
void send_alerts(store::Ledger& ledger, report::RunResult& result, const SweepOptions& options) {
  if (options.alert_webhooks.empty()) return;
  const auto alert =
      report::compose_alert(result, options.realert_after, unix_seconds(result.finished_at));
  if (!alert) return;
  const std::string body = alert->body.dump();
  for (const auto& url : options.alert_webhooks) {
    const auto failure = report::post_webhook(url, body, options.webhook);
    if (failure) {
      ++result.alert_failures;
      spdlog::error("alert to {} failed: {}", report::redact_webhook_url(url), *failure);
    } else {
      ++result.alerts_sent;
      spdlog::info("alert sent to {}", report::redact_webhook_url(url));
    }
  }
  if (result.alerts_sent == 0 || alert->divergence_ids.empty()) return;
  try {
    ledger.mark_alerted(alert->divergence_ids);
  } catch (const std::exception& e) {
    // The alert went out; at worst it repeats next run.
    spdlog::warn("could not record which divergences were alerted: {}", e.what());
  }
}

}  // namespace

std::string new_run_id() {
  std::array<unsigned char, 16> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    throw std::runtime_error("cannot generate a run id: OpenSSL RAND_bytes failed");
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

namespace {

report::RunResult new_result(const SweepOptions& options,
                             std::chrono::system_clock::time_point started_at) {
  report::RunResult result;
  result.run_id = new_run_id();
  result.dry_run = options.dry_run;
  result.apply = options.apply;
  result.started_at = started_at;
  result.node.url = node::redact_url(options.node_url);
  return result;
}

}  // namespace

report::RunResult run_not_started(const SweepOptions& options,
                                  std::chrono::system_clock::time_point started_at,
                                  std::string error) {
  report::RunResult result = new_result(options, started_at);
  result.error = std::move(error);
  result.finished_at = std::chrono::system_clock::now();
  return result;
}

report::RunResult run_sweep(node::PaymentSource& node, store::Backend& db,
                            const SweepOptions& options, lsp::CallbackEndpoints* lsp) {
  report::RunResult result = new_result(options, std::chrono::system_clock::now());

  try {
    if (!options.dry_run) {
      db.ledger->begin_run(result.run_id, false);
      result.run_recorded = true;
    }
    Sweep sweep(node, db, options, result, lsp);
    sweep.run();
    if (!options.dry_run) sweep.record_divergences();
    result.complete = true;
  } catch (const node::NodeError& e) {
    result.error = e.what();
    result.retry_later = e.kind == node::NodeErrorKind::ChangingState;
  } catch (const LspError& e) {
    result.error = e.what();
    result.retry_later = e.retry_later;
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  result.finished_at = std::chrono::system_clock::now();
  if (result.divergences_recorded) send_alerts(*db.ledger, result, options);
  return result;
}

std::vector<RunSummary> recent_runs_marking_abandoned(store::Ledger& ledger, int limit) {
  std::optional<bool> lock_free;
  try {
    lock_free = ledger.try_lock_sweep();
  } catch (const std::exception& e) {
    spdlog::warn("cannot tell abandoned runs from running ones: {}", e.what());
  }
  std::vector<RunSummary> runs;
  try {
    runs = ledger.recent_runs(limit);
  } catch (...) {
    if (lock_free.value_or(false)) ledger.unlock_sweep();
    throw;
  }
  if (lock_free.value_or(false)) ledger.unlock_sweep();
  if (!lock_free) return runs;
  // Newest first: while the lock is held by another run, the first 'running' row is its own.
  bool active_seen = *lock_free;
  for (RunSummary& run : runs) {
    if (run.status != "running") continue;
    if (!active_seen) {
      active_seen = true;
      continue;
    }
    run.abandoned = true;
  }
  return runs;
}

void record_outcome(store::Ledger& ledger, const report::RunResult& result) {
  if (!result.run_recorded) return;
  const int code = report::exit_code(result);
  // The status follows the exit code: a complete run whose report could not be written
  // failed as far as cron can tell.
  const char* status = code == report::kExitClean            ? "ok"
                       : code == report::kExitNeedsAttention ? "divergences"
                                                             : "failed";
  try {
    ledger.finish_run({result.run_id, status, code, report::to_json(result).dump()});
  } catch (const std::exception& e) {
    // The repairs are committed already; losing the run's audit row is worth a warning,
    // not a different outcome.
    spdlog::warn("could not record the run's outcome in lsp_sweeper.runs: {}", e.what());
  }
}

}  // namespace lsp_sweeper::run
