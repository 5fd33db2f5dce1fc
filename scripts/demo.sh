#!/usr/bin/env bash
# The main job on an embedded default, on a fresh machine: installs the missing Debian
# packages, builds, makes the LSP's database (by default its SQLite file, as the LSP keeps it;
# with --postgres a throwaway PostgreSQL server), starts the node simulator serving a scenario
# of lost callbacks (tests/scenarios/lost_callbacks.json, LSP records from
# lost_callbacks.<backend>.sql), then runs lsp-sweeper three times: a dry run, a real run, and
# a second real run that finds nothing left to repair. Everything it started is stopped on
# exit; nothing outside a temporary directory is touched.
#
#   scripts/demo.sh              the LSP's SQLite file (its default)
#   scripts/demo.sh --postgres   the LSP's PostgreSQL form, with the relay table
#   ... --apply lsp-callbacks    replay the lost callbacks to the LSP's endpoints, served by
#                                lsp-simulator (tests/lsp_sim) over the same database
set -euo pipefail
cd "$(dirname "$0")/.."

backend=sqlite apply=db
usage() { echo "usage: scripts/demo.sh [--postgres] [--apply db|lsp-callbacks]" >&2; exit 64; }
while [ $# -gt 0 ]; do
  case $1 in
    --postgres) backend=postgres; shift ;;
    --apply) [ $# -ge 2 ] || usage; apply=$2; shift 2 ;;
    *) usage ;;
  esac
done
case $apply in db | lsp-callbacks) ;; *) usage ;; esac

scripts/install-deps.sh
build=${LSP_SWEEPER_BUILD_DIR:-build/release}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target lsp-sweeper node-simulator lsp-simulator

work=$(mktemp -d /tmp/lsp-sweeper-demo.XXXXXX)
chmod 755 "$work"  # the server runs as postgres and keeps its data below this directory
sim_pid="" lsp_pid=""
cleanup() {
  for pid in $lsp_pid $sim_pid; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  scripts/pg.sh stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT

sweeper="$build/lsp-sweeper"
if [ "$backend" = postgres ]; then
  db=$(scripts/pg.sh start "$work/pg")
  query() { psql -X -q -v ON_ERROR_STOP=1 "$db" -c "$1"; }
  load() { psql -X -q -v ON_ERROR_STOP=1 "$db" -f "$1"; }
  actions_table=lsp_sweeper.actions
else
  db="sqlite:$work/utexo_lsp.db"  # named as the LSP names its file
  query() { sqlite3 -bail -header -column "$work/utexo_lsp.db" "$1"; }
  load() { sqlite3 -bail "$work/utexo_lsp.db" < "$1"; }
  actions_table=lsp_sweeper_actions
fi

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show_rows() {
  query "
    SELECT 'apay' AS flow, substr(payment_hash, 1, 12) AS hash, status,
           claim_deadline_height AS deadline, payment_preimage IS NOT NULL AS has_preimage
      FROM async_rotating_invoices
    UNION ALL
    SELECT 'relay', substr(payment_hash, 1, 12), status, claim_deadline_height,
           payment_preimage IS NOT NULL
      FROM lightning_send_mappings
    ORDER BY 1, 2;"
  query "SELECT substr(payment_hash, 1, 12) AS hash, action, status
            FROM async_rotating_invoice_outbox ORDER BY 1, 2;"
}

section "migrate: the sweeper's tables and, for this demo, the LSP's own ($backend)"
"$sweeper" migrate --db "$db" --with-lsp-schema
# The LSP's PostgreSQL branch has no relay table; this demo's scenario has relay orders.
if [ "$backend" = postgres ]; then load sql/lsp/postgres-relay.sql; fi
load "tests/scenarios/lost_callbacks.$backend.sql"

# The token reaches both programs through the environment, never argv.
LSP_SWEEPER_NODE_TOKEN=$(head -c 24 /dev/urandom | base64)
export LSP_SWEEPER_NODE_TOKEN
NODE_SIMULATOR_TOKEN=$LSP_SWEEPER_NODE_TOKEN "$build/node-simulator" \
  --scenario tests/scenarios/lost_callbacks.json >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 100); do grep -q '^listening on ' "$work/sim.out" && break; sleep 0.1; done
node_url=$(sed -n 's/^listening on //p' "$work/sim.out")
[ -n "$node_url" ] || { echo "node simulator did not start:" >&2; cat "$work/sim.err" >&2; exit 2; }
export LSP_SWEEPER_NODE_URL=$node_url LSP_SWEEPER_DB_URL=$db LSP_SWEEPER_APPLY=$apply

if [ "$apply" = lsp-callbacks ]; then
  # The LSP's two callback endpoints over the same database, asking the node for its height.
  LSP_SWEEPER_LSP_TOKEN=$(head -c 24 /dev/urandom | base64)
  export LSP_SWEEPER_LSP_TOKEN
  LSP_SIMULATOR_TOKEN=$LSP_SWEEPER_LSP_TOKEN LSP_SIMULATOR_NODE_TOKEN=$LSP_SWEEPER_NODE_TOKEN \
    "$build/lsp-simulator" --db "$db" --node-url "$node_url" >"$work/lsp.out" 2>"$work/lsp.err" &
  lsp_pid=$!
  for _ in $(seq 100); do grep -q '^listening on ' "$work/lsp.out" && break; sleep 0.1; done
  lsp_url=$(sed -n 's/^listening on //p' "$work/lsp.out")
  [ -n "$lsp_url" ] || { echo "lsp-simulator did not start:" >&2; cat "$work/lsp.err" >&2; exit 2; }
  export LSP_SWEEPER_LSP_URL=$lsp_url
  section "lsp-sweeper check   (the LSP endpoint and its token too)"
  "$sweeper" check || true
fi

section "the LSP's records before the sweep"
show_rows

run() {
  local code=0
  "$sweeper" run "$@" || code=$?
  echo "exit code: $code"
}

section "lsp-sweeper run --dry-run --report -   (plans, writes nothing, sends nothing; --apply $apply)"
run --dry-run --report -

section "lsp-sweeper run --report -"
run --report -

section "the LSP's records after the sweep"
show_rows
query "SELECT kind, flow, substr(payment_hash, 1, 12) AS hash, from_status, to_status, applied,
                 via, callback_outcome, callback_http_status
          FROM $actions_table ORDER BY id;"

section "lsp-sweeper run again: every lost callback is repaired, only divergences remain"
run --report "$work/second.json"
jq '{summary, divergences: [.divergences[] | {kind, flow, payment_hash: .payment_hash[0:12], detail}]}' "$work/second.json"
