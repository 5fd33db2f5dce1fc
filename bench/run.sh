#!/usr/bin/env bash
# The benchmark of issue 13: lsp-sweeper on the "realistic month" (bench/gen.py), on SQLite and
# on PostgreSQL, against its own HTTP floor and against a straightforward peer script.
#
#   bench/run.sh [--backend postgres|sqlite|both] [--sizes 10k,200k,1M] [--runs 5]
#                [--repair-runs N] [--binary [LABEL=]PATH]... [--no-writer]
#                [--records R [--lost L]]
#
# For each size: bench/gen.py makes N node payments over 30 days, served by node-simulator over
# real HTTP on 127.0.0.1, and 20,000 LSP records in the LSP's own tables (17,800 finished
# orders, 200 unpaid invoices, 2,000 lost payment_sent callbacks of the last two hours; scaled
# down below 200k payments; --records and --lost set the two counts, as gen.py's arguments). For
# each backend, in the same run, medians of --runs:
# - the repair run (a fresh copy of the records each time; --repair-runs times, default
#   --runs): wall, CPU, peak RSS, requests, repairs applied and repairs/s (repairs over the
#   report's summary.repairs_apply_seconds);
# - one sweep right after it, the repairs' outbox jobs still pending; then the LSP's job runner
#   is played (those jobs set done) and the steady state follows (nothing to repair): the same
#   figures;
# - the floor: the steady sweep's own requests (the simulator's --request-log) replayed by one
#   curl process over one keep-alive connection, plus one read of the LSP tables the sweep
#   reads (sqlite3 / psql);
# - the peer, bench/peer.py (two filtered listings, batched lookups; checks less);
# - SQLite (unless --no-writer): lsp-writer (the LSP's own callback and reservation writes)
#   beside a repair run on a fresh copy, with its waits; then alone for at most 10 s.
# The first --binary (default: the Release build, built first) makes the repair runs and
# lsp-writer's; every --binary gets steady rows on the same data, its runs taken in turn with
# the others', e.g. --binary after=build/release/lsp-sweeper --binary before=/tmp/old/lsp-sweeper.
# Markdown on stdout, progress on stderr. Sends traffic only to 127.0.0.1; stops the
# simulator and the throwaway PostgreSQL on exit. Never part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

backends=both sizes=10k,200k,1M runs=5 repair_runs="" writer=1 binaries=() gen_records="" gen_lost=""
while [ $# -gt 0 ]; do
  case $1 in
    --backend) backends=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --repair-runs) repair_runs=$2; shift 2 ;;
    --binary) binaries+=("$2"); shift 2 ;;
    --no-writer) writer=0; shift ;;
    --records) gen_records=$2; shift 2 ;;
    --lost) gen_lost=$2; shift 2 ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
done
repair_runs=${repair_runs:-$runs}
if [ -n "$gen_lost" ] && [ -z "$gen_records" ]; then echo "bench/run.sh: --lost needs --records" >&2; exit 64; fi
gen_counts=($gen_records $gen_lost)  # gen.py's optional RECORDS LOST
case $backends in
  both) backends="sqlite postgres" ;;
  sqlite | postgres) ;;
  *) echo "bench/run.sh: --backend is postgres, sqlite or both" >&2; exit 64 ;;
esac

build=${LSP_SWEEPER_BUILD_DIR:-build/release}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target lsp-sweeper node-simulator lsp-writer >/dev/null
[ ${#binaries[@]} -gt 0 ] || binaries=("lsp-sweeper=$build/lsp-sweeper")
labels=() paths=()
for b in "${binaries[@]}"; do
  case $b in *=*) labels+=("${b%%=*}") paths+=("${b#*=}") ;; *) labels+=("$b") paths+=("$b") ;; esac
  [ -x "${paths[-1]}" ] || { echo "bench/run.sh: ${paths[-1]} is not an executable" >&2; exit 64; }
done
# Migrations and seeding use the first binary; every binary must accept its schema.
sweeper=${paths[0]}

work=$(mktemp -d /tmp/lsp-sweeper-bench.XXXXXX)
chmod 755 "$work"  # the server runs as postgres and keeps its data below this directory
sim_pid="" pg_started=0
stop_sim() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  sim_pid=""
}
cleanup() {
  stop_sim
  [ "$pg_started" = 1 ] && { scripts/pg.sh stop "$work/pg" || true; }
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: $*" >&2; }
count() { case $1 in *k) echo $((${1%k} * 1000)) ;; *M) echo $((${1%M} * 1000000)) ;; *) echo "$1" ;; esac; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }
col() { awk -v c="$1" '{print $c}' "$2"; }
med() { median $(col "$1" "$2"); }  # median of column $1 of file $2
requests() { wc -l <"$work/requests.log"; }

if [[ $backends == *postgres* ]]; then
  server=$(scripts/pg.sh start "$work/pg")
  pg_started=1
  export PGOPTIONS="-c client_min_messages=warning"  # no NOTICE for DROP ... IF EXISTS
fi
pgdb() { echo "${server/@\/postgres\?/@/$1?}"; }
admin() { psql -X -q -v ON_ERROR_STOP=1 "$server" -c "$1"; }

# The token reaches lsp-sweeper and the peer through their environment and curl through a
# private config file, never argv.
LSP_SWEEPER_NODE_TOKEN=$(head -c 24 /dev/urandom | base64)
export LSP_SWEEPER_NODE_TOKEN
(umask 077 && echo "header = \"Authorization: Bearer $LSP_SWEEPER_NODE_TOKEN\"" >"$work/auth.curl")

# The seeded records of backend $1 (gen.py's SQL in $work/lsp.sql), kept as a template.
seed() {
  case $1 in
    sqlite)
      rm -f "$work/seed.db"
      "$sweeper" migrate --db "sqlite:$work/seed.db" --with-lsp-schema 2>/dev/null
      sqlite3 -bail "$work/seed.db" <"$work/lsp.sql"
      sqlite3 "$work/seed.db" ANALYZE ;;
    postgres)
      admin "DROP DATABASE IF EXISTS run" && admin "DROP DATABASE IF EXISTS seed" && admin "CREATE DATABASE seed"
      "$sweeper" migrate --db "$(pgdb seed)" --with-lsp-schema 2>/dev/null
      psql -X -q -v ON_ERROR_STOP=1 "$(pgdb seed)" -f sql/lsp/postgres-relay.sql -f "$work/lsp.sql" -c ANALYZE >/dev/null ;;
  esac
}
# A fresh copy of the seeded records, as the database `run`.
fresh() {
  case $1 in
    sqlite) cp "$work/seed.db" "$work/run.db" ;;
    postgres) admin "DROP DATABASE IF EXISTS run" && admin "CREATE DATABASE run TEMPLATE seed" ;;
  esac
}
db_value() {
  case $1 in
    sqlite) sqlite3 "$work/seed.db" "$2" ;;
    postgres) psql -X -At "$(pgdb seed)" -c "$2" ;;
  esac
}
# What the LSP's job runner does to the jobs the repairs queued, in the end: done.
jobs_done() {
  local sql="UPDATE async_rotating_invoice_outbox SET status = 'done', updated_at = CURRENT_TIMESTAMP WHERE status = 'pending'"
  case $1 in
    sqlite) sqlite3 "$work/run.db" "$sql" ;;
    postgres) psql -X -q -v ON_ERROR_STOP=1 "$(pgdb run)" -c "$sql" ;;
  esac
}
run_db() { case $1 in sqlite) echo "sqlite:$work/run.db" ;; postgres) pgdb run ;; esac; }

# One timed sweep of binary $2 on backend $1; appends
# "wall cpu rss_kb requests repairs apply_seconds exit divergences" to $3.
sweep() {
  local backend=$1 bin=$2 out=$3 before wall user sys rss rc=0
  before=$(requests)
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$bin" run --node-url "$node_url" \
    --db "$(run_db "$backend")" --report "$work/report.json" >/dev/null 2>"$work/sweep.log" || rc=$?
  if [ "$rc" -gt 1 ]; then log "sweep failed (exit $rc):"; tail -3 "$work/sweep.log" >&2; exit 1; fi
  read -r wall user sys rss < <(tail -1 "$work/time")
  echo "$wall $(calc %.2f "$user + $sys") $rss $(($(requests) - before)) $(jq -r '"\(.summary.repairs_applied) \(.summary.repairs_apply_seconds)"' "$work/report.json") $rc $(jq -r .summary.divergences "$work/report.json")" >>"$out"
}

# The floor of the steady sweep whose requests are in the log file $2, on backend $1:
# "total curl_s db_s requests".
floor() {
  local backend=$1 n=0 curl_times=() db_times=()
  : >"$work/floor.curl"
  # One section per request, `next` between them (curl keeps the connection across them).
  while read -r method target body; do
    [ "$n" -eq 0 ] || echo next >>"$work/floor.curl"
    n=$((n + 1))
    cat "$work/auth.curl" >>"$work/floor.curl"
    printf 'url = "%s%s"\noutput = "/dev/null"\n' "$node_url" "$target" >>"$work/floor.curl"
    case $method in
      GET) ;;
      POST)
        printf 'header = "Content-Type: application/json"\ndata = "%s"\n' \
          "$(printf %s "$body" | sed 's/\\/\\\\/g; s/"/\\"/g')" >>"$work/floor.curl" ;;
      *) log "floor: cannot replay $method $target"; exit 1 ;;
    esac
  done <"$2"
  # The tables the sweep reads: both record tables and the outbox, each read once whole.
  local read="SELECT id, payment_hash, status, amount_msat, claim_deadline_height, payment_preimage
    FROM async_rotating_invoices; SELECT id, payment_hash, status, inbound_amount_msat,
    claim_deadline_height, payment_preimage FROM lightning_send_mappings; SELECT payment_hash,
    action, status, attempts, locked_until, created_at FROM async_rotating_invoice_outbox;"
  for _ in $(seq "$runs"); do
    /usr/bin/time -f %e -o "$work/time" curl -sS -K "$work/floor.curl"
    curl_times+=("$(tail -1 "$work/time")")
    case $backend in
      sqlite) /usr/bin/time -f %e -o "$work/time" sqlite3 "file:$work/run.db?mode=ro" "$read" >/dev/null ;;
      postgres) /usr/bin/time -f %e -o "$work/time" psql -X -q -o /dev/null "$(pgdb run)" -c "$read" ;;
    esac
    db_times+=("$(tail -1 "$work/time")")
  done
  local c d
  c=$(median "${curl_times[@]}") d=$(median "${db_times[@]}")
  echo "$(calc %.3f "$c + $d") $c $d $n"
}

# The peer on backend $1, --runs times: "wall cpu rss_kb requests missed_claimable missed_sent".
peer() {
  local backend=$1 db walls=() cpus=() rsss=() out user sys rss wall
  db=$(run_db "$backend")
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%e %U %S %M' -o "$work/time" python3 bench/peer.py "$node_url" "$db" >"$work/peer.json"
    read -r wall user sys rss < <(tail -1 "$work/time")
    walls+=("$wall") cpus+=("$(calc %.2f "$user + $sys")") rsss+=("$rss")
  done
  out=$(jq -r '"\(.requests) \(.missed_claimable) \(.missed_payment_sent)"' "$work/peer.json")
  echo "$(median "${walls[@]}") $(median "${cpus[@]}") $(median "${rsss[@]}") $out"
}

# lsp-writer on a fresh SQLite copy for $2 s, alone (no binary in $1) or beside one repair run
# of binary $1: late payment_sent callbacks for a tenth of the lost orders, racing the sweeper,
# and the LSP's invoice reservations and job claims all along. Its figures, as one JSON line.
writer() {
  local bin=$1 wpid sweep_figures=null
  fresh sqlite
  "$build/lsp-writer" --db "$work/run.db" --threads 1 --hashes "$work/callbacks.txt" \
    --background-writes --claim-jobs --interval-ms 2 --duration "$2" >"$work/writer.json" &
  wpid=$!
  if [ -n "$bin" ]; then
    sleep 0.2  # the LSP writes before, during and after the sweep
    : >"$work/writer-sweep.txt"
    sweep sqlite "$bin" "$work/writer-sweep.txt"
    sweep_figures=$(awk '{printf "{\"wall_s\": %s, \"repairs\": %s, \"apply_s\": %s}", $1, $5, $6}' "$work/writer-sweep.txt")
  fi
  wait "$wpid"
  jq -c --argjson sweep "$sweep_figures" '{writes_tried, writes_failed, busy_before_timeout,
    p50_wait_ms, p99_wait_ms, max_wait_ms, by_kind: (.by_kind | map_values({tried, failed,
    p99_wait_ms, max_wait_ms})), sweep: $sweep}' "$work/writer.json"
}

rss_rows=()
for size in ${sizes//,/ }; do
  n=$(count "$size")
  log "$size: generating $n node payments and the LSP's records"
  python3 bench/gen.py node "$n" "${gen_counts[@]}" >"$work/node.json"
  python3 bench/gen.py lsp "$n" "${gen_counts[@]}" >"$work/lsp.sql"
  python3 bench/gen.py callbacks "$n" "${gen_counts[@]}" >"$work/callbacks.txt"

  log "$size: starting the node simulator"
  : >"$work/requests.log"
  NODE_SIMULATOR_TOKEN=$LSP_SWEEPER_NODE_TOKEN "$build/node-simulator" --scenario "$work/node.json" \
    --request-log "$work/requests.log" >"$work/sim.out" 2>"$work/sim.err" &
  sim_pid=$!
  for _ in $(seq 1200); do grep -q '^listening on ' "$work/sim.out" && break; sleep 0.5; done
  node_url=$(sed -n 's/^listening on //p' "$work/sim.out")
  [ -n "$node_url" ] || { log "node simulator did not start:"; cat "$work/sim.err" >&2; exit 2; }
  case $node_url in http://127.0.0.1:*) ;; *) log "simulator not on 127.0.0.1: $node_url"; exit 2 ;; esac
  rm "$work/node.json"

  for backend in $backends; do
    log "$size, $backend: seeding"
    seed "$backend"
    records=$(db_value "$backend" "SELECT (SELECT count(*) FROM async_rotating_invoices) + (SELECT count(*) FROM lightning_send_mappings)")
    rows=() notes=()
    bin=${paths[0]} label=${labels[0]}
    log "$size, $backend, $label: $repair_runs repair runs"
    : >"$work/repair.txt" && : >"$work/pending.txt"
    for _ in $(seq "$repair_runs"); do fresh "$backend" && sweep "$backend" "$bin" "$work/repair.txt"; done
    # Once, right after the repairs: their jobs still pending, as the LSP's cron leaves them
    # for a while (it claims 10 per 30 s). Then the LSP has done them: the steady state.
    sweep "$backend" "$bin" "$work/pending.txt"
    jobs_done "$backend"
    repairs=$(med 5 "$work/repair.txt") apply_s=$(med 6 "$work/repair.txt")
    rows+=("| repair run: $label | $(med 1 "$work/repair.txt") | $(med 2 "$work/repair.txt") | \
$(calc %.0f "$(med 3 "$work/repair.txt") / 1024") | $(med 4 "$work/repair.txt") | $repairs applied, \
$(calc %.0f "$repairs / $apply_s")/s over $(calc %.3f "$apply_s") s applying; exit $(col 7 "$work/repair.txt" | sort -u | xargs), \
$(med 8 "$work/repair.txt") divergences |")
    rows+=("| the run after it, its $repairs jobs still pending: $label (1 run) | $(med 1 "$work/pending.txt") | \
$(med 2 "$work/pending.txt") | $(calc %.0f "$(med 3 "$work/pending.txt") / 1024") | $(med 4 "$work/pending.txt") | \
exit $(col 7 "$work/pending.txt"), $(med 5 "$work/pending.txt") repairs |")
    # Steady sweeps of every binary in turn, so that a change in the machine's load hits
    # them alike; the first binary's first one gives the floor its requests.
    log "$size, $backend: $runs steady-state runs of each binary, in turn"
    for i in "${!paths[@]}"; do : >"$work/steady$i.txt"; done
    for r in $(seq "$runs"); do
      for i in "${!paths[@]}"; do
        before=$(requests)
        sweep "$backend" "${paths[$i]}" "$work/steady$i.txt"
        [ "$r$i" = 10 ] && { first_from=$((before + 1)); first_count=$(($(requests) - before)); }
      done
    done
    for i in "${!paths[@]}"; do
      f="$work/steady$i.txt"
      steady_walls[$i]=$(med 1 "$f")
      rows+=("| steady (jobs done): ${labels[$i]} | ${steady_walls[$i]} | $(med 2 "$f") | \
$(calc %.0f "$(med 3 "$f") / 1024") | $(med 4 "$f") | exit $(col 7 "$f" | sort -u | xargs), $(med 5 "$f") repairs |")
      rss_rows+=("| $n | $backend | ${labels[$i]} | $( [ "$i" = 0 ] && calc %.0f "$(med 3 "$work/repair.txt") / 1024" || echo -) | \
$(calc %.0f "$(med 3 "$f") / 1024") |")
    done
    # Every steady sweep makes the same requests: the floor replays the first one's.
    sed -n "$first_from,$((first_from + first_count - 1))p" "$work/requests.log" >"$work/one-run.log"
    log "$size, $backend: floor and peer, $runs times each"
    read -r floor_s floor_curl floor_db floor_n < <(floor "$backend" "$work/one-run.log")
    read -r peer_wall peer_cpu peer_rss peer_requests missed_c missed_s < <(peer "$backend")
    rows+=("| floor: 1 curl over keep-alive + 1 read of the LSP tables | $floor_s ($floor_curl + $floor_db) | | | $floor_n | the first binary's steady requests |")
    rows+=("| peer: bench/peer.py | $peer_wall | $peer_cpu | $(calc %.0f "$peer_rss / 1024") | $peer_requests | missed claimable $missed_c, payment_sent $missed_s (no failed legs checked) |")
    for i in "${!paths[@]}"; do
      notes+=("${labels[$i]}: steady / floor $(calc %.2f "${steady_walls[$i]} / $floor_s")x, steady / peer $(calc %.2f "${steady_walls[$i]} / $peer_wall")x")
    done
    if [ "$backend" = sqlite ] && [ "$writer" = 1 ]; then
      log "$size, sqlite, $label: lsp-writer beside a repair run"
      # Writing from before the sweep starts until after it ends.
      duration=$(calc %.0f "$(med 1 "$work/repair.txt") + 3")
      notes+=("$label: lsp-writer beside a repair run: \`$(writer "$bin" "$duration")\`")
      log "$size, sqlite: lsp-writer alone"
      duration=$((duration < 10 ? duration : 10))
      notes+=("lsp-writer alone, the same writes for $duration s, no sweeper: \`$(writer "" "$duration")\`")
    fi

    echo "### $backend, $n node payments, $records LSP records"
    echo
    echo "| what | wall s | CPU s | peak RSS MB | node requests | notes |"
    echo "|---|---:|---:|---:|---:|---|"
    printf '%s\n' "${rows[@]}"
    echo
    printf -- '- %s\n' "${notes[@]}"
    echo
    [ "$backend" = postgres ] && admin "DROP DATABASE run" && admin "DROP DATABASE seed"
  done
  stop_sim
done
echo "### Peak RSS by size (MB, medians)"
echo
echo "| node payments | backend | binary | repair run | steady |"
echo "|---:|---|---|---:|---:|"
printf '%s\n' "${rss_rows[@]}"
echo
echo "Medians of $runs runs each ($repair_runs for the repair runs). CPU is user + system of the process (the peer's includes its psql)."
