#!/usr/bin/env bash
# The sweep as an operator could write it instead: curl for each page, jq to split it, and one
# psql call per payment to look its record up and, when a callback was lost, to repair it
# (conditional UPDATE and outbox job in one statement, so each repair stays atomic). Same
# listings and rules as lsp-sweeper for the two repairs; it writes no audit rows and no report.
# bench/run.sh times it against lsp-sweeper; it is not meant for production.
#
#   NODE_URL=... DB=... CURL_CONFIG=FILE (holds the Authorization header) bench/baseline.sh
set -euo pipefail

: "${NODE_URL:?}" "${DB:?}" "${CURL_CONFIG:?}"
now=$(date +%s)
since=$((now - 14 * 86400))
min_age=30
height=$(curl -sSf -K "$CURL_CONFIG" "$NODE_URL/networkinfo" | jq -r .height)
repairs=0 scanned=0

sql() { psql -X -q -At -F $'\t' -v ON_ERROR_STOP=1 "$@" "$DB"; }

# $1 hash, $2 flow, $3 from status, $4 to status, $5 outbox action, $6 column SET clause
repair() {
  local n
  n=$(sql -v h="$1" -v from="$3" -v to="$4" -v action="$5" -v value="${7:-}" <<SQL
WITH u AS (UPDATE $2 SET status = :'to', $6, updated_at = now()
            WHERE payment_hash = :'h' AND status = :'from' RETURNING payment_hash),
     j AS (INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status, available_at)
           SELECT payment_hash, :'action', 'pending', now() FROM u
           ON CONFLICT (payment_hash, action) DO NOTHING)
SELECT count(*) FROM u;
SQL
  )
  repairs=$((repairs + n))
}

check() {  # one payment: hash type status amount preimage updated_at
  local hash=$1 type=$2 status=$3 amt=$4 pre=$5 updated=$6 flow rstatus ramt deadline
  scanned=$((scanned + 1))
  read -r flow rstatus ramt deadline < <(sql -v h="$hash" <<'SQL'
SELECT 'apay', status, amount_msat, coalesce(claim_deadline_height, 0) FROM async_rotating_invoices
 WHERE payment_hash = :'h'
UNION ALL
SELECT 'relay', status, inbound_amount_msat, coalesce(claim_deadline_height, 0)
  FROM lightning_send_mappings WHERE payment_hash = :'h';
SQL
  ) || return 0  # no record: other traffic of the node
  [ $((now - updated)) -ge $min_age ] || return 0
  if [ "$type/$status" = InboundHodl/Claimable ]; then
    [ "$amt" = "$ramt" ] && [ "$deadline" -gt "$height" ] || return 0
    case $flow/$rstatus in
      apay/active) repair "$hash" async_rotating_invoices active claimable request_outbound_invoice \
        "claimable_at = COALESCE(claimable_at, now())" ;;
      relay/quoted) repair "$hash" lightning_send_mappings quoted claimable lightning_send_pay_outbound \
        "claim_deadline_height = claim_deadline_height" ;;
    esac
  elif [ "$type/$status" = Outbound/Succeeded ] && [ -n "$pre" ]; then
    [ "$(printf %s "$pre" | xxd -r -p | sha256sum | cut -d' ' -f1)" = "$hash" ] || return 0
    case $flow/$rstatus in
      apay/outbound_paid) repair "$hash" async_rotating_invoices outbound_paid outbound_claimed \
        claim_inbound_invoice "payment_preimage = :'value'" "$pre" ;;
      relay/outbound_pending | relay/outbound_paid) repair "$hash" lightning_send_mappings "$rstatus" \
        outbound_claimed lightning_send_claim_inbound "payment_preimage = :'value'" "$pre" ;;
    esac
  fi
}

for query in "status=Claimable&direction=Inbound" \
  "status=Succeeded&direction=Outbound&created_after=$since" \
  "status=Failed&created_after=$since" "status=Cancelled&created_after=$since"; do
  offset=""
  while :; do
    page=$(curl -sSf -K "$CURL_CONFIG" "$NODE_URL/listpayments?max_payments=1000$offset&$query")
    [ "$(jq '.payments | length' <<<"$page")" -gt 0 ] || break
    while IFS=$'\t' read -r hash type status amt pre updated; do
      check "$hash" "$type" "$status" "$amt" "$pre" "$updated"
    done < <(jq -r '.payments[] | [(.payment_hash | ascii_downcase), .payment_type, .status,
                    (.amt_msat // ""), (.preimage // "" | ascii_downcase), .updated_at] | @tsv' <<<"$page")
    next=$(jq .last_index_offset <<<"$page")
    [ "$next" -gt 0 ] || break
    offset="&index_offset=$next"
  done
done
echo "baseline: scanned=$scanned repairs=$repairs"
