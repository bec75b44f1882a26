#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages), then builds and runs the whole test suite:
#   1. Release build with warnings as errors, all `fast` tests;
#   2. ASan + UBSan build, all `fast` tests again;
#   3. clang libFuzzer build, every fuzz target for MOLMO_FUZZ_SECONDS (default 15) from its seeds.
# Exits non-zero on the first failure. No network is needed after step 0.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${MOLMO_FUZZ_SECONDS:-15}

echo "== setup"
./scripts/setup.sh

echo "== release build (-Werror)"
cmake -S . -B build-ci -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOLMO_WERROR=ON >/dev/null
ninja -C build-ci -j"$JOBS"
ctest --test-dir build-ci -L fast --output-on-failure -j"$JOBS"

echo "== every external symbol of libmolmo starts with molmo_ (STYLE.md §2)"
bad=$(nm -g --defined-only build-ci/libmolmo.a | awk 'NF==3 && $2 ~ /[TDBRV]/ {print $3}' |
      grep -v '^molmo_' | sort -u || true)
if [ -n "$bad" ]; then echo "symbols without the molmo_ prefix:"; echo "$bad"; exit 1; fi

echo "== ASan + UBSan build"
# Debug keeps assertions on; -O1 keeps the sanitized end-to-end parity tests quick.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
      -DMOLMO_WERROR=ON -DMOLMO_SANITIZE=ON >/dev/null
ninja -C build-asan -j"$JOBS"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L fast --output-on-failure -j"$JOBS"

echo "== libFuzzer targets (${FUZZ_SECONDS}s each)"
if command -v clang >/dev/null; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DMOLMO_FUZZ=ON -DMOLMO_TESTS=OFF >/dev/null
  ninja -C build-fuzz -j"$JOBS"
  for target in build-fuzz/tests/fuzz/*_fuzz; do
    name=$(basename "$target")
    work=$(mktemp -d)
    echo "-- $name"
    "$target" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=4096 \
      "$work" "tests/fuzz-corpus/$name" 2>&1 | tail -n 2
    rm -rf "$work"
  done
else
  echo "clang not found: fuzzing skipped"
fi
echo "== all tests passed"
