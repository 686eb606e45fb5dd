#!/usr/bin/env bash
# test.sh - the whole test suite, as CI runs it:
#   1. a warning-free (-Werror) build, all suites (unit, mp, interop, cli,
#      bench smoke);
#   2. an ASan/UBSan build, the C suites again;
#   3. valgrind over the unit suite;
#   4. clang-format check of every C file.
# Prints "tests: N passed, M failed" last; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh || exit 2

passed=0
failed=0
failures=()

# Run one meson test invocation and add its Ok/Fail counts to the totals.
run_suite() {
  local label="$1"; shift
  local log
  log=$(mktemp)
  echo "== $label"
  "$@" >"$log" 2>&1
  local status=$?
  grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout):' "$log"
  local ok fail to
  ok=$(awk '/^Ok:/{print $2}' "$log" | tail -1)
  fail=$(awk '/^Fail:/{print $2}' "$log" | tail -1)
  to=$(awk '/^Timeout:/{print $2}' "$log" | tail -1)
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${fail:-0} + ${to:-0}))
  if [ "$status" -ne 0 ]; then
    failures+=("$label")
    if [ "${fail:-0}" -eq 0 ] && [ "${to:-0}" -eq 0 ]; then
      failed=$((failed + 1))
    fi
    grep -E -A40 '^=+ [0-9]+/[0-9]+ =+$|stderr:|FAIL|Assertion' "$log" | head -200
  fi
  rm -f "$log"
}

step() {
  local label="$1"; shift
  echo "== $label"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$label")
  fi
}

jobs=$(nproc 2>/dev/null || echo 2)

# meson setup, or reconfigure an existing build directory.
configure() {
  local dir="$1"; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    rm -rf "$dir"
    meson setup "$dir" "$@" >/dev/null
  fi
}

# With CI=true a missing dependency fails the suite instead of letting
# meson skip the tests that need it.
deps_present() {
  local bad=0 p
  for p in lua5.4 luajit nginx curl; do
    command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] ||
      { echo "missing: $p"; bad=1; }
  done
  [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] ||
    { echo "missing: libnginx-mod-http-lua"; bad=1; }
  /usr/bin/python3 -c 'import diskcache' 2>/dev/null ||
    { echo "missing: python3-diskcache"; bad=1; }
  pkg-config --exists lua5.4 luajit || { echo "missing: Lua headers"; bad=1; }
  return $bad
}
if [ "${CI:-}" = "true" ]; then
  step "dependencies present (CI=true)" deps_present
fi

step "configure (werror)" configure build-test --werror -Dtests=true -Dtest_hooks=true
step "build (werror)" ninja -C build-test
run_suite "all suites" meson test -C build-test --num-processes "$jobs" --print-errorlogs
# The cold-tier unit suites again with the hot tier on in every cache they
# open (unit_hot chooses its hot sizes itself).
run_suite "unit suites with the hot tier on" meson test -C build-test --setup hot \
  unit_types unit_ops unit_queue unit_maint unit_iter unit_txn unit_settings \
  unit_eviction unit_fanout unit_badinput --num-processes "$jobs" --print-errorlogs

step "configure (asan+ubsan)" configure build-asan -Dtests=true \
  -Db_sanitize=address,undefined -Db_lundef=false -Dtest_hooks=true
step "build (asan+ubsan)" ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  run_suite "asan+ubsan: unit mp cli worker" meson test -C build-asan --num-processes "$jobs" \
  --suite unit --suite mp --suite cli --suite worker --print-errorlogs

# ThreadSanitizer: threads sharing one handle (one mapping, which TSan
# needs) run the threaded coherence stress; a reported race fails it.
# Only the library and that program are built. setarch -R: TSan's memory
# layout does not fit every kernel's address randomisation.
step "configure (tsan)" configure build-tsan -Dtests=true -Db_sanitize=thread \
  -Db_lundef=false
step "build (tsan)" ninja -C build-tsan tests/tsan/tsan_threads
tsan_run() {
  local out
  out=$(meson test -C build-tsan --no-rebuild --suite tsan \
    --wrapper "setarch $(uname -m) -R" --print-errorlogs 2>&1)
  local rc=$?
  echo "$out"
  # A build without the thread sanitizer registers no test: not a pass.
  echo "$out" | grep -qE 'tsan_threads +OK' || return 1
  return $rc
}
run_suite "tsan: threads sharing one mapping" tsan_run

run_suite "valgrind: unit" meson test -C build-test --setup valgrind --suite unit \
  --num-processes "$jobs" --print-errorlogs

# The Lua module under valgrind: lua5.4 is clean under memcheck, so any
# report is the module's.
lua_valgrind() {
  local t rc=0
  for t in values cache django deque index recipes; do
    echo "-- valgrind lua5.4 tests/lua/test_$t.lua"
    LUA_CPATH="build-test/lua/lua54/?.so" LUA_PATH="tests/lua/?.lua;;" \
      valgrind -q --error-exitcode=1 --leak-check=full \
      --show-possibly-lost=no --errors-for-leak-kinds=definite lua5.4 "tests/lua/test_$t.lua" \
      >/tmp/tiercache-lua-valgrind.log 2>&1 || { rc=1; tail -40 /tmp/tiercache-lua-valgrind.log; }
  done
  return $rc
}
step "valgrind: Lua module (lua5.4)" lua_valgrind

# The MessagePack decoder reads bytes from disk: a bounded fuzz run here
# (FUZZ_RUNS, default 200000 per interpreter); long runs by hand with
# `bash tools/fuzz.sh 20000000`.
fuzz_both() {
  FUZZ_LUA=lua5.4 bash tools/fuzz.sh "${FUZZ_RUNS:-200000}" >/tmp/tiercache-fuzz.log 2>&1 &&
    FUZZ_LUA=luajit bash tools/fuzz.sh "${FUZZ_RUNS:-200000}" >>/tmp/tiercache-fuzz.log 2>&1 &&
    FUZZ_TARGET=records bash tools/fuzz.sh "${FUZZ_RUNS:-200000}" >>/tmp/tiercache-fuzz.log 2>&1
  local rc=$?
  grep -E '^Done [0-9]+ runs|ERROR|SUMMARY' /tmp/tiercache-fuzz.log
  [ $rc -eq 0 ] || tail -40 /tmp/tiercache-fuzz.log
  return $rc
}
step "fuzz: MessagePack decoder, recipe records" fuzz_both

fmt_check() {
  local bad=0 f
  for f in $(git ls-files '*.c' '*.h' 2>/dev/null || find core tools tests bench examples -name '*.[ch]'); do
    case "$f" in */vendor/*) continue ;; esac
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
      echo "clang-format would change $f"
      bad=1
    fi
  done
  return $bad
}
step "clang-format" fmt_check

if [ ${#failures[@]} -gt 0 ]; then
  echo "failed steps: ${failures[*]}"
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
