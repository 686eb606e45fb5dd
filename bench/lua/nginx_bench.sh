#!/usr/bin/env bash
# nginx_bench.sh - tiercache against ngx.shared.DICT inside one nginx
# (Debian's nginx + libnginx-mod-http-lua), issue 4's OpenResty rows.
#
# Starts nginx with 2 workers on 127.0.0.1 (a free port, a prefix under
# mktemp) with `lua_shared_dict tcb_bench 64m` and a tiercache FanoutCache
# (or Cache, --layout cache) opened per worker in init_worker_by_lua with
# timeout 0.010. Both get the same 1000 keys "key:N" with 100-byte string
# values. The loops run inside the workers (bench/lua/nginx_worker.lua, a
# poller timer per worker; a start barrier in a second shared dict), not
# over HTTP: HTTP only posts each job and collects the result.
#
# Rows: get hit with 1 worker busy and with both busy at once, for both
# engines and for a control without shared state (resty.lrucache per
# worker, 16x the ops so its phases last about as long as tiercache's);
# get miss and set (overwrite, same size) with 1 worker. Median of
# --runs runs (default 3); ratios are medians of per-run ratios. nginx is
# stopped and everything made here (prefix, cache directory, hot-tier
# segment) is removed on exit.
#
# Usage: nginx_bench.sh [--quick] [--runs R] [--n N] [--warmup N]
#          [--miss-n N] [--set-n N] [--layout fanout|cache]
#          [--build DIR] [--module SO] [--cli PATH]
#   --build DIR  build tree (default /tmp/build-bench, a release build):
#                module DIR/lua/luajit/tiercache.so, CLI DIR/tools/tiercache
#   --n N        ops per worker for get hit, and for the shdict get miss
#                and set rows (default 3000000)
#   --miss-n N   tiercache get miss ops (default 100000: a miss reads SQLite)
#   --set-n N    tiercache set ops (default 2000: each set commits)
#   --warmup N   untimed ops per worker before each phase (default 100000,
#                capped at a tenth of the phase)
#   --quick      smoke run: n 100000, miss-n 2000, set-n 100, warm-up 10000
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
BUILD=/tmp/build-bench
MODULE=""
CLI=""
RUNS=3
N=3000000
MISS_N=100000
SET_N=2000
WARM=100000
LAYOUT=fanout

die() { echo "nginx_bench.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) N=100000; MISS_N=2000; SET_N=100; WARM=10000 ;;
    --runs) RUNS="$2"; shift ;;
    --n) N="$2"; shift ;;
    --miss-n) MISS_N="$2"; shift ;;
    --set-n) SET_N="$2"; shift ;;
    --warmup) WARM="$2"; shift ;;
    --layout) LAYOUT="$2"; shift ;;
    --build) BUILD="$2"; shift ;;
    --module) MODULE="$2"; shift ;;
    --cli) CLI="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
for v in "$RUNS" "$N" "$MISS_N" "$SET_N" "$WARM"; do
  [[ "$v" =~ ^[0-9]+$ ]] || die "not a number: $v"
done
[ "$RUNS" -ge 1 ] && [ "$N" -ge 1 ] && [ "$MISS_N" -ge 1 ] && [ "$SET_N" -ge 1 ] ||
  die "--runs and the op counts must be >= 1"
case "$LAYOUT" in fanout|cache) ;; *) die "--layout is fanout or cache" ;; esac
MODULE="${MODULE:-$BUILD/lua/luajit/tiercache.so}"
CLI="${CLI:-$BUILD/tools/tiercache}"

NGINX="$(command -v nginx || true)"
[ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
[ -n "$NGINX" ] || die "nginx is not installed"
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || die "libnginx-mod-http-lua is not installed"
command -v curl >/dev/null || die "curl is not installed"
[ -f "$MODULE" ] || die "no LuaJIT build of the module at $MODULE (ninja -C $BUILD)"
[ -x "$CLI" ] || CLI=""

PREFIX="$(mktemp -d /tmp/tiercache-nginx-bench.XXXXXX)"
CACHE="$PREFIX/data/cache"
WORKER_PIDS=""

stop_nginx() {
  local pid
  pid="$(cat "$PREFIX/logs/nginx.pid" 2>/dev/null)" || return 0
  kill -QUIT "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  # Workers left behind by the master (should not happen), by their pids.
  local w
  for w in $WORKER_PIDS; do kill -KILL "$w" 2>/dev/null || true; done
}
cleanup() {
  stop_nginx
  if [ -d "$CACHE" ]; then
    # The segment's name: tiercache-<st_dev hex>-<st_ino hex> in /dev/shm.
    local seg
    seg="/dev/shm/tiercache-$(printf '%x-%x' $(stat -c '%d %i' "$CACHE"))"
    [ -n "$CLI" ] && "$CLI" drop "$CACHE" >/dev/null 2>&1 || true
    rm -f "$seg" "$seg.lock"
    [ ! -e "$seg" ] || echo "nginx_bench.sh: could not remove $seg" >&2
  fi
  rm -rf "$PREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

chmod 755 "$PREFIX"
mkdir -p "$PREFIX"/{conf,logs,tmp,lib,data}
cp "$MODULE" "$PREFIX/lib/tiercache.so"
cp "$HERE/nginx_worker.lua" "$PREFIX/lib/tcbench.lua"
chmod 755 "$PREFIX/lib"
chmod 644 "$PREFIX/lib/tcbench.lua"
chmod 755 "$PREFIX/lib/tiercache.so"
USER_LINE=""
if [ "$(id -u)" -eq 0 ]; then
  # Workers run as nobody: the cache directory belongs to them.
  USER_LINE="user nobody nogroup;"
  chown nobody "$PREFIX/data"
fi
PORT="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000)))"

cat >"$PREFIX/conf/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
$USER_LINE
worker_processes 2;
pid $PREFIX/logs/nginx.pid;
error_log $PREFIX/logs/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $PREFIX/tmp/body;
    proxy_temp_path $PREFIX/tmp/proxy;
    fastcgi_temp_path $PREFIX/tmp/fastcgi;
    uwsgi_temp_path $PREFIX/tmp/uwsgi;
    scgi_temp_path $PREFIX/tmp/scgi;
    lua_package_cpath "$PREFIX/lib/?.so;;";
    lua_package_path "$PREFIX/lib/?.lua;;";
    lua_shared_dict tcb_bench 64m;   # the dict measured
    lua_shared_dict tcb_ctl 1m;      # jobs, start barrier, results
    init_by_lua_block {
        tcbench = require "tcbench"
        tcbench.configure { dir = "$CACHE", layout = "$LAYOUT", runs = $RUNS,
                            n = $N, miss_n_tc = $MISS_N, set_n_tc = $SET_N, warm = $WARM }
    }
    init_worker_by_lua_block { tcbench.init_worker() }
    server {
        listen 127.0.0.1:$PORT;
        location = /ping   { content_by_lua_block { ngx.say("pong") } }
        location = /fill   { content_by_lua_block { tcbench.fill() } }
        location = /plan   { content_by_lua_block { tcbench.plan() } }
        location = /run    { content_by_lua_block { tcbench.run() } }
        location = /report { content_by_lua_block { tcbench.report() } }
    }
}
EOF

URL="http://127.0.0.1:$PORT"
"$NGINX" -p "$PREFIX" -c conf/nginx.conf 2>"$PREFIX/logs/start.log" || {
  cat "$PREFIX/logs/start.log" "$PREFIX/logs/error.log" >&2
  die "nginx failed to start"
}
up=0
for _ in $(seq 100); do
  curl -fsS "$URL/ping" >/dev/null 2>&1 && { up=1; break; }
  sleep 0.1
done
[ "$up" = 1 ] || { cat "$PREFIX/logs/error.log" >&2; die "nginx does not answer on $URL"; }
WORKER_PIDS="$(pgrep -P "$(cat "$PREFIX/logs/nginx.pid")" | tr '\n' ' ')"

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
STAT_START="$(head -1 /proc/stat)"
DATE="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
curl -fsS --max-time 60 "$URL/fill" >&2 || { cat "$PREFIX/logs/error.log" >&2; die "fill failed"; }

steps="$(curl -fsS "$URL/plan")"
total="$(printf '%s\n' "$steps" | wc -l)"
i=0
while read -r run case; do
  i=$((i + 1))
  if ! line="$(curl -sS --max-time 900 "$URL/run?run=$run&case=$case")"; then
    cat "$PREFIX/logs/error.log" >&2
    die "step $i failed"
  fi
  case "$line" in
    run*) printf '[%d/%d] %s\n' "$i" "$total" "$line" >&2 ;;
    *) echo "$line" >&2; cat "$PREFIX/logs/error.log" >&2; die "step $i failed" ;;
  esac
done <<<"$steps"

REPORT="$(curl -fsS --max-time 60 "$URL/report")"
HOT=""
if [ -n "$CLI" ]; then
  HOT="$("$CLI" stats "$CACHE" 2>/dev/null | grep -E '^hot (hits|misses|fills|processes|items) ' |
         awk '{printf "%s%s %s", (NR>1?", ":""), $2, $3} END {print ""}')" || true
fi
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
# Steal time (the hypervisor ran something else on our vCPUs) over the run.
STEAL="$(printf '%s\n%s\n' "$STAT_START" "$(head -1 /proc/stat)" | awk '
  { t = 0; for (i = 2; i <= NF; i++) t += $i; tot[NR] = t; st[NR] = $9 }
  END { d = tot[2] - tot[1]; if (d > 0) printf "%.1f%%", 100 * (st[2] - st[1]) / d; else print "?" }')"

echo "nginx_bench.sh: $DATE; $(nproc) cpus ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); load average $LOAD_START at the start, $LOAD_END at the end"
echo "module $MODULE; steal time during the run: $STEAL of all CPU time"
echo "$REPORT"
if [ -n "$HOT" ]; then
  echo "hot tier (tiercache stats, summed over the workers): $HOT"
fi
if grep -E '\[(alert|emerg|crit|error)\]|lua entry thread aborted|runtime error' "$PREFIX/logs/error.log" >&2; then
  echo "errors in nginx's error log (above)" >&2
  exit 1
fi
case "$REPORT" in *UNEXPECTED*) exit 1 ;; esac
exit 0
