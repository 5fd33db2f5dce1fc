// `lsp-sweeper check`, the database's half: reachable, schema version, the LSP's tables, and
// the connected role's privileges against exactly those the sweep's statements use.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "../backends.hpp"
#include "connection.hpp"
#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::store::postgres {

namespace {

using util::Check;

// What a sweep's statements use on one table, in one apply mode.
struct Use {
  std::vector<std::string_view> privileges = {};
  std::vector<std::string_view> update_columns = {};
  bool serial_id = false;  // inserts take the next id from its sequence
};

// What the statements of backend.cpp (and `history`, which reads runs) use, table by table and
// per apply mode: --apply db repairs the LSP's tables itself; --apply lsp-callbacks only reads
// them (the LSP applies the replayed callback) and writes its own schema alone.
// sql/roles/lsp_sweeper_role.sql and sql/roles/lsp_sweeper_callbacks_role.sql grant exactly
// these, and the integration tests run the sweep's statements as those roles.
struct Need {
  std::string_view table;
  bool lsp_table;         // the LSP's own: anything more than needed is worth a warning
  Use db;                 // --apply db
  Use callbacks;          // --apply lsp-callbacks
  bool optional = false;  // a table the LSP may not have (the relay flow's)

  const Use& in(ApplyMode mode) const { return mode == ApplyMode::Database ? db : callbacks; }
};

const std::vector<Need>& needs() {
  // All --apply lsp-callbacks does with an LSP table.
  const Use read{.privileges = {"SELECT"}};
  // The sweeper's own tables, used alike in both modes.
  const Use versions{.privileges = {"SELECT"}};
  const Use runs{.privileges = {"SELECT", "INSERT", "UPDATE"}};
  const Use actions{.privileges = {"INSERT"}, .serial_id = true};
  const Use divergences{.privileges = {"SELECT", "INSERT", "UPDATE"}, .serial_id = true};
  static const std::vector<Need> list{
      {"async_rotating_invoices",
       true,
       {.privileges = {"SELECT"},
        .update_columns = {"status", "claimable_at", "claim_deadline_height", "payment_preimage",
                           "updated_at"}},
       read},
      {"lightning_send_mappings",
       true,
       {.privileges = {"SELECT"},
        .update_columns = {"status", "claim_deadline_height", "payment_preimage", "updated_at"}},
       read,
       true},
      {"async_rotating_invoice_outbox",
       true,
       {.privileges = {"SELECT", "INSERT"}, .serial_id = true},
       read},
      {"lsp_sweeper.schema_version", false, versions, versions},
      {"lsp_sweeper.runs", false, runs, runs},
      {"lsp_sweeper.actions", false, actions, actions},
      {"lsp_sweeper.divergences", false, divergences, divergences},
  };
  return list;
}

// The role script that grants what `mode` needs.
std::string_view role_script(ApplyMode mode) {
  return mode == ApplyMode::Database ? "sql/roles/lsp_sweeper_role.sql"
                                     : "sql/roles/lsp_sweeper_callbacks_role.sql";
}

constexpr std::string_view kExtraPrivileges[] = {"INSERT",   "UPDATE",     "DELETE",
                                                 "TRUNCATE", "REFERENCES", "TRIGGER"};

bool contains(const std::vector<std::string_view>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// A one-value boolean query; NULL (e.g. a table that is not there) reads as false.
template <typename... Params>
bool ask(pqxx::transaction_base& txn, const std::string& sql, const Params&... params) {
  return txn.exec_params1(sql, params...)[0].template as<bool>(false);
}

struct Privileges {
  std::vector<std::string> missing;
  std::vector<std::string> extra;  // on the LSP's tables only
  std::vector<std::string> owned;  // LSP tables the role owns (or is a member of the owner)
};

// The current role's privileges on the tables that exist, against what `mode` needs.
Privileges check_privileges(pqxx::transaction_base& txn, ApplyMode mode) {
  Privileges out;
  for (const Need& need : needs()) {
    const Use& use = need.in(mode);
    const std::string table(need.table);
    if (!ask(txn, "SELECT to_regclass($1) IS NOT NULL", table)) continue;
    const auto has = [&](std::string_view privilege) {
      return ask(txn, "SELECT has_table_privilege(to_regclass($1), $2)", table,
                 std::string(privilege));
    };
    for (std::string_view privilege : use.privileges) {
      if (!has(privilege)) out.missing.push_back(std::string(privilege) + " on " + table);
    }
    // Asked only of tables with an id column (each LSP table has one): the sequence of a
    // column that is not there is an error. NULL (an id that is no serial) reads as false.
    const auto id_sequence = [&] {
      return ask(txn, "SELECT has_sequence_privilege(pg_get_serial_sequence($1, 'id'), 'USAGE')",
                 table);
    };
    if (use.serial_id && !id_sequence()) {
      out.missing.push_back("USAGE on the id sequence of " + table);
    }
    if (!need.lsp_table) continue;
    if (ask(txn, "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass($1)",
            table)) {
      out.owned.push_back(table);
      continue;  // an owner holds everything: listing it all would say nothing more
    }
    for (std::string_view privilege : kExtraPrivileges) {
      if (!contains(use.privileges, privilege) && has(privilege)) {
        out.extra.push_back(std::string(privilege) + " on " + table);
      }
    }
    if (!use.serial_id && id_sequence()) {
      out.extra.push_back("USAGE on the id sequence of " + table);
    }
    const bool table_update = has("UPDATE");  // already reported whole, not column by column
    for (const pqxx::row& column : txn.exec_params(
             "SELECT attname, has_column_privilege(attrelid, attnum, 'UPDATE') FROM pg_attribute "
             "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped "
             "ORDER BY attnum",
             table)) {
      const auto name = column[0].as<std::string>();
      const bool granted = column[1].as<bool>();
      const bool needed = contains(use.update_columns, name);
      if (needed && !granted) out.missing.push_back("UPDATE(" + name + ") on " + table);
      if (!needed && granted && !table_update) {
        out.extra.push_back("UPDATE(" + name + ") on " + table);
      }
    }
  }
  return out;
}

using util::fail;
using util::ok;
using util::warn;

}  // namespace

std::vector<Check> check(const std::string& connection_string, ApplyMode mode) {
  std::vector<Check> checks;
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = detail::connect(connection_string);
  } catch (const StoreError& e) {
    // The lines a reachable database gets, so a reader sees what was not looked at.
    const std::string not_checked = "not checked: the database is unreachable";
    return {fail("database reachable", e.what()), fail("sweeper schema", not_checked),
            fail("LSP tables present", not_checked), fail("privileges of the role", not_checked)};
  }
  checks.push_back(ok("database reachable", redact(connection_string)));
  try {
    pqxx::read_transaction txn(*conn);
    const int version = detail::schema_version(txn);
    const std::string versions = "version " + std::to_string(version) + ", this build expects " +
                                 std::to_string(expected_schema_version());
    checks.push_back(version == expected_schema_version()
                         ? ok("sweeper schema", versions)
                         : fail("sweeper schema", versions + " (run lsp-sweeper migrate)"));

    std::vector<std::string> absent, optional_absent;
    for (const Need& need : needs()) {
      if (need.lsp_table &&
          !ask(txn, "SELECT to_regclass($1) IS NOT NULL", std::string(need.table))) {
        (need.optional ? optional_absent : absent).push_back(std::string(need.table));
      }
    }
    std::string present = "async_rotating_invoices, async_rotating_invoice_outbox";
    if (!optional_absent.empty()) {
      present += "; no " + join(optional_absent) + ": the relay flow is not reconciled";
    }
    checks.push_back(absent.empty() ? ok("LSP tables present", present)
                                    : fail("LSP tables present", "missing: " + join(absent)));

    const auto role = txn.exec1(
        "SELECT current_user::text, rolsuper FROM pg_roles "
        "WHERE rolname = current_user");
    const std::string what = "privileges of role " + role[0].as<std::string>();
    if (role[1].as<bool>()) {
      checks.push_back(warn(what,
                            "superuser: far more than the sweeper needs; run it as the "
                            "role of " +
                                std::string(role_script(mode))));
      return checks;
    }
    const Privileges privileges = check_privileges(txn, mode);
    checks.push_back(privileges.missing.empty()
                         ? ok(what, mode == ApplyMode::Database
                                        ? "all the sweep needs"
                                        : "all the sweep needs to apply by lsp-callbacks")
                         : fail(what, "missing: " + join(privileges.missing)));
    if (!privileges.owned.empty()) {
      checks.push_back(
          warn(what, "owns " + join(privileges.owned) + ": more than the sweeper needs"));
    }
    if (!privileges.extra.empty()) {
      checks.push_back(warn(what, "more than the sweeper needs: " + join(privileges.extra)));
    }
  } catch (const std::exception& e) {
    checks.push_back(fail("database checks", detail::one_line(e.what())));
  }
  return checks;
}

}  // namespace lsp_sweeper::store::postgres
