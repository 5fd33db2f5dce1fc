#!/usr/bin/env bash
# Installs the Debian packages lsp-sweeper needs to build, test and run its demo, and only
# those that are missing. Safe to run again.
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  libcurl4-openssl-dev nlohmann-json3-dev libpqxx-dev libcli11-dev libspdlog-dev
  libgtest-dev libssl-dev libcpp-httplib-dev
  libsqlite3-dev sqlite3
  postgresql jq curl
  time python3 xxd  # bench/ only: /usr/bin/time, the generator, the shell baseline
  clang libclang-rt-14-dev  # the libFuzzer targets (tests/fuzz)
  prometheus  # promtool: the tests check the metrics file and deploy/prometheus rules
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing: ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
