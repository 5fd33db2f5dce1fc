#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the missing Debian packages, starts a
# throwaway PostgreSQL (private data directory and socket), runs the libFuzzer targets (clang)
# for a fixed number of inputs each, then every test with ctest twice: once built with
# warnings as errors, once under AddressSanitizer and UndefinedBehaviorSanitizer. The server
# is stopped whatever happens.
#
#   scripts/test.sh                    the fuzz targets and both passes
#   scripts/test.sh --no-sanitizers    the fuzz targets and the first pass (quicker)
#   scripts/test.sh -- -R Sweep        extra arguments after -- go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

sanitizers=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-sanitizers) sanitizers=0; shift ;;
    --) shift; break ;;
    *) echo "usage: scripts/test.sh [--no-sanitizers] [-- CTEST_ARGS...]" >&2; exit 64 ;;
  esac
done

scripts/install-deps.sh

pgdir=$(mktemp -d /tmp/lsp-sweeper-test-pg.XXXXXX)
trap 'scripts/pg.sh stop "$pgdir" || true; rm -rf "$pgdir"' EXIT
LSP_SWEEPER_TEST_DB=$(scripts/pg.sh start "$pgdir")
export LSP_SWEEPER_TEST_DB

run_pass() {
  local name=$1 build=$2; shift 2
  echo "== $name: build in $build"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DLSP_SWEEPER_WERROR=ON "$@" >/dev/null
  cmake --build "$build" -j"$(nproc)"
  echo "== $name: tests"
  ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "${ctest_args[@]}"
}

# The decoders of the node's JSON under libFuzzer, on their seed corpus plus
# LSP_SWEEPER_FUZZ_RUNS new inputs each (tests/fuzz; a longer run: see RELIABILITY.md).
echo "== fuzz: build in build/fuzz"
cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
  -DLSP_SWEEPER_FUZZ=ON -DLSP_SWEEPER_TESTS=OFF >/dev/null
cmake --build build/fuzz -j"$(nproc)" --target fuzz_targets
ctest --test-dir build/fuzz --output-on-failure

ctest_args=("$@")
run_pass "warnings as errors" build/test
if [ "$sanitizers" -eq 1 ]; then
  # Any report from either sanitizer fails the test that triggered it.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # Known leaks of third-party libraries only, each explained in the file.
  export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
  run_pass "address + undefined sanitizers" build/asan -DLSP_SWEEPER_SANITIZE=ON
fi
