#!/usr/bin/env bash
# fuzz.sh - build and run the MessagePack decoder fuzzer (tests/fuzz).
#
#   bash tools/fuzz.sh [RUNS] [libFuzzer options...]
#
# FUZZ_TARGET=records fuzzes the recipes' record parsers instead
# (tests/fuzz/fuzz_records.c: holder records and the small MessagePack
# records of core/small_mpack.c), seeded from tests/fuzz/corpus/records.
#
# RUNS defaults to $FUZZ_RUNS, else 200000 (what CI runs). FUZZ_LUA picks
# the Lua headers and library: lua5.4 (default) or luajit. Builds with
# clang's libFuzzer, ASan and UBSan into build-fuzz/, against the real
# tiercache sources (the codec calls tc_is_text). The seeds in
# tests/fuzz/corpus/mpack are copied into a working corpus under
# build-fuzz/ that the fuzzer may grow, so the repository's stays as is.
# Exits non-zero on any crash, leak, UB report or failed round trip; the
# input that caused it is saved in build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-${FUZZ_RUNS:-200000}}"
shift || true
lua="${FUZZ_LUA:-lua5.4}"
target="${FUZZ_TARGET:-mpack}"
out=build-fuzz
case "$target" in
mpack) bin="$out/fuzz_mpack_$lua"; work="${FUZZ_CORPUS_DIR:-$out/corpus-mpack-$lua}" ;;
records) bin="$out/fuzz_records"; work="${FUZZ_CORPUS_DIR:-$out/corpus-records}" ;;
*) echo "fuzz.sh: FUZZ_TARGET must be mpack or records, not '$target'" >&2; exit 2 ;;
esac
cc="${CC_FUZZ:-clang}"

case "$runs" in
'' | *[!0-9]*) echo "fuzz.sh: RUNS must be a number, not '$runs'" >&2; exit 2 ;;
esac
command -v "$cc" >/dev/null || { echo "fuzz.sh: $cc not found" >&2; exit 2; }

mkdir -p "$out/obj-$lua" "$out/artifacts" "$work"

san=("-fsanitize=address,undefined" -fno-sanitize-recover=all -g -O1)
deps=$(pkg-config --cflags sqlite3 zlib libxxhash)
# The library as meson builds it (tc_prefix.h first, -Icore), with the
# sanitizers and coverage; the fuzzer's main comes in at the link.
objs=()
for src in core/*.c shm/*.c; do
  obj="$out/obj-$lua/$(basename "${src%.c}")-$(dirname "$src").o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ core/tiercache.h -nt "$obj" ] ||
     [ core/internal.h -nt "$obj" ] || [ "$0" -nt "$obj" ]; then
    # shellcheck disable=SC2086
    "$cc" -std=c11 "${san[@]}" -fsanitize=fuzzer-no-link -Icore \
      -include core/tc_prefix.h $deps -c "$src" -o "$obj" &
  fi
  objs+=("$obj")
done
wait
if [ "$target" = records ]; then
  # shellcheck disable=SC2046
  "$cc" -std=c11 -Wall -Wextra -Werror "${san[@]}" -fsanitize=fuzzer \
    -Icore -include core/tc_prefix.h tests/fuzz/fuzz_records.c "${objs[@]}" \
    $(pkg-config --libs sqlite3 zlib libxxhash) -lpthread -lm -o "$bin"
else
  # shellcheck disable=SC2046
  "$cc" -std=c11 -Wall -Wextra -Werror "${san[@]}" -fsanitize=fuzzer \
    -Ilua -Icore $(pkg-config --cflags "$lua") \
    tests/fuzz/fuzz_mpack.c lua/mpack.c "${objs[@]}" \
    $(pkg-config --libs "$lua" sqlite3 zlib libxxhash) -lpthread -lm -o "$bin"
fi

cp -p "tests/fuzz/corpus/$target"/* "$work"/
echo "fuzz.sh: $bin, $runs runs, corpus $work"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
# libFuzzer prints "Done N runs in S second(s)" when every run passed.
"$bin" -runs="$runs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$out/artifacts/" "$@" "$work"
