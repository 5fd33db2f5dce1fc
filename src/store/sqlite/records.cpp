// LspRecords on the LSP's SQLite file. Every read is its own short transaction: a live LSP
// shares the file, and a read transaction left open would hold back its writers (rollback
// journal) or its checkpoints (WAL).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lsp_sweeper/util/hex.hpp"
#include "sqlite_store.hpp"

namespace lsp_sweeper::store::sqlite {

namespace {

// Rows read per transaction while a HashIndex is built: each read stays short.
constexpr std::int64_t kIndexChunk = 5000;

// The row ids of each payment_hash in a record table the LSP gave no index on it, read once
// per run: without it every page's lookup scanned the whole table (CPU 8.9 s of a 12.6 s
// steady sweep with 200,000 records). A row's hash never changes (the LSP writes it only in
// its INSERT) and ids only grow (AUTOINCREMENT), so the rows after `through()` are the only
// ones the index can lack, and each lookup reads those too; a deleted row is simply not found.
class HashIndex {
 public:
  HashIndex(Db& db, const RecordTable& t) {
    Stmt chunk(db,
               "SELECT id, payment_hash FROM " + std::string(t.table) +
                   " WHERE id > ? ORDER BY id LIMIT ?",
               "hash index " + std::string(t.table));
    for (std::int64_t read = kIndexChunk; read == kIndexChunk;) {
      Transaction txn(db, Transaction::Kind::Deferred, "hash index " + std::string(t.table));
      chunk.bind(1, through_).bind(2, kIndexChunk);
      for (read = 0; chunk.step(); ++read) {
        through_ = chunk.int64(0);
        add(chunk.text(1), through_);
      }
      chunk.reset();
      txn.commit();
    }
    std::sort(hex_.begin(), hex_.end());
    std::sort(other_.begin(), other_.end());
  }

  std::int64_t through() const { return through_; }

  // The ids of every row whose hash is one of `hashes` (and of any row sharing a key with one),
  // as a JSON array.
  std::string ids_of(const std::vector<std::string>& hashes) const {
    nlohmann::json ids = nlohmann::json::array();
    for (const std::string& hash : hashes) {
      if (const auto key = key_of(hash)) {
        push_ids(hex_, *key, ids);
      } else {
        push_ids(other_, hash, ids);
      }
    }
    return ids.dump();
  }

  // The ids of the rows whose hash is not 64 lowercase hex digits, as a JSON array.
  std::string odd_ids() const {
    nlohmann::json ids = nlohmann::json::array();
    for (const auto& [hash, id] : other_) ids.push_back(id);
    return ids.dump();
  }

 private:
  // The first 8 of the hash's 32 bytes: 16 bytes a row with its id (a million rows, 16 MB). A
  // prefix shared by two hashes only adds a row the lookup's own `payment_hash IN` drops.
  using Key = std::uint64_t;
  // Below every id: where lower_bound starts a hash's ids.
  static constexpr std::int64_t kNoId = std::numeric_limits<std::int64_t>::min();

  // The ids `rows` (sorted) holds for `key`, appended to `ids`.
  template <class K>
  static void push_ids(const std::vector<std::pair<K, std::int64_t>>& rows, const K& key,
                       nlohmann::json& ids) {
    for (auto it = std::lower_bound(rows.begin(), rows.end(), std::pair{key, kNoId});
         it != rows.end() && it->first == key; ++it) {
      ids.push_back(it->second);
    }
  }

  // A key for the usual 64 lowercase hex digits; any other text (the LSP's table is
  // untrusted: another case, another length) is kept as it is, since `=` compares text.
  static std::optional<Key> key_of(const std::string& hash) {
    if (!plan::is_lookup_hash(hash)) return std::nullopt;
    const auto bytes = util::decode_hex32(hash).value();
    Key key = 0;
    for (int i = 0; i < 8; ++i) key = key << 8 | bytes[static_cast<std::size_t>(i)];
    return key;
  }

  void add(const std::string& hash, std::int64_t id) {
    if (const auto key = key_of(hash)) {
      hex_.emplace_back(*key, id);
    } else {
      other_.emplace_back(hash, id);
    }
  }

  std::vector<std::pair<Key, std::int64_t>> hex_;
  std::vector<std::pair<std::string, std::int64_t>> other_;
  std::int64_t through_ = kNoId;  // the last id read
};

// `select` (a SELECT ... WHERE ...) of only the rows whose id is in the JSON array parameter
// `ids`, or above the parameter `through`: what a HashIndex names, and what was added since.
std::string by_index(const std::string& select, int ids, int through) {
  return "SELECT * FROM (" + select + " AND r.id IN (SELECT value FROM json_each(?" +
         std::to_string(ids) + ")) UNION ALL " + select + " AND r.id > ?" +
         std::to_string(through) + ") ORDER BY 1";
}

// Columns 0-4 of every record statement.
std::string record_columns(const RecordTable& t) {
  return "r.id, r.payment_hash, r.status, r." + std::string(t.amount_column) +
         ", r.claim_deadline_height";
}

LspRecord to_record(Flow flow, const Stmt& row) {
  LspRecord record;
  record.flow = flow;
  record.row_id = row.int64(0);
  record.payment_hash = row.text(1);
  record.status = row.text(2);
  record.amount_msat = row.optional_int64(3);
  record.claim_deadline_height = row.optional_int64(4);
  return record;
}

// Fills each record's outbox_jobs with every job of its hash, inside the caller's transaction.
void fill_outbox_jobs(Db& db, std::vector<LspRecord>& records, const std::string& step) {
  if (records.empty()) return;
  std::vector<std::string> hashes;
  for (const LspRecord& r : records) hashes.push_back(r.payment_hash);
  Stmt jobs(db,
            "SELECT payment_hash, action, status FROM " + std::string(kOutboxTable) +
                " WHERE payment_hash IN (SELECT value FROM json_each(?)) ORDER BY payment_hash, "
                "action",
            step + ": outbox jobs");
  jobs.bind(1, json_array(hashes));
  std::map<std::string, std::vector<OutboxJob>> by_hash;
  while (jobs.step()) by_hash[jobs.text(0)].push_back({jobs.text(1), jobs.text(2)});
  for (LspRecord& r : records) {
    const auto found = by_hash.find(r.payment_hash);
    if (found != by_hash.end()) r.outbox_jobs = found->second;
  }
}

class SqliteRecords final : public LspRecords {
 public:
  explicit SqliteRecords(std::shared_ptr<Session> session) : session_(std::move(session)) {}

  std::vector<Flow> flows() const override {
    Db& db = session_->db;
    if (!table_exists(db, record_table(Flow::Apay).table)) {
      throw StoreError("database " + db.path() + " has no table " +
                       std::string(record_table(Flow::Apay).table) + ": is it the LSP's?");
    }
    std::vector<Flow> flows{Flow::Apay};
    if (table_exists(db, record_table(Flow::Relay).table)) flows.push_back(Flow::Relay);
    return flows;
  }

  std::vector<LspRecord> records_for(const std::vector<std::string>& hashes) override {
    if (hashes.empty()) return {};
    const std::vector<Flow> present = flows();
    Db& db = session_->db;
    const std::string hash_array = json_array(hashes);
    std::vector<LspRecord> records;
    for (Flow flow : present) {
      if (!record_table(flow).hash_indexed) hash_index(record_table(flow));  // before the read
    }
    // One read transaction, so both tables and the outbox are read in the same state.
    Transaction txn(db, Transaction::Kind::Deferred, "records_for");
    for (Flow flow : present) {
      const RecordTable& t = record_table(flow);
      const std::string step = "records_for " + std::string(to_string(flow));
      const std::string select = "SELECT " + record_columns(t) + " FROM " + std::string(t.table) +
                                 " r WHERE r.payment_hash IN (SELECT value FROM json_each(?1))";
      Stmt rows(db, t.hash_indexed ? select + " ORDER BY r.id" : by_index(select, 2, 3), step);
      rows.bind(1, hash_array);
      if (!t.hash_indexed) {
        const HashIndex& index = hash_index(t);
        rows.bind(2, index.ids_of(hashes)).bind(3, index.through());
      }
      while (rows.step()) records.push_back(to_record(flow, rows));
    }
    fill_outbox_jobs(db, records, "records_for");
    txn.commit();
    return records;
  }

  std::vector<StuckJob> stuck_jobs(std::int64_t stuck_after_seconds) override {
    Db& db = session_->db;
    const std::string table(kOutboxTable);
    // The LSP writes its timestamps as CURRENT_TIMESTAMP text: compared with datetime(), the
    // same form, as text (as the LSP compares them).
    const std::string modifier = "-" + std::to_string(stuck_after_seconds) + " seconds";
    const std::string columns =
        "o.id, o.payment_hash, o.action, o.status, o.attempts, CAST(strftime('%s', 'now') - "
        "strftime('%s', o.created_at) AS INTEGER), o.last_error";
    const std::string limit = " ORDER BY o.id LIMIT " + std::to_string(kMaxStuckJobs);
    const struct {
      JobStuckReason reason;
      std::string sql;
      bool with_modifier;
    } queries[] = {
        {JobStuckReason::Retrying,
         "SELECT " + columns + ", 0 FROM " + table +
             " o WHERE o.status = 'pending' AND o.attempts >= 3 AND o.created_at < "
             "datetime('now', ?)" +
             limit,
         true},
        {JobStuckReason::LockExpired,
         "SELECT " + columns + ", 0 FROM " + table +
             " o WHERE o.status = 'processing' AND o.locked_until IS NOT NULL AND "
             "o.locked_until < datetime('now', ?)" +
             limit,
         true},
        // One ordered pass over the pending jobs, each with the count of failing ones before
        // it: a correlated count per job grew as pending jobs x outbox rows and held the read
        // for seconds, which the LSP's writes waited behind.
        {JobStuckReason::HeadOfLine,
         "SELECT " + columns +
             ", o.blocked_by FROM (SELECT p.*, count(*) FILTER (WHERE p.attempts > 0) OVER "
             "(ORDER BY p.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS blocked_by "
             "FROM " +
             table + " p WHERE p.status = 'pending') o WHERE o.attempts = 0 AND o.blocked_by >= " +
             std::to_string(kHeadOfLineSlots) + limit,
         false},
    };
    std::vector<StuckJob> jobs;
    Transaction txn(db, Transaction::Kind::Deferred, "stuck_jobs");
    for (const auto& q : queries) {
      Stmt rows(db, q.sql, "stuck_jobs");
      if (q.with_modifier) rows.bind(1, modifier);
      while (rows.step()) {
        jobs.push_back({q.reason, rows.int64(0), rows.text(1), rows.text(2), rows.text(3),
                        rows.int64(4), rows.int64(5), rows.optional_text(6), rows.int64(7)});
      }
    }
    txn.commit();
    return jobs;
  }

  void records_lacking_outbox_job(Flow flow, const std::vector<RequiredJob>& jobs,
                                  std::uint32_t page_size, const RecordSink& on_page) override {
    if (jobs.empty() || page_size == 0) return;
    const RecordTable& t = record_table(flow);
    const std::string step = "records_lacking_outbox_job " + std::string(to_string(flow));
    // [[status, action], ...]: a record in `status` must have a job of `action`.
    nlohmann::json needs = nlohmann::json::array();
    for (const RequiredJob& job : jobs) needs.push_back({job.status, job.action});
    const std::string need_array = needs.dump();
    page_by_id("SELECT " + record_columns(t) + " FROM " + std::string(t.table) +
                   " r WHERE r.id > ? AND EXISTS (SELECT 1 FROM json_each(?) need WHERE r.status = "
                   "need.value ->> 0 AND NOT EXISTS (SELECT 1 FROM " +
                   std::string(kOutboxTable) +
                   " o WHERE o.payment_hash = r.payment_hash AND o.action = need.value ->> 1)) "
                   "ORDER BY r.id LIMIT ?",
               step, flow, need_array, page_size, true, on_page);
  }

  std::vector<AwaitingSince> awaiting_node_since(
      Flow flow, const std::vector<std::vector<std::string>>& quiet,
      const std::vector<std::string>& open_hashes) override {
    if (quiet.empty()) return {};
    const RecordTable& t = record_table(flow);
    Db& db = session_->db;
    const std::string step = "awaiting_node_since " + std::string(to_string(flow));
    // A created_at that is not exactly the 'YYYY-MM-DD HH:MM:SS' CURRENT_TIMESTAMP writes
    // (a number SQLite would read as a Julian day, another form, a date it would roll over)
    // reads as NULL: unreadable.
    const std::string at =
        "CASE WHEN typeof(created_at) = 'text' AND created_at = strftime('%Y-%m-%d %H:%M:%S', "
        "created_at) THEN CAST(strftime('%s', created_at) AS INTEGER) END";
    // The stamps of every row of any flow sharing a hash with a counted row (w): only those
    // rows are stamped, as the LSP's tables have no index on payment_hash to join them by.
    std::string stamps;
    for (Flow f : flows()) {
      stamps += std::string(stamps.empty() ? "" : " UNION ALL ") + "SELECT payment_hash, " + at +
                " AS at FROM " + std::string(record_table(f).table) +
                " WHERE payment_hash IN (SELECT payment_hash FROM w)";
    }
    // Parameter 1: the quiet states of each listing, as [[...], ...]; 2: the open hashes.
    std::string columns;
    std::string any;
    for (std::size_t i = 0; i < quiet.size(); ++i) {
      const std::string n = std::to_string(i);
      columns += ", r.status NOT IN (SELECT value FROM json_each(?1, '$[" + n + "]')) AS s" + n;
    }
    std::string select;
    for (std::size_t i = 0; i < quiet.size(); ++i) {
      const std::string n = std::to_string(i);
      const std::string counts = "(r.s" + n + " OR r.open)";
      select += std::string(select.empty() ? "" : ", ") + "count(DISTINCT CASE WHEN r.s" + n +
                " THEN r.id END), min(CASE WHEN " + counts + " THEN u.at END), max(CASE WHEN " +
                counts + " THEN u.at END), max(" + counts + " AND u.at IS NULL)";
      any += std::string(any.empty() ? "" : " OR ") + "r.s" + n;
    }
    Stmt row(db,
             "WITH w AS MATERIALIZED (SELECT * FROM (SELECT r.id, r.payment_hash" + columns +
                 ", r.payment_hash IN (SELECT value FROM json_each(?2)) AS open FROM " +
                 std::string(t.table) + " r) r WHERE " + any + " OR r.open), stamps AS (" + stamps +
                 ") SELECT " + select +
                 " FROM w r JOIN stamps u ON u.payment_hash = r.payment_hash",
             step);
    nlohmann::json quiet_sets = quiet;
    std::vector<AwaitingSince> out(quiet.size());
    Transaction txn(db, Transaction::Kind::Deferred, step);
    row.bind(1, quiet_sets.dump()).bind(2, json_array(open_hashes));
    row.step();
    for (std::size_t i = 0; i < quiet.size(); ++i) {
      const int c = static_cast<int>(4 * i);
      out[i] = {row.int64(c), row.optional_int64(c + 1), row.optional_int64(c + 2),
                row.optional_int64(c + 3).value_or(0) != 0};
    }
    row.reset();
    txn.commit();
    return out;
  }

  void records_awaiting_node(Flow flow, const std::vector<std::string>& quiet, std::size_t batch,
                             const RecordSink& sink) override {
    if (batch == 0) return;
    const RecordTable& t = record_table(flow);
    page_by_id("SELECT " + record_columns(t) + " FROM " + std::string(t.table) +
                   " r WHERE r.id > ? AND r.status NOT IN (SELECT value FROM json_each(?)) "
                   "ORDER BY r.id LIMIT ?",
               "records_awaiting_node " + std::string(to_string(flow)), flow, json_array(quiet),
               batch, false, sink);
  }

  std::vector<std::string> live_twin_hashes(Flow flow, const std::vector<std::string>& terminal,
                                            std::int64_t limit) override {
    const RecordTable& t = record_table(flow);
    Db& db = session_->db;
    const std::string step = "live_twin_hashes " + std::string(to_string(flow));
    Stmt rows(db,
              "SELECT payment_hash FROM " + std::string(t.table) +
                  " WHERE status NOT IN (SELECT value FROM json_each(?)) GROUP BY payment_hash "
                  "HAVING count(*) > 1 ORDER BY payment_hash LIMIT ?",
              step);
    std::vector<std::string> hashes;
    Transaction txn(db, Transaction::Kind::Deferred, step);
    rows.bind(1, json_array(terminal)).bind(2, limit);
    while (rows.step()) hashes.push_back(rows.text(0));
    rows.reset();
    txn.commit();
    return hashes;
  }

  std::vector<LspRecord> records_with_malformed_hash(Flow flow,
                                                     const std::vector<std::string>& terminal,
                                                     std::int64_t limit) override {
    const RecordTable& t = record_table(flow);
    Db& db = session_->db;
    const std::string step = "records_with_malformed_hash " + std::string(to_string(flow));
    // GLOB is case-sensitive, as the lookups' `=` and `IN` are. The status first, so that the
    // hashes of finished relays are not matched at all (the bench's 10,000: 47 ms -> 10 ms).
    const std::string select = "SELECT " + record_columns(t) + " FROM " + std::string(t.table) +
                               " r WHERE r.status NOT IN (SELECT value FROM json_each(?1)) AND "
                               "(length(r.payment_hash) <> 64 OR r.payment_hash GLOB "
                               "'*[^0-9a-f]*')";
    // Without an index on payment_hash, only the rows the hash index found odd, and those added
    // since it was read, can match: read by id, not by matching every finished order's hash.
    const HashIndex* index = t.hash_indexed ? nullptr : &hash_index(t);
    Stmt rows(db, (index ? by_index(select, 3, 4) : select + " ORDER BY r.id") + " LIMIT ?2", step);
    std::vector<LspRecord> records;
    Transaction txn(db, Transaction::Kind::Deferred, step);
    rows.bind(1, json_array(terminal)).bind(2, limit);
    if (index) rows.bind(3, index->odd_ids()).bind(4, index->through());
    while (rows.step()) records.push_back(to_record(flow, rows));
    rows.reset();
    txn.commit();
    return records;
  }

 private:
  // Keyset pages of `sql` (parameters: the id to start after, `list`, the page size), each read
  // in its own short transaction that is over before `sink` runs, until a page comes back short
  // or the sink returns false.
  void page_by_id(const std::string& sql, const std::string& step, Flow flow,
                  const std::string& list, std::size_t page_size, bool with_jobs,
                  const RecordSink& sink) {
    Db& db = session_->db;
    Stmt page(db, sql, step);
    std::int64_t after = 0;  // ids start at 1
    for (;;) {
      std::vector<LspRecord> records;
      {
        Transaction txn(db, Transaction::Kind::Deferred, step);
        page.bind(1, after).bind(2, list).bind(3, static_cast<std::int64_t>(page_size));
        while (page.step()) records.push_back(to_record(flow, page));
        page.reset();
        if (with_jobs) fill_outbox_jobs(db, records, step);
        txn.commit();
      }
      if (records.empty()) return;
      after = records.back().row_id;
      const bool full = records.size() == page_size;
      if (!sink(records) || !full) return;
    }
  }

  // The hash index of `t`, read at its first use in this run, in transactions of its own: never
  // inside another read.
  const HashIndex& hash_index(const RecordTable& t) {
    return hash_indexes_.try_emplace(t.table, session_->db, t).first->second;
  }

  std::shared_ptr<Session> session_;
  std::map<std::string_view, HashIndex> hash_indexes_;  // by table, for those without an index
};

}  // namespace

std::unique_ptr<LspRecords> make_records(std::shared_ptr<Session> session) {
  return std::make_unique<SqliteRecords>(std::move(session));
}

}  // namespace lsp_sweeper::store::sqlite
