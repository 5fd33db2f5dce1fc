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

// What the statements of pg_store.cpp (and `history`, which reads runs) use, table by table;
// sql/roles/lsp_sweeper_role.sql grants exactly this, and the integration tests run the
// sweep as that role.
struct Need {
  std::string_view table;
  bool lsp_table;  // the LSP's own: anything more than needed is worth a warning
  std::vector<std::string_view> privileges;
  std::vector<std::string_view> update_columns;
  bool serial_id = false;  // inserts take the next id from its sequence
  bool optional = false;   // a table the LSP may not have (the relay flow's)
};

const std::vector<Need>& needs() {
  static const std::vector<Need> list{
      {"async_rotating_invoices",
       true,
       {"SELECT"},
       {"status", "claimable_at", "claim_deadline_height", "payment_preimage", "updated_at"}},
      {"lightning_send_mappings",
       true,
       {"SELECT"},
       {"status", "claim_deadline_height", "payment_preimage", "updated_at"},
       false,
       true},
      {"async_rotating_invoice_outbox", true, {"SELECT", "INSERT"}, {}, true},
      {"lsp_sweeper.schema_version", false, {"SELECT"}, {}},
      {"lsp_sweeper.runs", false, {"SELECT", "INSERT", "UPDATE"}, {}},
      {"lsp_sweeper.actions", false, {"INSERT"}, {}, true},
      {"lsp_sweeper.divergences", false, {"SELECT", "INSERT", "UPDATE"}, {}, true},
  };
  return list;
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

// The current role's privileges on the tables that exist, against needs().
Privileges check_privileges(pqxx::transaction_base& txn) {
  Privileges out;
  for (const Need& need : needs()) {
    const std::string table(need.table);
    if (!ask(txn, "SELECT to_regclass($1) IS NOT NULL", table)) continue;
    const auto has = [&](std::string_view privilege) {
      return ask(txn, "SELECT has_table_privilege(to_regclass($1), $2)", table,
                 std::string(privilege));
    };
    for (std::string_view privilege : need.privileges) {
      if (!has(privilege)) out.missing.push_back(std::string(privilege) + " on " + table);
    }
    if (need.serial_id &&
        !ask(txn, "SELECT has_sequence_privilege(pg_get_serial_sequence($1, 'id'), 'USAGE')",
             table)) {
      out.missing.push_back("USAGE on the id sequence of " + table);
    }
    if (!need.lsp_table) continue;
    if (ask(txn, "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass($1)",
            table)) {
      out.owned.push_back(table);
      continue;  // an owner holds everything: listing it all would say nothing more
    }
    for (std::string_view privilege : kExtraPrivileges) {
      if (!contains(need.privileges, privilege) && has(privilege)) {
        out.extra.push_back(std::string(privilege) + " on " + table);
      }
    }
    const bool table_update = has("UPDATE");  // already reported whole, not column by column
    for (const pqxx::row& column : txn.exec_params(
             "SELECT attname, has_column_privilege(attrelid, attnum, 'UPDATE') FROM pg_attribute "
             "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped "
             "ORDER BY attnum",
             table)) {
      const auto name = column[0].as<std::string>();
      const bool granted = column[1].as<bool>();
      const bool needed = contains(need.update_columns, name);
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

std::vector<Check> check(const std::string& connection_string) {
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
                            "role of sql/roles/lsp_sweeper_role.sql"));
      return checks;
    }
    const Privileges privileges = check_privileges(txn);
    checks.push_back(privileges.missing.empty()
                         ? ok(what, "all the sweep needs")
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
