#!/usr/bin/env bash
# The benchmark of issue 5: lsp-sweeper against node histories of several sizes, served by the
# node simulator over real HTTP, with 200k LSP records in a real (throwaway) PostgreSQL.
#
#   bench/run.sh [--sizes 10k,100k,1M] [--runs 5] [--records 200000] [--few 100] [--no-baseline]
#
# For each size it measures, in the same run: the sweep with 1% and 10% of the callbacks lost
# (a fresh copy of the records for every run), the steady state that follows (nothing left to
# repair), and the floor: curl fetching the very pages the steady sweep fetched (its requests
# as the simulator logged them) to /dev/null, plus psql running the same record lookups. At
# the smallest size it also times bench/baseline.sh (curl + jq + psql, one payment at a time)
# once. Then it settles all but --few records and times auto (which picks targeted
# POST /getpayment lookups) against --lookup list on the same history. Every figure is a
# median of --runs runs, except the baseline's. Prints a Markdown
# table on stdout; progress goes to stderr. Needs about 4 GB of memory for 1M (the simulator
# holds the history as JSON).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=10k,100k,1M runs=5 records=200000 baseline=1 few=100
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --records) records=$2; shift 2 ;;
    --few) few=$2; shift 2 ;;
    --no-baseline) baseline=0; shift ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
done

scripts/install-deps.sh
build=${LSP_SWEEPER_BUILD_DIR:-build/release}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target lsp-sweeper node-simulator >/dev/null
sweeper="$build/lsp-sweeper"

work=$(mktemp -d /tmp/lsp-sweeper-bench.XXXXXX)
chmod 755 "$work"  # the server runs as postgres and keeps its data below this directory
sim_pid=""
stop_sim() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  sim_pid=""
}
cleanup() {
  stop_sim || true
  scripts/pg.sh stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }
count() { case $1 in *k) echo $((${1%k} * 1000)) ;; *M) echo $((${1%M} * 1000000)) ;; *) echo "$1" ;; esac; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }

server=$(scripts/pg.sh start "$work/pg")
export PGOPTIONS="-c client_min_messages=warning"  # no NOTICE for DROP ... IF EXISTS
db() { echo "${server/@\/postgres\?/@/$1?}"; }
admin() { psql -X -q -v ON_ERROR_STOP=1 "$server" -c "$1"; }
copy_db() { admin "DROP DATABASE IF EXISTS $2" && admin "CREATE DATABASE $2 TEMPLATE $1"; }
on_run() { psql -X -q -v ON_ERROR_STOP=1 "$(db run)" -c "$1"; }

# The token reaches lsp-sweeper through its environment and curl through a private config
# file, never argv.
LSP_SWEEPER_NODE_TOKEN=$(head -c 24 /dev/urandom | base64)
export LSP_SWEEPER_NODE_TOKEN
(umask 077 && echo "header = \"Authorization: Bearer $LSP_SWEEPER_NODE_TOKEN\"" >"$work/auth.curl")

admin "CREATE DATABASE lsp_schema"
"$sweeper" migrate --db "$(db lsp_schema)" --with-lsp-schema 2>/dev/null

# One timed sweep, with any further arguments; appends
# "wall cpu rss_kb scanned repairs lookup_mode getpayment_requests apply_seconds" to $1.
sweep() {
  local out=$1 dbname=$2 report="$work/report.json" wall user sys rss
  shift 2
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$sweeper" run --node-url "$node_url" \
    --db "$(db "$dbname")" --report "$report" "$@" >/dev/null 2>"$work/sweep.log" || {
    log "sweep failed:"; tail -3 "$work/sweep.log" >&2; exit 1
  }
  read -r wall user sys rss <"$work/time"
  echo "$wall $(calc %.2f "$user + $sys") $rss $(jq -r '"\(.node.payments_scanned) \(.summary.repairs_applied) \(.lookup.mode) \(.lookup.getpayment_requests) \(.summary.repairs_apply_seconds)"' "$report")" >>"$out"
}

col() { awk -v c="$1" '{print $c}' "$2"; }

# Median row of a sweep measurement file: wall cpu rss_mb scanned repairs.
summary() {
  local f=$1
  echo "$(median $(col 1 "$f")) $(median $(col 2 "$f")) $(calc %.0f "$(median $(col 3 "$f")) / 1024") \
$(median $(col 4 "$f")) $(median $(col 5 "$f"))"
}

# The floor of the steady sweep whose requests are lines $2.. of the request log, on db $1.
floor() {
  local dbname=$1 from=$2 i=0 f
  rm -rf "$work/pages" && mkdir "$work/pages"
  cp "$work/auth.curl" "$work/floor.curl" && cp "$work/auth.curl" "$work/fetch.curl"
  while read -r method target; do
    [ "$method" = GET ] || continue
    i=$((i + 1))
    printf 'url = "%s%s"\noutput = "/dev/null"\n' "$node_url" "$target" >>"$work/floor.curl"
    printf 'url = "%s%s"\noutput = "%s/pages/%05d.json"\n' "$node_url" "$target" "$work" "$i" >>"$work/fetch.curl"
  done < <(tail -n +"$from" "$work/requests.log")
  # The same lookups lsp-sweeper makes (src/store/pg_store.cpp), built from the same pages,
  # in a session set up as its own (JIT off).
  curl -sS -K "$work/fetch.curl"
  {
    echo "SET jit = off;"
    for t in "apay async_rotating_invoices amount_msat" "relay lightning_send_mappings inbound_amount_msat"; do
      set -- $t
      echo "PREPARE records_for_$1(text[]) AS SELECT payment_hash, status, $3, claim_deadline_height
              FROM $2 WHERE payment_hash IN (SELECT unnest(\$1::text[]));"
      echo "PREPARE outbox_$1(text[], text[], text, int) AS
              WITH matching AS MATERIALIZED (SELECT r.payment_hash, r.status, r.$3,
              r.claim_deadline_height, ARRAY(SELECT o.action FROM async_rotating_invoice_outbox o
                     WHERE o.payment_hash = r.payment_hash ORDER BY o.action)
              FROM $2 r JOIN unnest(\$1::text[], \$2::text[]) AS need(status, action)
              ON r.status = need.status WHERE NOT EXISTS
              (SELECT 1 FROM async_rotating_invoice_outbox o
               WHERE o.payment_hash = r.payment_hash AND o.action = need.action))
              SELECT * FROM matching WHERE payment_hash > \$3 ORDER BY payment_hash LIMIT \$4;"
    done
    for f in "$work"/pages/*.json; do
      jq -e '.payments | length > 0' "$f" >/dev/null || continue
      hashes=$(jq -r '[.payments[].payment_hash | ascii_downcase] | "{" + join(",") + "}"' "$f")
      echo "BEGIN READ ONLY; EXECUTE records_for_apay('$hashes'); EXECUTE records_for_relay('$hashes'); ROLLBACK;"
    done
    # auto's choice between listing and targeted lookups: one count, stopped at
    # --targeted-max + 1 (200 + 1).
    open="r.payment_hash IN (SELECT d.payment_hash FROM lsp_sweeper.divergences d WHERE d.resolved_at IS NULL)"
    echo "SELECT (SELECT count(*) FROM (
            SELECT 1 FROM async_rotating_invoices r WHERE r.payment_hash IS NOT NULL
              AND (NOT (r.status = ANY('{inbound_claimed}')) OR $open)
            UNION ALL SELECT 1 FROM lightning_send_mappings r WHERE r.payment_hash IS NOT NULL
              AND (NOT (r.status = ANY('{settled}')) OR $open) LIMIT 201) a),
            d.unbound, d.open FROM (SELECT count(*) FILTER (WHERE flow IS NULL) AS unbound,
            count(*) AS open FROM lsp_sweeper.divergences WHERE resolved_at IS NULL) d;"
    # The steady state lacks no job: one page of each flow, empty.
    echo "BEGIN READ ONLY; EXECUTE outbox_apay('{claimable,outbound_claimed}',
            '{request_outbound_invoice,claim_inbound_invoice}', '', 1000); ROLLBACK;"
    echo "BEGIN READ ONLY; EXECUTE outbox_relay('{claimable,outbound_claimed}',
            '{lightning_send_pay_outbound,lightning_send_claim_inbound}', '', 1000); ROLLBACK;"
  } >"$work/lookups.sql"
  local curl_times=() psql_times=()
  for _ in $(seq "$runs"); do
    /usr/bin/time -f %e -o "$work/time" curl -sS -K "$work/floor.curl"
    curl_times+=("$(cat "$work/time")")
    /usr/bin/time -f %e -o "$work/time" psql -X -q -o /dev/null -f "$work/lookups.sql" "$(db "$dbname")"
    psql_times+=("$(cat "$work/time")")
  done
  echo "$(median "${curl_times[@]}") $(median "${psql_times[@]}") $i"
}

echo "| node payments | LSP state | wall s | CPU s | peak RSS MB | scanned | scanned/s | repairs | repairs per wall s | floor s (curl + psql) | sweep / floor |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
notes=()
first=1
for size in ${sizes//,/ }; do
  n=$(count "$size")
  log "$size: generating $n node payments and their records"
  python3 bench/gen.py node "$n" >"$work/node.json"
  for lost in 1 10; do
    tag=lost$lost
    admin "CREATE DATABASE $tag TEMPLATE lsp_schema"
    python3 bench/gen.py lsp "$n" "0.$(printf %02d "$lost")" "$records" | psql -X -q -v ON_ERROR_STOP=1 "$(db "$tag")" >/dev/null
  done

  log "$size: starting the node simulator"
  : >"$work/requests.log"
  : >"$work/sim.out"
  NODE_SIMULATOR_TOKEN=$LSP_SWEEPER_NODE_TOKEN "$build/node-simulator" --scenario "$work/node.json" \
    --request-log "$work/requests.log" >"$work/sim.out" 2>"$work/sim.err" &
  sim_pid=$!
  for _ in $(seq 1200); do grep -q '^listening on ' "$work/sim.out" && break; sleep 0.5; done
  node_url=$(sed -n 's/^listening on //p' "$work/sim.out")
  [ -n "$node_url" ] || { log "node simulator did not start:"; cat "$work/sim.err" >&2; exit 2; }
  rm "$work/node.json"

  for tag in lost1 lost10; do
    log "$size: $runs sweeps with ${tag#lost}% of the callbacks lost"
    : >"$work/$tag.txt"
    for _ in $(seq "$runs"); do
      copy_db "$tag" run
      sweep "$work/$tag.txt" run
    done
  done
  # The last run repaired everything: what is left is the steady state.
  log "$size: $runs steady-state sweeps"
  : >"$work/steady.txt"
  from=$(($(wc -l <"$work/requests.log") + 1))
  for _ in $(seq "$runs"); do sweep "$work/steady.txt" run; done
  # Requests of the first steady sweep only: each one makes the same requests.
  per_run=$(((($(wc -l <"$work/requests.log") - from + 1)) / runs))
  tail -n +"$from" "$work/requests.log" | head -n "$per_run" >"$work/one-run.log"
  mv "$work/one-run.log" "$work/requests.log"
  log "$size: floor (curl + psql), $runs times"
  read -r floor_curl floor_psql pages < <(floor run 1)
  floor_s=$(calc %.3f "$floor_curl + $floor_psql")

  for tag in lost1 lost10 steady; do
    read -r wall cpu rss scanned repairs < <(summary "$work/$tag.txt")
    case $tag in lost1) label="1% lost" ;; lost10) label="10% lost" ;; steady) label="steady" ;; esac
    echo "| $n | $label | $wall | $cpu | $rss | $scanned | $(calc %.0f "$scanned / $wall") | $repairs \
| $(calc %.0f "$repairs / $wall") | $floor_s ($floor_curl + $floor_psql) | $(calc %.2f "$wall / $floor_s") |"
  done
  read -r steady_wall _ < <(summary "$work/steady.txt")
  read -r lost_wall _ _ _ lost_repairs < <(summary "$work/lost10.txt")
  added=$(calc %.3f "$lost_wall - $steady_wall")
  rate="within the noise"
  [ "$(calc %d "($added > 0.05)")" = 1 ] && rate="$(calc %.0f "$lost_repairs / $added")/s"
  apply_s=$(calc %.3f "$(median $(col 8 "$work/lost10.txt"))")
  notes+=("$n: $pages requests; steady / 10% lost = $(calc %.2f "$steady_wall / $lost_wall"); \
the $lost_repairs repairs at 10% lost: $(calc %.0f "$lost_repairs / $apply_s")/s over the $apply_s s the sweeper \
spent applying them (report: repairs_apply_seconds), $rate over the $added s they add to the steady sweep")

  # Few records awaiting the node (the rest settled): what auto's targeted lookups save
  # against the listings on the same history.
  log "$size: $runs sweeps each, auto and --lookup list, with $few records awaiting the node"
  on_run "UPDATE async_rotating_invoices SET status = 'inbound_claimed' WHERE payment_hash NOT IN
    (SELECT payment_hash FROM async_rotating_invoices WHERE status = 'claimable' ORDER BY payment_hash LIMIT $((few / 2)))"
  on_run "UPDATE lightning_send_mappings SET status = 'settled' WHERE payment_hash NOT IN
    (SELECT payment_hash FROM lightning_send_mappings WHERE status = 'outbound_claimed' ORDER BY payment_hash LIMIT $((few / 2)))"
  on_run "ANALYZE"
  : >"$work/few-auto.txt" && : >"$work/few-list.txt"
  for _ in $(seq "$runs"); do
    sweep "$work/few-auto.txt" run
    sweep "$work/few-list.txt" run --lookup list
  done
  read -r auto_wall _ auto_rss _ _ < <(summary "$work/few-auto.txt")
  read -r list_wall _ list_rss _ _ < <(summary "$work/few-list.txt")
  notes+=("$n, $few records awaiting the node: auto chose $(col 6 "$work/few-auto.txt" | sort -u | xargs) \
($(col 7 "$work/few-auto.txt" | head -1) getpayment requests), $auto_wall s and $auto_rss MB; --lookup list $list_wall s and \
$list_rss MB: $(calc %.1f "$list_wall / $auto_wall")x")

  if [ "$first" = 1 ] && [ "$baseline" = 1 ]; then
    log "$size: shell baseline (curl + jq + psql, one payment at a time), once"
    copy_db lost10 run
    /usr/bin/time -f %e -o "$work/time" env NODE_URL="$node_url" DB="$(db run)" \
      CURL_CONFIG="$work/auth.curl" bench/baseline.sh >"$work/baseline.out"
    base_wall=$(cat "$work/time")
    notes+=("$n, 10% lost: shell baseline $base_wall s ($(cat "$work/baseline.out")), lsp-sweeper $lost_wall s: $(calc %.0f "$base_wall / $lost_wall")x faster")
  fi
  first=0
  stop_sim
  admin "DROP DATABASE run" && admin "DROP DATABASE lost1" && admin "DROP DATABASE lost10"
done
echo
echo "Medians of $runs runs each (the baseline: one run)."
for note in "${notes[@]}"; do echo "- $note"; done
