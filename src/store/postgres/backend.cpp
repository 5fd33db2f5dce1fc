// The PostgreSQL backend: the LSP's order records, repairs and the sweeper's ledger (schema
// lsp_sweeper), through libpqxx 6, on one connection.
#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../backends.hpp"
#include "connection.hpp"
#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::store::postgres {

namespace {

// The table each flow keeps its records in, and what the two missed callbacks set besides
// status and updated_at (DOMAIN.md, "The transitions to apply"). The only place that names
// the LSP's record tables in a statement (check.cpp lists the privileges these statements
// need; a column set here must be granted there and in sql/roles). These are constants of this
// file, never outside input, so composing them into statement text is safe; every value is a $n
// parameter.
struct RecordTable {
  Flow flow;
  std::string_view table;
  std::string_view amount_column;      // the inbound amount the node's amt_msat is checked against
  std::string_view claimable_sets;     // i.value is the claim deadline height
  std::string_view payment_sent_sets;  // i.value is the preimage, already checked against the hash
};

constexpr std::array<RecordTable, 2> kRecordTables{{
    // APay keeps a claimable_at or deadline the LSP already wrote: the first claimable
    // callback is the one that counts.
    {Flow::Apay, "async_rotating_invoices", "amount_msat",
     "claimable_at = COALESCE(claimable_at, now()), "
     "claim_deadline_height = COALESCE(claim_deadline_height, i.value::bigint)",
     "payment_preimage = COALESCE(payment_preimage, i.value)"},
    {Flow::Relay, "lightning_send_mappings", "inbound_amount_msat",
     "claim_deadline_height = i.value::bigint", "payment_preimage = i.value"},
}};

// A keyset page of the records `select` picks (column 0 the row id): the next $n after id
// $n-1. The few matching records are collected by one sequential scan and sorted; walking the
// primary key in order instead, as the planner otherwise prefers for ORDER BY ... LIMIT,
// visits every record of the table to find them.
std::string keyset_page(const std::string& select, int after_param) {
  return "WITH matching AS MATERIALIZED (" + select + ") SELECT * FROM matching WHERE id > $" +
         std::to_string(after_param) + " ORDER BY id LIMIT $" + std::to_string(after_param + 1);
}

std::string statement_name(std::string_view what, Flow flow) {
  return std::string(what) + "_" + std::string(to_string(flow));
}

std::string name_of(plan::RepairKind kind, Flow flow) {
  return statement_name(plan::to_string(kind), flow);
}

// A PostgreSQL array literal holding `values`, for a `$n::text[]` parameter (libpqxx 6 has
// no array parameters). Every element is double-quoted with `"` and `\` escaped, so a value
// can neither end its element early nor read as NULL.
std::string text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (const std::string& value : values) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::vector<std::string> parse_text_array(const pqxx::field& field) {
  std::vector<std::string> values;
  pqxx::array_parser parser = field.as_array();
  for (auto [juncture, value] = parser.get_next(); juncture != pqxx::array_parser::done;
       std::tie(juncture, value) = parser.get_next()) {
    if (juncture == pqxx::array_parser::string_value) values.push_back(std::move(value));
  }
  return values;
}

// libpqxx 6.4 as packaged leaves its std::optional support switched off.
std::optional<std::int64_t> optional_int(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return field.as<std::int64_t>();
}

// The record's columns, as every record statement selects them from its table (alias r).
std::string record_columns(const RecordTable& t) {
  return "r.id, r.payment_hash, r.status, r." + std::string(t.amount_column) +
         ", r.claim_deadline_height";
}

// The outbox jobs of the record's hash: their actions and, in the same order, their statuses.
constexpr std::string_view kOutboxJobColumns =
    ", ARRAY(SELECT o.action FROM async_rotating_invoice_outbox o WHERE o.payment_hash = "
    "r.payment_hash ORDER BY o.id), ARRAY(SELECT o.status FROM async_rotating_invoice_outbox o "
    "WHERE o.payment_hash = r.payment_hash ORDER BY o.id)";

// Columns 0-4 are the record; two more, when the statement has them, its outbox jobs.
LspRecord to_record(Flow flow, const pqxx::row& row) {
  LspRecord record;
  record.flow = flow;
  record.row_id = row[0].as<std::int64_t>();
  record.payment_hash = row[1].as<std::string>();
  record.status = row[2].as<std::string>();
  record.amount_msat = optional_int(row[3]);
  record.claim_deadline_height = optional_int(row[4]);
  if (row.size() > 6) {
    const auto actions = parse_text_array(row[5]);
    const auto statuses = parse_text_array(row[6]);
    for (std::size_t i = 0; i < actions.size() && i < statuses.size(); ++i) {
      record.outbox_jobs.push_back({actions[i], statuses[i]});
    }
  }
  return record;
}

// The repair statements work on a batch of repairs of one transition. Parameters, the same for
// every repair statement: $1 the records' ids, $2 their payment hashes, $3 each record's status
// when planned (reported as "from"), $4 the statuses the record must still be in, $5 the status
// it moves to (for a missing job: the one it is in), $6 the outbox action, then the run id,
// kind and flow of the audit rows; a callback repair's $10 holds each repair's value (deadline
// height or preimage). One statement is one implicit transaction: every change of the batch,
// its job and its audit row commit or fail together, in one round trip.
constexpr std::string_view kRepairInput =
    "WITH input AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) AS "
    "i(id, payment_hash, observed)), ";
constexpr std::string_view kCallbackRepairInput =
    "WITH input AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $10::text[]) AS "
    "i(id, payment_hash, observed, value)), ";

// The columns of lsp_sweeper.actions every audit row sets; `via` and the callback columns are
// left to their defaults (via = 'db', NULL) by the repairs of the sweeper's own SQL.
constexpr std::string_view kAuditColumns =
    "run_id, kind, flow, record_id, payment_hash, from_status, to_status, outbox_action, applied";

// The tail of a repair statement whose CTE `changed` holds the ids of the records the batch
// changed (or gave their job): an audit row per input repair, `applied` when its id is there.
std::string audit_rows() {
  return "INSERT INTO lsp_sweeper.actions (" + std::string(kAuditColumns) +
         ") SELECT $7::text, $8::text, $9::text, i.id, i.payment_hash, i.observed, $5::text, "
         "$6::text, i.id IN (SELECT id FROM changed) FROM input i RETURNING record_id, applied";
}

// Locks the batch's records still in one of $4 in id order, so two batches touching the same
// records queue up instead of deadlocking. Under READ COMMITTED a row another transaction is
// changing is waited for and re-checked against the new version: a record a callback moved
// meanwhile is no longer selected.
std::string lock_records(std::string_view table, std::string_view mode) {
  return "locked AS (SELECT r.id, r.payment_hash FROM " + std::string(table) +
         " r JOIN input i ON r.id = i.id AND r.payment_hash = i.payment_hash WHERE r.status = "
         "ANY($4::text[]) ORDER BY r.id FOR " +
         std::string(mode) + "), ";
}

// A job of the repair's action the LSP will never run again (done from an earlier cycle, or
// failed) makes the transition useless: the record would wait on a job that never comes.
constexpr std::string_view kNoDeadJob =
    " AND NOT EXISTS (SELECT 1 FROM async_rotating_invoice_outbox o WHERE o.payment_hash = "
    "r.payment_hash AND o.action = $6::text AND o.status IN ('done', 'failed'))";

void prepare_record_statements(pqxx::connection& conn, const RecordTable& t) {
  const std::string table(t.table);
  const std::string columns = record_columns(t);
  // A semi-join on the unnested array, not `= ANY($1)`: for a page of hashes the planner
  // costs ANY's array as one row per element and picks a sequential scan that compares
  // every record with every hash (34 ms against 5 ms for 1000 hashes and 100k records).
  conn.prepare(statement_name("records_for", t.flow),
               "SELECT " + columns + std::string(kOutboxJobColumns) + " FROM " + table +
                   " r WHERE r.payment_hash IN (SELECT unnest($1::text[]))");
  // $1/$2: each state that needs a job and the job's action; $3: the last id of the previous
  // page (0 for the first); $4: the page size. Only records lacking their job are returned, so
  // an LSP whose outbox is in order costs one scan and no rows.
  conn.prepare(statement_name("records_lacking_outbox_job", t.flow),
               keyset_page("SELECT " + columns + std::string(kOutboxJobColumns) + " FROM " + table +
                               " r JOIN unnest($1::text[], $2::text[]) AS need(status, action)"
                               " ON r.status = need.status WHERE NOT EXISTS (SELECT 1 FROM"
                               " async_rotating_invoice_outbox o WHERE o.payment_hash ="
                               " r.payment_hash AND o.action = need.action)",
                           3));
  // $1: the terminal states; $2: the most hashes.
  conn.prepare(statement_name("live_twin_hashes", t.flow),
               "SELECT payment_hash FROM " + table +
                   " WHERE NOT (status = ANY($1::text[])) GROUP BY payment_hash HAVING count(*) > "
                   "1 ORDER BY payment_hash LIMIT $2");
  // $1: the terminal states; $2: the most rows. `!~` is case-sensitive, as the lookups are.
  conn.prepare(statement_name("records_with_malformed_hash", t.flow),
               "SELECT " + columns + " FROM " + table +
                   " r WHERE r.payment_hash !~ '^[0-9a-f]{64}$' AND NOT (r.status = "
                   "ANY($1::text[])) ORDER BY r.id LIMIT $2");
  conn.prepare(
      statement_name("records_awaiting_node", t.flow),
      keyset_page(
          "SELECT " + columns + " FROM " + table + " r WHERE NOT (r.status = ANY($1::text[]))", 2));

  // Concurrency: the LSP's own callback handler may run the same transition at the same
  // time. A conditional UPDATE that meets a row another transaction is changing waits for
  // it to commit, then re-checks its WHERE against the new row version: if the callback
  // moved the record first, status is no longer in $4 and this UPDATE changes nothing (and
  // inserts no job). Exactly one of the two changes the row; the outbox's UNIQUE
  // (payment_hash, action) with ON CONFLICT DO NOTHING makes the job single even if the
  // other side inserts it without such a guard. The job is inserted only for a changed row.
  const auto callback_repair = [&](std::string_view sets) {
    return std::string(kCallbackRepairInput) + lock_records(t.table, "UPDATE") +
           "changed AS (UPDATE " + table + " r SET status = $5::text, " + std::string(sets) +
           ", updated_at = now() FROM input i WHERE r.id = i.id AND r.payment_hash = "
           "i.payment_hash AND r.id IN (SELECT id FROM locked) AND r.status = ANY($4::text[])" +
           std::string(kNoDeadJob) +
           " RETURNING r.id, r.payment_hash), job AS (INSERT INTO async_rotating_invoice_outbox"
           " (payment_hash, action, status, available_at) SELECT payment_hash, $6::text,"
           " 'pending', now() FROM changed ON CONFLICT (payment_hash, action) DO NOTHING) " +
           audit_rows();
  };
  conn.prepare(name_of(plan::RepairKind::MissedClaimable, t.flow),
               callback_repair(t.claimable_sets));
  conn.prepare(name_of(plan::RepairKind::MissedPaymentSent, t.flow),
               callback_repair(t.payment_sent_sets));

  // A job for a record already in its state, only while it still is. FOR SHARE holds the
  // record in that state until this transaction ends (the LSP's own UPDATE waits), and a
  // record moved meanwhile is re-checked and no longer selected: the job never lands after
  // the state it belongs to has been left.
  conn.prepare(name_of(plan::RepairKind::MissingOutboxJob, t.flow),
               std::string(kRepairInput) + lock_records(t.table, "SHARE") +
                   "inserted AS (INSERT INTO async_rotating_invoice_outbox (payment_hash, "
                   "action, status, available_at) SELECT DISTINCT payment_hash, $6::text, "
                   "'pending', now() FROM locked ON CONFLICT (payment_hash, action) DO NOTHING "
                   "RETURNING payment_hash), changed AS (SELECT l.id FROM locked l WHERE "
                   "l.payment_hash IN (SELECT payment_hash FROM inserted)) " +
                   audit_rows());
}

void prepare_ledger_statements(pqxx::connection& conn) {
  // The audit rows of replayed callbacks, one per element of the arrays: $1 the run, $2-$9 the
  // repairs (as an SQL repair's row has them), $10-$13 the LSP's answers. An HTTP status of 0
  // (no answer) and an empty message are stored as NULL.
  conn.prepare("record_deliveries",
               "INSERT INTO lsp_sweeper.actions (" + std::string(kAuditColumns) +
                   ", via, callback_outcome, callback_http_status, callback_answer, "
                   "callback_attempts) SELECT $1::text, d.kind, d.flow, d.record_id, "
                   "d.payment_hash, d.from_status, d.to_status, d.outbox_action, d.applied, "
                   "'lsp_callback', d.outcome, NULLIF(d.http_status, 0), NULLIF(d.answer, ''), "
                   "d.attempts FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], "
                   "$6::text[], $7::text[], $8::text[], $9::boolean[], $10::text[], "
                   "$11::integer[], $12::text[], $13::integer[]) WITH ORDINALITY AS d(kind, flow, "
                   "record_id, payment_hash, from_status, to_status, outbox_action, applied, "
                   "outcome, http_status, answer, attempts, n) ORDER BY d.n");
  conn.prepare("begin_run",
               "INSERT INTO lsp_sweeper.runs (run_id, started_at, dry_run, status) "
               "VALUES ($1, now(), $2, 'running')");
  // An empty report (a run that failed before it had one) is stored as NULL, not as
  // invalid JSON.
  conn.prepare("finish_run",
               "UPDATE lsp_sweeper.runs SET finished_at = now(), status = $2, exit_code = $3, "
               "report = NULLIF($4, '')::jsonb WHERE run_id = $1");

  // now() is the transaction's start, the same for every statement of one
  // record_divergences: a row whose first_seen_at is now() was opened by this call, and one
  // whose last_seen_at is now() was seen by it.
  const std::string divergence_columns =
      "id, kind, COALESCE(flow, ''), payment_hash, detail, needs_person, first_seen_at = now(), "
      "floor(EXTRACT(EPOCH FROM first_seen_at))::bigint, floor(EXTRACT(EPOCH FROM "
      "last_seen_at))::bigint, "
      "floor(EXTRACT(EPOCH FROM last_alerted_at))::bigint";
  conn.prepare("upsert_divergence",
               "INSERT INTO lsp_sweeper.divergences AS d (kind, flow, payment_hash, detail, "
               "needs_person) VALUES ($1, NULLIF($2, ''), $3, $4, $5) "
               "ON CONFLICT (kind, COALESCE(flow, ''), payment_hash) WHERE resolved_at IS NULL "
               "DO UPDATE SET detail = EXCLUDED.detail, needs_person = EXCLUDED.needs_person, "
               "last_seen_at = now() RETURNING " +
                   divergence_columns);
  conn.prepare("resolve_divergences",
               "UPDATE lsp_sweeper.divergences SET resolved_at = now() WHERE resolved_at IS NULL "
               "AND last_seen_at < now() AND NOT (payment_hash = ANY($1::text[])) RETURNING " +
                   divergence_columns);
  conn.prepare("mark_alerted",
               "UPDATE lsp_sweeper.divergences SET last_alerted_at = now() "
               "WHERE id = ANY($1::bigint[])");
  conn.prepare("open_divergences", "SELECT " + divergence_columns +
                                       " FROM lsp_sweeper.divergences WHERE resolved_at IS NULL "
                                       "ORDER BY first_seen_at, id");
  conn.prepare("recent_runs",
               "SELECT run_id, floor(EXTRACT(EPOCH FROM started_at))::bigint, "
               "EXTRACT(EPOCH FROM finished_at - started_at)::float8, status, exit_code, "
               "(report #>> '{node,payments_scanned}')::bigint, "
               "(report #>> '{summary,repairs_applied}')::bigint, "
               "(report #>> '{summary,divergences}')::bigint "
               "FROM lsp_sweeper.runs ORDER BY started_at DESC, run_id LIMIT $1");
}

// A row of divergence_columns.
StoredDivergence to_stored_divergence(const pqxx::row& row) {
  StoredDivergence d;
  d.id = row[0].as<std::int64_t>();
  const auto kind = plan::parse_divergence_kind(row[1].as<std::string>());
  d.divergence.kind = kind.value_or(plan::DivergenceKind::UnexplainedState);
  d.divergence.flow = parse_flow(row[2].as<std::string>());
  d.divergence.payment_hash = row[3].as<std::string>();
  d.divergence.detail = row[4].as<std::string>();
  d.divergence.needs_person = row[5].as<bool>();
  d.is_new = row[6].as<bool>();
  d.first_seen_at = row[7].as<std::int64_t>();
  d.last_seen_at = row[8].as<std::int64_t>();
  d.last_alerted_at = optional_int(row[9]);
  return d;
}

// "apply <kind> <flow> <hash>", for errors.
std::string repair_context(const plan::Repair& repair) {
  return "apply " + std::string(plan::to_string(repair.kind)) + " " +
         std::string(to_string(repair.flow)) + " " + repair.payment_hash;
}

// Repairs per statement: bounds the statement's size (about 150 bytes a repair) and how many
// rows one transaction holds locked.
constexpr std::size_t kMaxRepairsPerStatement = 1000;

// The key of the session-level advisory lock a writing run holds for its whole duration
// (README, "Overlapping runs"): pg_try_advisory_lock(7814713333662445171), "lsp_runs" in
// ASCII. Distinct from the migration lock, so a run never waits on a migrate.
constexpr std::int64_t kSweepLockKey = 0x6c73705f72756e73;

const RecordTable& table_of(Flow flow) {
  for (const RecordTable& t : kRecordTables) {
    if (t.flow == flow) return t;
  }
  throw std::logic_error("no table for this flow");
}

// The one connection the three parts of a backend share, and which flows' tables it has.
struct Session {
  std::unique_ptr<pqxx::connection> conn;
  std::vector<Flow> flows;

  // Runs a keyset-paged statement, whose parameters are `params`, then the id to start after
  // and the page size, and whose column 0 is the row id in order: one short read transaction
  // a page, none open while `on_page` runs (it may write), until a page comes back short or
  // on_page returns false.
  template <typename OnPage, typename... Params>
  void page_by_id(const std::string& statement, std::size_t page_size, OnPage on_page,
                  const Params&... params) {
    std::int64_t after = 0;  // ids are positive
    for (;;) {
      pqxx::result rows;
      try {
        pqxx::read_transaction txn(*conn);
        rows = txn.exec_prepared(statement, params..., after, static_cast<std::int64_t>(page_size));
      } catch (const std::exception& e) {
        throw StoreError(statement + ": " + detail::one_line(e.what()));
      }
      if (rows.empty()) return;
      after = rows[rows.size() - 1][0].as<std::int64_t>();
      if (!on_page(rows) || rows.size() < page_size) return;
    }
  }
};

class PgRecords final : public LspRecords {
 public:
  explicit PgRecords(std::shared_ptr<Session> session) : s_(std::move(session)) {}

  std::vector<Flow> flows() const override { return s_->flows; }

  std::vector<LspRecord> records_for(const std::vector<std::string>& hashes) override {
    if (hashes.empty()) return {};
    const std::string hash_array = text_array(hashes);
    std::vector<LspRecord> records;
    try {
      // One read transaction, so both tables are read in the same state of the database.
      pqxx::read_transaction txn(*s_->conn);
      for (Flow flow : s_->flows) {
        for (const pqxx::row& row :
             txn.exec_prepared(statement_name("records_for", flow), hash_array)) {
          records.push_back(to_record(flow, row));
        }
      }
    } catch (const std::exception& e) {
      throw StoreError("records_for: " + detail::one_line(e.what()));
    }
    return records;
  }

  void records_lacking_outbox_job(Flow flow, const std::vector<RequiredJob>& jobs,
                                  std::uint32_t page_size, const RecordSink& on_page) override {
    std::vector<std::string> states, actions;
    for (const RequiredJob& job : jobs) {
      states.push_back(job.status);
      actions.push_back(job.action);
    }
    s_->page_by_id(
        statement_name("records_lacking_outbox_job", table_of(flow).flow), page_size,
        [&](const pqxx::result& rows) { return on_page_of(flow, rows, on_page); },
        text_array(states), text_array(actions));
  }

  std::vector<StuckJob> stuck_jobs(std::int64_t stuck_after_seconds) override {
    const std::string columns =
        "o.id, o.payment_hash, o.action, o.status, o.attempts, floor(extract(epoch FROM now() - "
        "o.created_at))::bigint, o.last_error";
    const std::string limit = " ORDER BY o.id LIMIT " + std::to_string(kMaxStuckJobs);
    const std::string cutoff = "now() - make_interval(secs => $1::double precision)";
    const struct {
      JobStuckReason reason;
      std::string sql;
    } queries[] = {
        {JobStuckReason::Retrying,
         "SELECT " + columns +
             ", 0::bigint FROM async_rotating_invoice_outbox o WHERE o.status = 'pending' AND "
             "o.attempts >= 3 AND o.created_at < " +
             cutoff + limit},
        {JobStuckReason::LockExpired,
         "SELECT " + columns +
             ", 0::bigint FROM async_rotating_invoice_outbox o WHERE o.status = 'processing' "
             "AND o.locked_until < " +
             cutoff + limit},
        // One ordered pass over the pending jobs, each with the count of failing ones before
        // it (a correlated count per job grew as pending jobs x outbox rows).
        {JobStuckReason::HeadOfLine,
         "SELECT " + columns +
             ", o.blocked_by FROM (SELECT p.*, count(*) FILTER (WHERE p.attempts > 0) OVER "
             "(ORDER BY p.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS blocked_by "
             "FROM async_rotating_invoice_outbox p WHERE p.status = 'pending') o WHERE "
             "o.attempts = 0 AND o.blocked_by >= $1::bigint" +
             limit},
    };
    std::vector<StuckJob> jobs;
    try {
      pqxx::read_transaction txn(*s_->conn);
      for (const auto& q : queries) {
        const pqxx::result rows =
            q.reason == JobStuckReason::HeadOfLine
                ? txn.exec_params(q.sql, kHeadOfLineSlots)
                : txn.exec_params(q.sql, static_cast<double>(stuck_after_seconds));
        for (const pqxx::row& row : rows) {
          StuckJob job;
          job.reason = q.reason;
          job.id = row[0].as<std::int64_t>();
          job.payment_hash = row[1].as<std::string>();
          job.action = row[2].as<std::string>();
          job.status = row[3].as<std::string>();
          job.attempts = row[4].as<std::int64_t>();
          job.age_seconds = row[5].as<std::int64_t>();
          if (!row[6].is_null()) job.last_error = row[6].as<std::string>();
          job.blocked_by = row[7].as<std::int64_t>();
          jobs.push_back(std::move(job));
        }
      }
    } catch (const std::exception& e) {
      throw StoreError("stuck_jobs: " + detail::one_line(e.what()));
    }
    return jobs;
  }

  std::vector<AwaitingSince> awaiting_node_since(
      Flow flow, const std::vector<std::vector<std::string>>& quiet,
      const std::vector<std::string>& open_hashes) override {
    if (quiet.empty()) return {};
    // An infinite timestamptz has no unix seconds: unreadable, as NULL is.
    std::string stamps;
    for (Flow f : s_->flows) {
      stamps += std::string(stamps.empty() ? "" : " UNION ALL ") +
                "SELECT payment_hash, CASE WHEN isfinite(created_at) THEN floor(EXTRACT(EPOCH "
                "FROM created_at))::bigint END AS at FROM " +
                std::string(table_of(f).table);
    }
    // $1: the quiet states of each listing, as a JSON [[...], ...]; $2: the open hashes.
    std::string columns;
    std::string select;
    std::string any;
    for (std::size_t i = 0; i < quiet.size(); ++i) {
      const std::string n = std::to_string(i);
      const std::string counts = "(r.s" + n + " OR r.open)";
      columns += ", NOT (r.status IN (SELECT jsonb_array_elements_text($1::jsonb -> " + n +
                 "))) AS s" + n;
      select += std::string(select.empty() ? "" : ", ") + "count(DISTINCT r.id) FILTER (WHERE r.s" +
                n + "), min(u.at) FILTER (WHERE " + counts + "), max(u.at) FILTER (WHERE " +
                counts + "), bool_or(u.at IS NULL) FILTER (WHERE " + counts + ")";
      any += std::string(any.empty() ? "" : " OR ") + "r.s" + n;
    }
    const std::string sql = "WITH stamps AS (" + stamps + "), r AS (SELECT r.id, r.payment_hash" +
                            columns + ", r.payment_hash IN (SELECT unnest($2::text[])) AS open FROM " +
                            std::string(table_of(flow).table) + " r) SELECT " + select +
                            " FROM r JOIN stamps u ON u.payment_hash = r.payment_hash WHERE " +
                            any + " OR r.open";
    std::vector<AwaitingSince> out(quiet.size());
    try {
      pqxx::read_transaction txn(*s_->conn);
      const nlohmann::json quiet_sets = quiet;
      const pqxx::row row = txn.exec_params1(sql, quiet_sets.dump(), text_array(open_hashes));
      for (std::size_t i = 0; i < quiet.size(); ++i) {
        const auto c = static_cast<pqxx::row::size_type>(4 * i);
        out[i] = {row[c].as<std::int64_t>(), optional_int(row[c + 1]), optional_int(row[c + 2]),
                  !row[c + 3].is_null() && row[c + 3].as<bool>()};
      }
    } catch (const std::exception& e) {
      throw StoreError("awaiting_node_since: " + detail::one_line(e.what()));
    }
    return out;
  }

  void records_awaiting_node(Flow flow, const std::vector<std::string>& quiet, std::size_t batch,
                             const RecordSink& sink) override {
    s_->page_by_id(
        statement_name("records_awaiting_node", table_of(flow).flow), batch,
        [&](const pqxx::result& rows) { return on_page_of(flow, rows, sink); }, text_array(quiet));
  }

  std::vector<std::string> live_twin_hashes(Flow flow, const std::vector<std::string>& terminal,
                                            std::int64_t limit) override {
    std::vector<std::string> hashes;
    try {
      pqxx::read_transaction txn(*s_->conn);
      for (const pqxx::row& row :
           txn.exec_prepared(statement_name("live_twin_hashes", table_of(flow).flow),
                             text_array(terminal), limit)) {
        hashes.push_back(row[0].as<std::string>());
      }
    } catch (const std::exception& e) {
      throw StoreError("live_twin_hashes: " + detail::one_line(e.what()));
    }
    return hashes;
  }

  std::vector<LspRecord> records_with_malformed_hash(Flow flow,
                                                     const std::vector<std::string>& terminal,
                                                     std::int64_t limit) override {
    std::vector<LspRecord> records;
    try {
      pqxx::read_transaction txn(*s_->conn);
      for (const pqxx::row& row :
           txn.exec_prepared(statement_name("records_with_malformed_hash", table_of(flow).flow),
                             text_array(terminal), limit)) {
        records.push_back(to_record(flow, row));
      }
    } catch (const std::exception& e) {
      throw StoreError("records_with_malformed_hash: " + detail::one_line(e.what()));
    }
    return records;
  }

 private:
  static bool on_page_of(Flow flow, const pqxx::result& rows, const RecordSink& sink) {
    std::vector<LspRecord> page;
    page.reserve(rows.size());
    for (const pqxx::row& row : rows) page.push_back(to_record(flow, row));
    return sink(page);
  }

  std::shared_ptr<Session> s_;
};

class PgApplier final : public Applier {
 public:
  explicit PgApplier(std::shared_ptr<Session> session) : s_(std::move(session)) {}

  void apply(std::vector<plan::Repair>& repairs, const std::string& run_id) override {
    // The planner never builds these; refusing them here keeps a claimable record from ever
    // getting a NULL deadline the LSP's next job would trip over.
    for (const plan::Repair& repair : repairs) {
      if (repair.kind == plan::RepairKind::MissedClaimable && !repair.claim_deadline_height) {
        throw StoreError(repair_context(repair) + ": no claim deadline height");
      }
      if (repair.kind == plan::RepairKind::MissedPaymentSent && !repair.preimage) {
        throw StoreError(repair_context(repair) + ": no preimage");
      }
    }
    // Batches of one transition each, in the order of their first repair.
    std::vector<std::size_t> order(repairs.size());
    std::iota(order.begin(), order.end(), 0);
    const auto transition = [&](std::size_t i) {
      const plan::Repair& r = repairs[i];
      return std::tie(r.kind, r.flow, r.to, r.outbox_action, r.from);
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return transition(a) < transition(b); });
    for (std::size_t begin = 0; begin < order.size();) {
      std::size_t end = begin + 1;
      while (end < order.size() && end - begin < kMaxRepairsPerStatement &&
             transition(order[end]) == transition(order[begin])) {
        ++end;
      }
      apply_batch(repairs, {order.begin() + begin, order.begin() + end}, run_id);
      begin = end;
    }
  }

 private:
  // One statement for `batch`, indices into `repairs` of one transition.
  void apply_batch(std::vector<plan::Repair>& repairs, const std::vector<std::size_t>& batch,
                   const std::string& run_id) {
    const plan::Repair& first = repairs[batch.front()];
    std::vector<std::string> ids, hashes, observed, values;
    for (std::size_t i : batch) {
      const plan::Repair& r = repairs[i];
      ids.push_back(std::to_string(r.row_id));
      hashes.push_back(r.payment_hash);
      observed.push_back(r.observed_status);
      if (r.kind == plan::RepairKind::MissedClaimable) {
        values.push_back(std::to_string(*r.claim_deadline_height));
      } else if (r.kind == plan::RepairKind::MissedPaymentSent) {
        values.push_back(*r.preimage);
      }
    }
    std::string context = repair_context(first);
    if (batch.size() > 1) context += " and " + std::to_string(batch.size() - 1) + " more";
    std::unordered_map<std::int64_t, bool> applied;
    try {
      // Autocommit: the statement is its own transaction (see kRepairInput).
      pqxx::nontransaction txn(*s_->conn);
      const std::string statement = name_of(first.kind, first.flow);
      const std::string kind(plan::to_string(first.kind));
      const std::string flow(to_string(first.flow));
      const pqxx::result rows =
          first.kind == plan::RepairKind::MissingOutboxJob
              ? txn.exec_prepared(statement, text_array(ids), text_array(hashes),
                                  text_array(observed), text_array(first.from), first.to,
                                  first.outbox_action, run_id, kind, flow)
              : txn.exec_prepared(statement, text_array(ids), text_array(hashes),
                                  text_array(observed), text_array(first.from), first.to,
                                  first.outbox_action, run_id, kind, flow, text_array(values));
      for (const pqxx::row& row : rows) applied[row[0].as<std::int64_t>()] = row[1].as<bool>();
    } catch (const std::exception& e) {
      throw StoreError(context +
                       ": update, outbox job and audit row: " + detail::one_line(e.what()));
    }
    for (std::size_t i : batch) repairs[i].applied = applied[repairs[i].row_id];
  }

  std::shared_ptr<Session> s_;
};

class PgLedger final : public Ledger {
 public:
  explicit PgLedger(std::shared_ptr<Session> session) : s_(std::move(session)) {}

  bool try_lock_sweep() override {
    try {
      // Session-level, not transaction-level: it must outlive every transaction of the run.
      pqxx::nontransaction txn(*s_->conn);
      if (holds_lock_) return true;
      holds_lock_ =
          txn.exec_params1("SELECT pg_try_advisory_lock($1)", kSweepLockKey)[0].as<bool>();
      return holds_lock_;
    } catch (const std::exception& e) {
      throw StoreError("taking the sweep lock: " + detail::one_line(e.what()));
    }
  }

  // Advisory locks are no write: both calls work in a read-only session.
  void unlock_sweep() override {
    if (!holds_lock_) return;
    try {
      pqxx::nontransaction txn(*s_->conn);
      txn.exec_params1("SELECT pg_advisory_unlock($1)", kSweepLockKey);
      holds_lock_ = false;
    } catch (const std::exception& e) {
      throw StoreError("releasing the sweep lock: " + detail::one_line(e.what()));
    }
  }

  void record_deliveries(const std::vector<plan::Repair>& repairs,
                         const std::string& run_id) override {
    std::vector<std::string> kinds, flows, ids, hashes, observed, to, actions, applied, outcomes,
        statuses, answers, attempts;
    for (const plan::Repair& r : repairs) {
      // The run loop sets it on every repair it replayed: one without it is the caller's bug.
      if (!r.delivery) {
        throw StoreError("record deliveries: " + repair_context(r) + ": no delivery");
      }
      kinds.emplace_back(plan::to_string(r.kind));
      flows.emplace_back(to_string(r.flow));
      ids.push_back(std::to_string(r.row_id));
      hashes.push_back(r.payment_hash);
      observed.push_back(r.observed_status);
      to.push_back(r.to);
      actions.push_back(r.outbox_action);
      applied.emplace_back(r.applied ? "t" : "f");
      outcomes.emplace_back(plan::to_string(r.delivery->outcome));
      statuses.push_back(std::to_string(r.delivery->http_status));
      answers.push_back(r.delivery->answer);
      attempts.push_back(std::to_string(r.delivery->attempts));
    }
    if (repairs.empty()) return;
    try {
      // One statement: its own short transaction, every row or none.
      pqxx::nontransaction txn(*s_->conn);
      txn.exec_prepared("record_deliveries", run_id, text_array(kinds), text_array(flows),
                        text_array(ids), text_array(hashes), text_array(observed), text_array(to),
                        text_array(actions), text_array(applied), text_array(outcomes),
                        text_array(statuses), text_array(answers), text_array(attempts));
    } catch (const std::exception& e) {
      throw StoreError("record deliveries: " + detail::one_line(e.what()));
    }
  }

  void begin_run(const std::string& run_id, bool dry_run) override {
    try {
      pqxx::work txn(*s_->conn);
      txn.exec_prepared("begin_run", run_id, dry_run);
      txn.commit();
    } catch (const std::exception& e) {
      throw StoreError("begin run " + run_id + ": " + detail::one_line(e.what()));
    }
  }

  void finish_run(const RunRecord& run) override {
    const std::string context = "finish run " + run.run_id;
    std::size_t updated = 0;
    try {
      pqxx::work txn(*s_->conn);
      updated =
          txn.exec_prepared("finish_run", run.run_id, run.status, run.exit_code, run.report_json)
              .affected_rows();
      txn.commit();
    } catch (const std::exception& e) {
      throw StoreError(context + ": " + detail::one_line(e.what()));
    }
    if (updated != 1) throw StoreError(context + ": no such run was begun");
  }

  DivergenceUpdate record_divergences(const std::vector<plan::Divergence>& seen,
                                      bool resolve_unseen,
                                      const std::vector<std::string>& keep_open) override {
    DivergenceUpdate update;
    try {
      pqxx::work txn(*s_->conn);
      for (const plan::Divergence& d : seen) {
        update.seen.push_back(to_stored_divergence(
            txn.exec_prepared1("upsert_divergence", std::string(plan::to_string(d.kind)),
                               d.flow ? std::string(to_string(*d.flow)) : std::string(),
                               d.payment_hash, d.detail, d.needs_person)));
      }
      if (resolve_unseen) {
        for (const pqxx::row& row :
             txn.exec_prepared("resolve_divergences", text_array(keep_open))) {
          update.resolved.push_back(to_stored_divergence(row));
        }
      }
      txn.commit();
    } catch (const std::exception& e) {
      throw StoreError("record divergences: " + detail::one_line(e.what()));
    }
    return update;
  }

  void mark_alerted(const std::vector<std::int64_t>& ids) override {
    std::vector<std::string> texts;
    for (std::int64_t id : ids) texts.push_back(std::to_string(id));
    try {
      pqxx::work txn(*s_->conn);
      txn.exec_prepared("mark_alerted", text_array(texts));
      txn.commit();
    } catch (const std::exception& e) {
      throw StoreError("mark divergences alerted: " + detail::one_line(e.what()));
    }
  }

  std::vector<StoredDivergence> open_divergences() override {
    std::vector<StoredDivergence> open;
    try {
      pqxx::read_transaction txn(*s_->conn);
      for (const pqxx::row& row : txn.exec_prepared("open_divergences")) {
        open.push_back(to_stored_divergence(row));
      }
    } catch (const std::exception& e) {
      throw StoreError("open divergences: " + detail::one_line(e.what()));
    }
    return open;
  }

  std::vector<RunSummary> recent_runs(int limit) override {
    std::vector<RunSummary> runs;
    try {
      pqxx::read_transaction txn(*s_->conn);
      for (const pqxx::row& row : txn.exec_prepared("recent_runs", limit)) {
        RunSummary run;
        run.run_id = row[0].as<std::string>();
        run.started_at = row[1].as<std::int64_t>();
        if (!row[2].is_null()) run.duration_seconds = row[2].as<double>();
        run.status = row[3].as<std::string>();
        if (!row[4].is_null()) run.exit_code = row[4].as<int>();
        run.scanned = optional_int(row[5]);
        run.repaired = optional_int(row[6]);
        run.divergences = optional_int(row[7]);
        runs.push_back(std::move(run));
      }
    } catch (const std::exception& e) {
      throw StoreError("recent runs: " + detail::one_line(e.what()));
    }
    return runs;
  }

 private:
  std::shared_ptr<Session> s_;
  bool holds_lock_ = false;  // session-level advisory locks stack: take it once
};

}  // namespace

bool accepts(std::string_view) { return true; }

Backend open(const std::string& db_url, Access access) {
  auto session = std::make_shared<Session>();
  session->conn = detail::connect(db_url);
  pqxx::connection& conn = *session->conn;
  try {
    // apply()'s reasoning about concurrent callbacks (see prepare_record_statements) holds
    // under READ COMMITTED; a database whose default is stricter would turn the lost race into
    // a serialization error instead of the normal `false`. libpqxx re-applies these on
    // reconnect.
    conn.set_variable("default_transaction_isolation", "'read committed'");
    // The sweep's statements are short; JIT compiling one whose estimate crosses
    // jit_above_cost (a per-record subquery over a large table does) costs more than running
    // it: 230 ms of compilation for a 23 ms scan of 100k records.
    conn.set_variable("jit", "off");
    // A dry run or `history` can then write nothing, whatever a bug would try.
    if (access == Access::ReadOnly) conn.set_variable("default_transaction_read_only", "on");
  } catch (const std::exception& e) {
    throw StoreError("setting the session's isolation level and JIT: " +
                     detail::one_line(e.what()));
  }
  try {
    pqxx::read_transaction txn(conn);
    detail::require_schema_version(txn, db_url);
    if (txn.exec1("SELECT to_regclass('async_rotating_invoices') IS NULL")[0].as<bool>()) {
      throw StoreError("the LSP's table async_rotating_invoices does not exist in " +
                       redact(db_url));
    }
    session->flows.push_back(Flow::Apay);
    if (!txn.exec1("SELECT to_regclass('lightning_send_mappings') IS NULL")[0].as<bool>()) {
      session->flows.push_back(Flow::Relay);
    }
  } catch (const StoreError&) {
    throw;
  } catch (const std::exception& e) {
    throw StoreError("reading the schema: " + detail::one_line(e.what()));
  }
  for (Flow flow : session->flows) prepare_record_statements(conn, table_of(flow));
  prepare_ledger_statements(conn);
  return {"postgresql", std::make_unique<PgRecords>(session), std::make_unique<PgApplier>(session),
          std::make_unique<PgLedger>(session)};
}

}  // namespace lsp_sweeper::store::postgres
