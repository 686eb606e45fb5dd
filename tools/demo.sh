#!/usr/bin/env bash
# demo.sh - set everything up and run the main job: build tiercache, then
# share one cache directory between two processes and print its stats.
#   bash tools/demo.sh [DIR]     (default: ~/.cache/tiercache-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
if [ ! -d build ]; then
  meson setup build -Dtests=false >/dev/null
fi
ninja -C build >/dev/null
dir="${1:-$HOME/.cache/tiercache-demo}"
./build/examples/tiercache-demo "$dir"
echo
./build/tools/tiercache stats "$dir"
