-- bench.lua - ns/op of the tiercache Lua module (issue 4), outside nginx.
--
-- Runs under lua5.4 and LuaJIT; the module comes from LUA_CPATH:
--
--   LUA_CPATH='/tmp/build-bench/lua/lua54/?.so'  lua5.4 bench/lua/bench.lua
--   LUA_CPATH='/tmp/build-bench/lua/luajit/?.so' luajit bench/lua/bench.lua
--
-- Workload (as the shared-dict figures of openresty-notes.md section 6):
-- 1000 distinct keys "key:N", 100-byte string values (valid UTF-8, so
-- stored as TEXT), visited in one fixed shuffled order that is the same
-- under both interpreters. Each cache lives in a fresh temp directory with
-- the default hot tier (64 MiB). Rows:
--   get hit / get miss / set (overwrite, same size): tiercache.Cache
--   get hit: tiercache.FanoutCache (8 shards), tiercache.DjangoCache
--   floors: the loop alone, a plain Lua table get, a C call that does
--   nothing (tiercache.version()), a C call that returns a new 100-byte
--   string (string.sub of a 101-byte string).
-- Every phase first runs an untimed warm-up. Runs are interleaved (run 1 of
-- every row, then run 2, ...); the table shows medians over --runs.
-- Wall time is CLOCK_MONOTONIC (through the FFI) under LuaJIT and
-- tiercache.now() (CLOCK_REALTIME, the only sub-second wall clock plain Lua
-- 5.4 has) under lua5.4; cpu time is os.clock() (process CPU time).
-- The garbage collector runs as usual: allocating the returned strings is
-- part of what a Lua user pays for a get.
--
-- Options: --ops N (gets per phase, default 1000000), --miss-ops N (default
-- ops/10: a miss reads SQLite), --set-ops N (default 2000: sets commit),
-- --warmup N (default 100000, capped at a tenth of the phase), --runs R
-- (default 5), --cli PATH (the tiercache CLI, for the hot-tier check and
-- `tiercache drop`; default $TIERCACHE_CLI or /tmp/build-bench/tools/tiercache),
-- --dir D (where the temp dir goes, default /tmp), --quick (smoke: small n).
-- The temp dir and the hot-tier segments are removed at exit.

local NK, VLEN = 1000, 100

-- ---- options ---------------------------------------------------------
local opt = {ops = 1000000, runs = 5, warmup = 100000, set_ops = 2000,
             dir = "/tmp", cli = os.getenv("TIERCACHE_CLI")
                                 or "/tmp/build-bench/tools/tiercache"}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    local function val()
      i = i + 1
      if arg[i] == nil then error(a .. ": missing value") end
      return arg[i]
    end
    if a == "--ops" then opt.ops = tonumber(val())
    elseif a == "--miss-ops" then opt.miss_ops = tonumber(val())
    elseif a == "--set-ops" then opt.set_ops = tonumber(val())
    elseif a == "--warmup" then opt.warmup = tonumber(val())
    elseif a == "--runs" then opt.runs = tonumber(val())
    elseif a == "--cli" then opt.cli = val()
    elseif a == "--dir" then opt.dir = val()
    elseif a == "--quick" then
      opt.ops, opt.miss_ops, opt.set_ops, opt.warmup, opt.runs =
        20000, 2000, 100, 2000, 3
    elseif a == "--help" or a == "-h" then
      print("usage: bench.lua [--ops N] [--miss-ops N] [--set-ops N] " ..
            "[--warmup N] [--runs R] [--cli PATH] [--dir D] [--quick]")
      os.exit(0)
    else
      io.stderr:write("bench.lua: unknown option ", a, "\n")
      os.exit(2)
    end
    i = i + 1
  end
  opt.miss_ops = opt.miss_ops or math.max(1, math.floor(opt.ops / 10))
  for _, k in ipairs {"ops", "miss_ops", "set_ops", "warmup", "runs"} do
    if not opt[k] or opt[k] < 1 then
      if not (k == "warmup" and opt[k] == 0) then
        io.stderr:write("bench.lua: --", k:gsub("_", "-"), " must be >= 1\n")
        os.exit(2)
      end
    end
  end
end

local tiercache = require "tiercache"

-- ---- clocks ------------------------------------------------------------
local IS_JIT = type(jit) == "table"
local wall, wall_name
if IS_JIT then
  local ffi = require "ffi"
  pcall(ffi.cdef, [[
    typedef struct { long tv_sec; long tv_nsec; } tcb_timespec;
    int tcb_clock_gettime(int clk, tcb_timespec *ts) asm("clock_gettime");
  ]])
  local ts = ffi.new("tcb_timespec")
  wall = function()
    ffi.C.tcb_clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
  end
  wall_name = "CLOCK_MONOTONIC (ffi)"
else
  wall = tiercache.now
  wall_name = "tiercache.now() (CLOCK_REALTIME)"
end
local cpu = os.clock

-- ---- helpers -----------------------------------------------------------
local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function run_cmd(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = p:read("*a")
  p:close()
  return out
end

local function file_exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

local have_cli = file_exists(opt.cli)

local function median(t)
  local s = {}
  for i = 1, #t do s[i] = t[i] end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

local function fmt_int(x)
  local s = string.format("%.0f", x)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

-- ---- data ----------------------------------------------------------------
-- One fixed shuffled order of 1..NK, the same under both interpreters (a
-- 32-bit LCG; math.random differs between them).
local keys, miss_keys, order = {}, {}, {}
for i = 1, NK do
  keys[i] = "key:" .. i
  miss_keys[i] = "miss:" .. i
end
do
  local perm = {}
  for i = 1, NK do perm[i] = i end
  local s = 12345
  for i = NK, 2, -1 do
    s = (s * 1103515245 + 12345) % 2147483648
    local j = s % i + 1
    perm[i], perm[j] = perm[j], perm[i]
  end
  for i = 1, NK do
    order[i] = keys[perm[i]]
    miss_keys[i] = miss_keys[perm[i]]
  end
end
local function value_for(i, alt)
  local head = string.format("%s%06d:", alt and "w" or "v", i)
  return head .. string.rep("x", VLEN - #head)
end
local values = {}
for i = 1, NK do values["key:" .. i] = value_for(i, false) end

-- ---- directories -------------------------------------------------------
local TMP = run_cmd("mktemp -d " .. sh_quote(opt.dir .. "/tiercache-luabench.XXXXXX"))
TMP = TMP:gsub("%s+$", "")
assert(TMP ~= "", "mktemp -d failed")

local dirs = {}
local caches = {}

local function cleanup()
  for _, c in pairs(caches) do pcall(c.close, c) end
  for _, d in ipairs(dirs) do
    if have_cli then
      os.execute(sh_quote(opt.cli) .. " drop " .. sh_quote(d) .. " >/dev/null 2>&1")
    end
    -- Whatever is left (no CLI, or drop failed): the segment by name.
    local st = run_cmd("stat -c '%d %i' " .. sh_quote(d))
    local dev, ino = st:match("(%d+) (%d+)")
    if dev then
      local seg = string.format("/dev/shm/tiercache-%x-%x",
                                tonumber(dev), tonumber(ino))
      os.remove(seg)
      os.remove(seg .. ".lock")
    end
  end
  os.execute("rm -rf " .. sh_quote(TMP))
end

local function newdir(name)
  local d = TMP .. "/" .. name
  dirs[#dirs + 1] = d
  return d
end

-- ---- phases ---------------------------------------------------------------
-- Each phase returns the number of "unexpected" results (a miss in a hit
-- phase, a hit in a miss phase, false from a set), so that no result is
-- dead and every row is checked.

local function ph_loop(_, n)
  local bad, j = 0, 1
  for _ = 1, n do
    local k = order[j]
    if k == nil then bad = bad + 1 end
    j = j + 1
    if j > NK then j = 1 end
  end
  return bad
end

local function ph_table(t, n)
  local bad, j = 0, 1
  for _ = 1, n do
    local v = t[order[j]]
    if v == nil then bad = bad + 1 end
    j = j + 1
    if j > NK then j = 1 end
  end
  return bad
end

local function ph_cnoop(_, n)
  local bad, j = 0, 1
  for _ = 1, n do
    local k = order[j]
    local v = tiercache.version()
    if v == k then bad = bad + 1 end
    j = j + 1
    if j > NK then j = 1 end
  end
  return bad
end

local S101 = "y" .. string.rep("x", VLEN)
local function ph_cstring(_, n)
  local bad, j, sub = 0, 1, string.sub
  for _ = 1, n do
    local k = order[j]
    local v = sub(S101, 2)
    if v == k then bad = bad + 1 end
    j = j + 1
    if j > NK then j = 1 end
  end
  return bad
end

local function ph_get_hit(c, n)
  local bad, j = 0, 1
  for _ = 1, n do
    local v = c:get(order[j])
    if v == nil then bad = bad + 1 end
    j = j + 1
    if j > NK then j = 1 end
  end
  return bad
end

local function ph_get_miss(c, n)
  local bad, j = 0, 1
  for _ = 1, n do
    local v = c:get(miss_keys[j])
    if v ~= nil then bad = bad + 1 end
    j = j + 1
    if j > NK then j = 1 end
  end
  return bad
end

-- Overwrite with a value of the same size; alternate between two values
-- so that every set changes the row.
local alt_values = {}
for i = 1, NK do alt_values["key:" .. i] = value_for(i, true) end
local set_flip = false
local function ph_set(c, n)
  local bad, j = 0, 1
  set_flip = not set_flip
  local vals = set_flip and alt_values or values
  for _ = 1, n do
    local k = order[j]
    if c:set(k, vals[k]) ~= true then bad = bad + 1 end
    j = j + 1
    if j > NK then j = 1 end
  end
  return bad
end

-- ---- setup ---------------------------------------------------------------
local function fill(c)
  for i = 1, NK do
    local k = "key:" .. i
    assert(c:set(k, values[k]) == true, "fill: set failed")
  end
end

io.stderr:write(string.format("bench.lua: %s, tiercache %s, temp dir %s\n",
  IS_JIT and jit.version or _VERSION, tiercache.version(), TMP))

local ok, err = pcall(function()
  caches.cache = tiercache.Cache(newdir("cache"))
  caches.fanout = tiercache.FanoutCache(newdir("fanout"))
  caches.django = tiercache.DjangoCache(newdir("django"))
  fill(caches.cache)
  fill(caches.fanout)
  fill(caches.django) -- Django's TIMEOUT: these expire in 300 s
end)
if not ok then
  cleanup()
  error(err, 0)
end

local plain_table = {}
for k, v in pairs(values) do plain_table[k] = v end

local rows = {
  {name = "get hit", target = "Cache", f = ph_get_hit, obj = "cache", n = opt.ops,
   goal = (not IS_JIT) and 150 or nil}, -- the issue's target is for Lua 5.4
  {name = "get miss", target = "Cache", f = ph_get_miss, obj = "cache", n = opt.miss_ops},
  {name = "set (overwrite, 100 B)", target = "Cache", f = ph_set, obj = "cache", n = opt.set_ops},
  {name = "get hit", target = "FanoutCache", f = ph_get_hit, obj = "fanout", n = opt.ops},
  {name = "get hit", target = "DjangoCache", f = ph_get_hit, obj = "django", n = opt.ops},
  {name = "floor: empty loop", target = "-", f = ph_loop, n = opt.ops},
  {name = "floor: Lua table get", target = "table", f = ph_table, obj = "table", n = opt.ops},
  {name = "floor: C call, no-op", target = "version()", f = ph_cnoop, n = opt.ops},
}
-- Under LuaJIT string.sub is compiled into the trace (no C-API call, the
-- string is not even built), so it is no floor there.
if not IS_JIT then
  rows[#rows + 1] = {name = "floor: C call, 100-B string", target = "string.sub",
                     f = ph_cstring, n = opt.ops}
end
for _, r in ipairs(rows) do r.wall, r.cpu, r.bad = {}, {}, 0 end

local function object(r)
  if r.obj == "table" then return plain_table end
  return r.obj and caches[r.obj] or nil
end

local counts = {cache = {hit = 0, miss = 0}, fanout = {hit = 0, miss = 0},
                django = {hit = 0, miss = 0}}

-- /proc/stat's first line: total jiffies and steal (the hypervisor ran
-- something else on our vCPUs).
local function cpu_stat()
  local f = io.open("/proc/stat")
  if not f then return nil end
  local l = f:read("*l") or ""
  f:close()
  local tot, i, steal = 0, 0, 0
  for x in l:gmatch("%d+") do
    i = i + 1
    tot = tot + tonumber(x)
    if i == 8 then steal = tonumber(x) end
  end
  return tot, steal
end
local stat0_tot, stat0_steal = cpu_stat()
local load0

local function loadavg()
  local f = io.open("/proc/loadavg")
  if not f then return "?" end
  local s = f:read("*l") or "?"
  f:close()
  return s:match("^(%S+ %S+ %S+)") or s
end
load0 = loadavg()

local ok2, err2 = pcall(function()
  for run = 1, opt.runs do
    io.stderr:write(string.format("run %d/%d\n", run, opt.runs))
    for _, r in ipairs(rows) do
      local o = object(r)
      local w = math.min(opt.warmup, math.floor(r.n / 10))
      if w > 0 then r.f(o, w) end
      local c0, w0 = cpu(), wall()
      local bad = r.f(o, r.n)
      local w1, c1 = wall(), cpu()
      r.wall[run] = (w1 - w0) * 1e9 / r.n
      r.cpu[run] = (c1 - c0) * 1e9 / r.n
      r.bad = r.bad + bad
      if counts[r.obj] then
        if r.f == ph_get_hit then
          counts[r.obj].hit = counts[r.obj].hit + r.n + w
        elseif r.f == ph_get_miss then
          counts[r.obj].miss = counts[r.obj].miss + r.n + w
        end
      end
    end
  end
end)

-- The hot tier's own counters (summed over the processes that used each
-- segment, this one included), read with the CLI before the caches close.
local hot = {}
if ok2 and have_cli then
  for name, d in pairs {cache = dirs[1], fanout = dirs[2], django = dirs[3]} do
    local js = run_cmd(sh_quote(opt.cli) .. " stats " .. sh_quote(d) .. " --json")
    local h = js:match('"hot": (%b{})')
    if h then
      hot[name] = {hits = tonumber(h:match('"hits": (%d+)')),
                   misses = tonumber(h:match('"misses": (%d+)')),
                   fills = tonumber(h:match('"fills": (%d+)'))}
    end
  end
end
cleanup()
if not ok2 then error(err2, 0) end

-- ---- report --------------------------------------------------------------
local steal = "?"
do
  local t1, s1 = cpu_stat()
  if t1 and stat0_tot and t1 > stat0_tot then
    steal = string.format("%.1f%%", 100 * (s1 - stat0_steal) / (t1 - stat0_tot))
  end
end

print(string.format("tiercache Lua module %s under %s; %d keys \"key:N\", %d-byte string values",
  tiercache.version(), IS_JIT and (jit.version .. (jit.status() and " (JIT on)" or " (JIT off)")) or _VERSION,
  NK, VLEN))
print(string.format("fresh temp dirs, default hot tier (64 MiB); wall = %s, cpu = os.clock()", wall_name))
print(string.format("median of %d runs (interleaved); warm-up min(%d, n/10) per phase",
  opt.runs, opt.warmup))
print(string.format("load average %s at the start, %s at the end; steal time during the run %s of all CPU time",
  load0, loadavg(), steal))
print(string.format("%-28s %-12s %9s %10s %12s %10s %5s  %s",
  "operation", "on", "n", "ns/op", "ops/s", "cpu ns/op", "runs", "goal"))
for _, r in ipairs(rows) do
  local mw, mc = median(r.wall), median(r.cpu)
  local goal = ""
  if r.goal then
    goal = string.format("<=%d ns %s", r.goal, mw <= r.goal and "MET" or "MISSED")
  end
  local check = r.bad == 0 and "" or string.format("  (%d unexpected results!)", r.bad)
  local line = string.format("%-28s %-12s %9d %10.1f %12s %10.1f %5d  %s%s",
    r.name, r.target, r.n, mw, fmt_int(1e9 / mw), mc, opt.runs, goal, check)
  print((line:gsub("%s+$", "")))
end
if have_cli then
  for _, name in ipairs {"cache", "fanout", "django"} do
    local h, c = hot[name], counts[name]
    if h then
      print(string.format("hot tier %-7s: %d hits, %d misses, %d fills (gets issued for hits %d, for misses %d)",
        name, h.hits or -1, h.misses or -1, h.fills or -1, c.hit, c.miss))
    end
  end
else
  print("hot-tier counters not read (no CLI at " .. opt.cli .. ")")
end
local bad = 0
for _, r in ipairs(rows) do bad = bad + r.bad end
if bad > 0 then os.exit(1) end
