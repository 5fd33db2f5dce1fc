#!/usr/bin/env bash
# Checks deploy/ with the tools that read it: promtool for the alerting rules (syntax, and a
# unit test that they fire on the right series), systemd-analyze for the units where it can
# run, and the Kubernetes CronJob's must-haves. Exits 77 (ctest SKIP_RETURN_CODE) when
# systemd-analyze is missing or cannot work here, after every other check passed, so a
# skipped part is reported as skipped, never as passed.
#
#   deploy_test.sh SOURCE_DIR LSP_SWEEPER_BINARY
set -euo pipefail
src=$1 binary=$2
skipped=()

echo "== promtool check rules"
promtool check rules "$src"/deploy/prometheus/*.yml
echo "== promtool test rules"
promtool test rules "$src/tests/deploy/rules_test.yml"

echo "== systemd units"
if ! command -v systemd-analyze >/dev/null; then
  skipped+=("systemd-analyze verify: systemd-analyze is not installed")
else
  # verify insists that ExecStart's program exists: point it at the binary just built.
  units=$(mktemp -d)
  trap 'rm -rf "$units"' EXIT
  cp "$src"/deploy/systemd/lsp-sweeper.{service,timer} "$units/"
  sed -i "s|/usr/local/bin/lsp-sweeper|$binary|" "$units/lsp-sweeper.service"
  if out=$(systemd-analyze verify "$units/lsp-sweeper.service" "$units/lsp-sweeper.timer" 2>&1); then
    [ -z "$out" ] || { echo "$out"; echo "systemd-analyze verify printed warnings" >&2; exit 1; }
    echo "systemd-analyze verify: ok"
  elif grep -qiE "not been booted with systemd|Failed to (connect|initialize|create bus)" <<<"$out"; then
    skipped+=("systemd-analyze verify: cannot run here: $(head -n1 <<<"$out")")
  else
    echo "$out" >&2
    exit 1
  fi
fi

echo "== kubernetes CronJob"
cronjob=$src/deploy/kubernetes/cronjob.yaml
grep -qE '^\s+concurrencyPolicy: Forbid$' "$cronjob"
for var in LSP_SWEEPER_NODE_TOKEN LSP_SWEEPER_DB_URL; do
  # The secret's variable is followed, within a line, by valueFrom (a Secret), not a value.
  grep -A1 -E "name: $var\$" "$cronjob" | grep -q 'valueFrom:' || {
    echo "$var must come from a Secret" >&2
    exit 1
  }
done
if grep -qE -- '--node-token|--db' "$cronjob"; then
  echo "a secret is passed in args" >&2
  exit 1
fi
echo "cronjob: ok"

if [ ${#skipped[@]} -gt 0 ]; then
  printf 'SKIPPED %s\n' "${skipped[@]}"
  exit 77
fi
