#!/usr/bin/env bash
# test_openresty.sh - tiercache inside real nginx (Debian's
# libnginx-mod-http-lua), 2 workers on 127.0.0.1.
#
#   1. both workers open one FanoutCache after fork (init_worker_by_lua);
#      each writes its own key from a timer and waits to read the other's,
#      so each proves it sees the other's writes (curl cannot pick a worker);
#   2. a value written through HTTP is read back;
#   3. the first worker to open the cache started one tiercached for it
#      (worker = "auto"), running as the worker user;
#   4. nginx is stopped and started again: the data is still there, and
#      still one tiercached.
# Uses examples/openresty/nginx.conf with its placeholders filled in.
# Usage: test_openresty.sh MODULE_SO TIERCACHED
#   MODULE_SO   the LuaJIT build of tiercache.so; TIERCACHED the worker
# With CI=true a missing nginx or lua module fails instead of skipping.
set -uo pipefail

MODULE_SO="$1"
TIERCACHED_BIN="${2:-}"
HERE="$(cd "$(dirname "$0")" && pwd)"
CONF_TEMPLATE="$HERE/../../examples/openresty/nginx.conf"
skip() {
  if [ "${CI:-}" = "true" ]; then
    echo "FAIL: $1 (CI=true: a missing dependency fails the suite)"
    exit 1
  fi
  echo "SKIP: $1"
  exit 77
}
NGINX="$(command -v nginx || true)"
[ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
[ -n "$NGINX" ] || skip "nginx not installed"
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] ||
  skip "libnginx-mod-http-lua not installed"
command -v curl >/dev/null || skip "curl not installed"

PREFIX="$(mktemp -d /tmp/tiercache-openresty.XXXXXX)"
chmod 755 "$PREFIX"
mkdir -p "$PREFIX"/{conf,logs,tmp,lib,data}
cp "$MODULE_SO" "$PREFIX/lib/tiercache.so"
[ -n "$TIERCACHED_BIN" ] || { echo "usage: $0 MODULE_SO TIERCACHED"; exit 2; }
cp "$TIERCACHED_BIN" "$PREFIX/lib/tiercached"
chmod 755 "$PREFIX/lib" "$PREFIX/lib/tiercache.so" "$PREFIX/lib/tiercached"
CACHE="$PREFIX/data/cache"
USER_NAME="$(id -un) $(id -gn)"
if [ "$(id -u)" -eq 0 ]; then
  # Workers drop to nobody, as in production: the cache directory
  # belongs to the worker user.
  USER_NAME="nobody nogroup"
  chown nobody "$PREFIX/data"
fi
# A free port: ask the kernel, then hand it to nginx.
PORT="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@CPATH@|$PREFIX/lib|g" \
    -e "s|@CACHE@|$CACHE|g" -e "s|@PORT@|$PORT|g" -e "s|@USER@|$USER_NAME|g" \
    -e "s|@TIERCACHED@|$PREFIX/lib/tiercached|g" \
    "$CONF_TEMPLATE" >"$PREFIX/conf/nginx.conf"

fail=0
check() { # check NAME CONDITION-RESULT
  if [ "$2" = ok ]; then echo "ok - $1"; else echo "not ok - $1: $2"; fail=1; fi
}
start() {
  "$NGINX" -p "$PREFIX" -c conf/nginx.conf 2>>"$PREFIX/logs/start.log" ||
    { echo "nginx failed to start"; cat "$PREFIX/logs/start.log" "$PREFIX/logs/error.log"; return 1; }
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/pid" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nginx does not answer"; return 1
}
stop() {
  local pid
  pid="$(cat "$PREFIX/logs/nginx.pid" 2>/dev/null)" || return 0
  kill -QUIT "$pid" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
}
# tiercached processes working on this test's cache.
workers_of_cache() {
  local p
  for p in $(pgrep -x tiercached); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$CACHE" && echo "$p"
  done
}
cleanup() {
  stop
  # The worker is detached from nginx on purpose; stop it here, and wait
  # for it before its directory goes.
  local w
  w="$(workers_of_cache)"
  for p in $w; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 100); do
    [ -z "$(workers_of_cache)" ] && break
    sleep 0.1
  done
  for p in $(workers_of_cache); do kill -KILL "$p" 2>/dev/null; done
  # The hot-tier segment of the test cache goes with it.
  [ -n "$SEGMENT" ] && rm -f "$SEGMENT" "$SEGMENT.lock"
  rm -rf "$PREFIX"
}
trap cleanup EXIT

# The hot tier's segment for the cache directory (shm/segment.c names it
# by the directory's device and inode, in hex).
SEGMENT=""
segment_path() {
  local dev ino
  read -r dev ino < <(stat -c '%d %i' "$CACHE" 2>/dev/null) || return 1
  printf '%s/tiercache-%x-%x' "${TIERCACHE_SHM_DIR:-/dev/shm}" "$dev" "$ino"
}

get() { curl -fsS "http://127.0.0.1:$PORT/get?key=$1" 2>/dev/null; }

start || exit 1

# 1. each worker saw the other's key, and the pids are the two workers'
seen0="" seen1=""
for _ in $(seq 200); do
  seen0="$(get seen:0)"; seen1="$(get seen:1)"
  [ -n "$seen0" ] && [ -n "$seen1" ] && break
  sleep 0.1
done
w0="$(get worker:0)"; w1="$(get worker:1)"
workers="$(pgrep -P "$(cat "$PREFIX/logs/nginx.pid")" | sort | tr '\n' ' ')"
check "worker 0 read worker 1's write" "$([ -n "$seen0" ] && [ "$seen0" = "$w1" ] && echo ok || echo "seen:0='$seen0' worker:1='$w1'")"
check "worker 1 read worker 0's write" "$([ -n "$seen1" ] && [ "$seen1" = "$w0" ] && echo ok || echo "seen:1='$seen1' worker:0='$w0'")"
SEGMENT="$(segment_path)"
check "the workers share a hot-tier segment" "$([ -n "$SEGMENT" ] && [ -f "$SEGMENT" ] && echo ok || echo "no segment '$SEGMENT'")"
check "the two writers are the two live workers" "$([ "$w0" != "$w1" ] && [[ " $workers" == *" $w0 "* ]] && [[ " $workers" == *" $w1 "* ]] && echo ok || echo "workers '$workers' w0=$w0 w1=$w1")"

# 2. a write through HTTP is read back (from whichever worker answers)
set_ok="$(curl -fsS "http://127.0.0.1:$PORT/set?key=persist&value=kept")"
check "set through nginx" "$([ "$set_ok" = true ] && echo ok || echo "got '$set_ok'")"
for _ in 1 2 3 4; do
  v="$(get persist)"
  check "get through nginx" "$([ "$v" = kept ] && echo ok || echo "got '$v'")"
done

# 2b. a cross-worker Lock: 8 requests at once each hold it 0.2 s. Waiting
# must yield (ngx.sleep): a wait that blocked its worker would also block
# the holder's ngx.sleep on that worker, and the requests would time out.
lock_out="$PREFIX/tmp/locked"
mkdir -p "$lock_out"
for i in $(seq 8); do
  curl -fsS --max-time 20 "http://127.0.0.1:$PORT/locked?hold=0.2" >"$lock_out/$i" 2>&1 &
done
wait
got="$(cat "$lock_out"/* | sort -n | tr '\n' ' ')"
check "8 requests under one Lock ran one at a time" "$([ "$got" = "1 2 3 4 5 6 7 8 " ] && echo ok || echo "counters '$got'")"

# 3. worker = "auto": one tiercached for the cache, as the worker user
tc_pids=""
for _ in $(seq 100); do
  tc_pids="$(workers_of_cache | tr '\n' ' ')"
  [ -n "$tc_pids" ] && break
  sleep 0.1
done
check "worker = auto started one tiercached" "$(set -- $tc_pids; [ $# -eq 1 ] && echo ok || echo "tiercached pids: '$tc_pids'")"
if [ -n "$tc_pids" ]; then
  tc_user="$(ps -o user= -p $tc_pids | head -1 | tr -d ' ')"
  check "tiercached runs as the worker user" "$([ "$tc_user" = "${USER_NAME%% *}" ] && echo ok || echo "user '$tc_user'")"
fi

# 4. restart: the data survives, and no second worker starts
stop
start || exit 1
v="$(get persist)"
check "value survives an nginx restart" "$([ "$v" = kept ] && echo ok || echo "got '$v'")"
sleep 0.5
after="$(workers_of_cache | tr '\n' ' ')"
check "still one tiercached after the restart" "$([ "$after" = "$tc_pids" ] && echo ok || echo "before '$tc_pids' after '$after'")"
check "the cache is python-diskcache's format" "$(/usr/bin/python3 -c "
import diskcache, sys
c = diskcache.FanoutCache('$CACHE')
print('ok' if c.get('persist') == 'kept' else 'python read %r' % c.get('persist'))" 2>&1 | tail -1)"

if grep -E '\[(alert|emerg|crit)\]|lua entry thread aborted|runtime error' "$PREFIX/logs/error.log"; then
  check "no errors in nginx's error log" "see above"
fi
exit $fail
