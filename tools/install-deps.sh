#!/usr/bin/env bash
# install-deps.sh - install tiercache's build and test dependencies from
# Debian 12's archive. Needs root (or sudo). Safe to run again.
set -euo pipefail

PACKAGES=(
  build-essential meson ninja-build pkg-config
  libsqlite3-dev sqlite3 zlib1g-dev libxxhash-dev
  libcriterion-dev
  python3 python3-diskcache
  valgrind clang clang-format
  lua5.4 liblua5.4-dev
  # OpenResty's LuaJIT fork: libnginx-mod-http-lua needs it and replaces
  # Debian's luajit packages, so these two are the ones to ask for.
  luajit2 libluajit2-5.1-dev
  nginx libnginx-mod-http-lua lua-resty-lrucache curl procps
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
