#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the missing Debian packages, builds with
# warnings as errors, starts a throwaway PostgreSQL (private data directory and socket),
# runs every test with ctest, and stops the server whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
build=${LSP_SWEEPER_BUILD_DIR:-build/test}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DLSP_SWEEPER_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"

pgdir=$(mktemp -d /tmp/lsp-sweeper-test-pg.XXXXXX)
trap 'scripts/pg.sh stop "$pgdir" || true; rm -rf "$pgdir"' EXIT
LSP_SWEEPER_TEST_DB=$(scripts/pg.sh start "$pgdir")
export LSP_SWEEPER_TEST_DB

ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@"
