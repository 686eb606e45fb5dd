-- nginx_worker.lua - the in-worker half of bench/lua/nginx_bench.sh.
--
-- Loaded as module "tcbench" in init_by_lua (code only: no cache is opened
-- before fork). Each worker opens the tiercache cache in init_worker_by_lua
-- and starts a poller timer. The controller (an HTTP handler in either
-- worker, driven by nginx_bench.sh) posts a job under a new generation
-- number in the control dict; the pollers of the workers taking part run
-- the warm-up, meet at a start barrier (a counter in the control dict, spun
-- on without yielding), then run the timed loop inside the worker and
-- store start/end times. The handler sleeps (yields) until every worker is
-- done, so the worker that serves it can still run its own loop.
--
-- Workload as openresty-notes.md section 6: 1000 keys "key:N", 100-byte
-- string values, the same keys and values in lua_shared_dict and in
-- tiercache; a fixed shuffled key order (the one bench/lua/bench.lua uses).

local tiercache = require "tiercache"
local ffi = require "ffi"

pcall(ffi.cdef, [[
  typedef struct { long tv_sec; long tv_nsec; } tcb_timespec;
  int tcb_clock_gettime(int clk, tcb_timespec *ts) asm("clock_gettime");
]])
local ts = ffi.new("tcb_timespec")
local function mono() -- CLOCK_MONOTONIC: one clock for every process
  ffi.C.tcb_clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local M = {}
local cfg = {}
local cache -- this worker's tiercache handle
local engines = {} -- name -> object with :get and :set, per worker

local NK, VLEN = 1000, 100

-- ---- data (same construction as bench.lua) ---------------------------------
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
local values, alt_values = {}, {}
for i = 1, NK do
  values["key:" .. i] = value_for(i, false)
  alt_values["key:" .. i] = value_for(i, true)
end

-- ---- phases: the same Lua for both engines ---------------------------------
-- Each returns the number of unexpected results (a miss in a hit phase, a
-- hit in a miss phase, a failed set), so no result is dead.
local function ph_get_hit(obj, n)
  local bad, j = 0, 1
  for _ = 1, n do
    local v = obj:get(order[j])
    if v == nil then bad = bad + 1 end
    j = j + 1
    if j > NK then j = 1 end
  end
  return bad
end

local function ph_get_miss(obj, n)
  local bad, j = 0, 1
  for _ = 1, n do
    local v = obj:get(miss_keys[j])
    if v ~= nil then bad = bad + 1 end
    j = j + 1
    if j > NK then j = 1 end
  end
  return bad
end

local set_flip = false
local function ph_set(obj, n) -- overwrite, same size (100 B)
  local bad, j = 0, 1
  set_flip = not set_flip
  local vals = set_flip and alt_values or values
  for _ = 1, n do
    local k = order[j]
    local ok = obj:set(k, vals[k])
    if not ok then bad = bad + 1 end
    j = j + 1
    if j > NK then j = 1 end
  end
  return bad
end

-- ---- cases ------------------------------------------------------------------
local function n_main() return cfg.n end
local function n_tc_miss() return cfg.miss_n_tc end
local function n_tc_set() return cfg.set_n_tc end
-- The control is ~15x faster than a tiercache get: 16x the ops keeps its
-- phases about as long, so that it is as exposed to the VM's noise.
local function n_control() return cfg.n * 16 end

local CASES = {
  {op = "get hit", f = ph_get_hit, engine = "shdict", workers = 1, n = n_main},
  {op = "get hit", f = ph_get_hit, engine = "tiercache", workers = 1, n = n_main},
  {op = "get hit", f = ph_get_hit, engine = "shdict", workers = 2, n = n_main},
  {op = "get hit", f = ph_get_hit, engine = "tiercache", workers = 2, n = n_main},
  -- Control: resty.lrucache, per worker, no shared state (as in the notes).
  {op = "get hit", f = ph_get_hit, engine = "lrucache", workers = 1, n = n_control},
  {op = "get hit", f = ph_get_hit, engine = "lrucache", workers = 2, n = n_control},
  {op = "get miss", f = ph_get_miss, engine = "shdict", workers = 1, n = n_main},
  {op = "get miss", f = ph_get_miss, engine = "tiercache", workers = 1, n = n_tc_miss},
  {op = "set (overwrite)", f = ph_set, engine = "shdict", workers = 1, n = n_main},
  {op = "set (overwrite)", f = ph_set, engine = "tiercache", workers = 1, n = n_tc_set},
}

local function warm_n(n) return math.min(cfg.warm, math.floor(n / 10)) end

function M.configure(t) cfg = t end

local function ctl() return ngx.shared.tcb_ctl end

local function open_cache()
  local opts = {timeout = 0.010}
  if cfg.layout == "cache" then
    return tiercache.Cache(cfg.dir, opts)
  end
  return tiercache.FanoutCache(cfg.dir, opts)
end

-- ---- worker side ----------------------------------------------------------------
local function run_job(id, g)
  local c = CASES[tonumber(ctl():get("job:" .. g))]
  if not c or id >= c.workers then return end
  local ok, err = pcall(function()
    local obj = engines[c.engine]
    local n = c.n()
    local w = warm_n(n)
    if w > 0 then c.f(obj, w) end
    local d = ctl()
    d:incr("ready:" .. g, 1, 0)
    local deadline = mono() + 30
    while (d:get("ready:" .. g) or 0) < c.workers do -- spin: no yield
      if mono() > deadline then
        error("start barrier: the other worker did not arrive in 30 s")
      end
    end
    local c0, t0 = os.clock(), mono()
    local bad = c.f(obj, n)
    local t1, c1 = mono(), os.clock()
    d:set(string.format("res:%d:%d", g, id),
          string.format("%.9f %.9f %.6f %.6f %d %d %d", t0, t1, c0, c1, n, bad,
                        ngx.worker.pid()))
  end)
  if not ok then
    ctl():set("err:" .. g, "worker " .. id .. ": " .. tostring(err))
  end
  ctl():incr("done:" .. g, 1, 0)
end

function M.init_worker()
  cache = open_cache()
  engines.tiercache = cache
  engines.shdict = ngx.shared.tcb_bench
  local lru = require("resty.lrucache").new(2 * NK)
  for k, v in pairs(values) do lru:set(k, v) end
  engines.lrucache = lru
  local id = ngx.worker.id()
  local last = ctl():get("gen") or 0
  local function poll(premature)
    if premature then return end
    while not ngx.worker.exiting() do
      local g = ctl():get("gen") or 0
      if g > last then
        last = g
        run_job(id, g)
      end
      ngx.sleep(0.002)
    end
  end
  local ok, err = ngx.timer.at(0, poll)
  if not ok then
    ngx.log(ngx.ERR, "tcbench: cannot start the poller: ", err)
  end
end

-- ---- controller side (HTTP handlers) ------------------------------------------
-- GET /fill: the same keys and values into both engines.
function M.fill()
  local dict = ngx.shared.tcb_bench
  for i = 1, NK do
    local k = "key:" .. i
    local ok, err = dict:set(k, values[k])
    if not ok then error("shdict fill: " .. tostring(err)) end
    if cache:set(k, values[k], false, {retry = true}) ~= true then
      error("tiercache fill: set failed")
    end
  end
  ngx.say("filled ", NK, " keys; worker ", ngx.worker.id(), " pid ", ngx.worker.pid())
end

-- GET /plan: one "run case" line per step. Cases run in this order within
-- a run; on even runs each shdict/tiercache pair runs tiercache first.
function M.plan()
  for r = 1, cfg.runs do
    for i = 1, #CASES, 2 do
      local a, b = i, i + 1
      if r % 2 == 0 then a, b = b, a end
      ngx.say(r, " ", a)
      ngx.say(r, " ", b)
    end
  end
end

-- GET /run?run=R&case=C: post the job, wait for the workers, keep the
-- result under "R:<run>:<case>:<worker>".
function M.run()
  local r = tonumber(ngx.var.arg_run)
  local ci = tonumber(ngx.var.arg_case)
  local c = CASES[ci]
  if not c or not r then return ngx.exit(400) end
  local d = ctl()
  local g = (d:get("gen") or 0) + 1
  d:set("job:" .. g, ci)
  d:set("gen", g)
  local deadline = mono() + 600
  while (d:get("done:" .. g) or 0) < c.workers do
    if mono() > deadline then
      ngx.status = 500
      ngx.say("timeout waiting for the workers")
      return ngx.exit(500)
    end
    ngx.sleep(0.005)
  end
  local err = d:get("err:" .. g)
  if err then
    ngx.status = 500
    ngx.say("error: ", err)
    return ngx.exit(500)
  end
  local parts = {}
  for id = 0, c.workers - 1 do
    local res = d:get(string.format("res:%d:%d", g, id))
    d:set(string.format("R:%d:%d:%d", r, ci, id), res)
    local t0, t1, _, _, n = res:match("^(%S+) (%S+) (%S+) (%S+) (%S+)")
    parts[#parts + 1] = string.format("w%d %.1f ns/op", id,
                                      (tonumber(t1) - tonumber(t0)) * 1e9 / tonumber(n))
  end
  ngx.say(string.format("run %d: %s, %s, %d worker(s): %s", r, c.op, c.engine,
                        c.workers, table.concat(parts, ", ")))
end

-- ---- report ---------------------------------------------------------------------
local function median(t)
  local s = {}
  for i = 1, #t do s[i] = t[i] end
  table.sort(s)
  local n = #s
  if n == 0 then return 0 / 0 end
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

local function minmax(t)
  local lo, hi = math.huge, -math.huge
  for _, x in ipairs(t) do
    if x < lo then lo = x end
    if x > hi then hi = x end
  end
  return lo, hi
end

local function fmt_int(x)
  if x ~= x then return "nan" end
  local s = string.format("%.0f", x)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

-- One run of one case: per-worker wall and cpu ns/op, aggregate ops/s over
-- the span (first start to last end), overlap of the busy intervals.
local function load_run(r, ci)
  local c = CASES[ci]
  local d = ctl()
  local ws, cs = {}, {}
  local first, last, lstart, fend = math.huge, -math.huge, -math.huge, math.huge
  local total, bad = 0, 0
  for id = 0, c.workers - 1 do
    local res = d:get(string.format("R:%d:%d:%d", r, ci, id))
    if not res then return nil end
    local t0, t1, c0, c1, n, b = res:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)")
    t0, t1, c0, c1, n, b = tonumber(t0), tonumber(t1), tonumber(c0),
                           tonumber(c1), tonumber(n), tonumber(b)
    ws[id] = (t1 - t0) * 1e9 / n
    cs[id] = (c1 - c0) * 1e9 / n
    first = math.min(first, t0)
    last = math.max(last, t1)
    lstart = math.max(lstart, t0)
    fend = math.min(fend, t1)
    total = total + n
    bad = bad + b
  end
  local cpu_ops = 0 -- sum over workers of ops per second of own CPU time
  for id = 0, c.workers - 1 do cpu_ops = cpu_ops + 1e9 / cs[id] end
  return {wall = ws, cpu = cs, agg = total / (last - first), cpu_ops = cpu_ops,
          overlap = math.max(0, fend - lstart) / (last - first), bad = bad}
end

function M.report()
  local out = {}
  local function p(...) out[#out + 1] = string.format(...) end
  local layout = cfg.layout == "cache" and "Cache" or "FanoutCache (8 shards)"
  p("tiercache %s %s, timeout 0.010, default hot tier (64 MiB), opened per worker in init_worker_by_lua",
    tiercache.version(), layout)
  p("vs lua_shared_dict 64m, in the same nginx %s (ngx_lua %s, %s), %d workers",
    ngx.config.nginx_version, ngx.config.ngx_lua_version, jit.version, ngx.worker.count())
  p("%d keys \"key:N\", %d-byte string values, the same in both; loops run inside the workers (ngx.timer),",
    NK, VLEN)
  p("warm-up min(%d, n/10) per worker before a start barrier; wall = CLOCK_MONOTONIC, cpu = os.clock();",
    cfg.warm)
  p("median of %d runs; agg ops/s = all ops / (last end - first start); overlap = share of that span",
    cfg.runs)
  p("in which every worker was busy")
  p("")
  p("%-16s %-10s %7s %10s %10s %10s %10s %13s %8s", "operation", "engine", "workers", "n",
    "ns/op w0", "ns/op w1", "cpu ns/op", "agg ops/s", "overlap")
  local per = {} -- per[ci][run] = that run's record, or nil
  local errors = 0
  for ci, c in ipairs(CASES) do
    per[ci] = {}
    local recs = {}
    for r = 1, cfg.runs do
      per[ci][r] = load_run(r, ci) -- nil if that run is missing
      if per[ci][r] then recs[#recs + 1] = per[ci][r] end
    end
    local w0, w1, cpu, agg, ov = {}, {}, {}, {}, {}
    local bad = 0
    for _, rec in ipairs(recs) do
      w0[#w0 + 1] = rec.wall[0]
      if rec.wall[1] then w1[#w1 + 1] = rec.wall[1] end
      local s, k = 0, 0
      for id = 0, c.workers - 1 do s = s + rec.cpu[id]; k = k + 1 end
      cpu[#cpu + 1] = s / k
      agg[#agg + 1] = rec.agg
      ov[#ov + 1] = rec.overlap
      bad = bad + rec.bad
    end
    errors = errors + bad
    p("%-16s %-10s %7d %10d %10.1f %10s %10.1f %13s %8s%s", c.op, c.engine, c.workers, c.n(),
      median(w0), #w1 > 0 and string.format("%.1f", median(w1)) or "-", median(cpu),
      fmt_int(median(agg)), c.workers > 1 and string.format("%.0f%%", median(ov) * 100) or "-",
      bad > 0 and string.format("  (%d unexpected results!)", bad) or "")
  end

  -- Ratios, as medians of per-run ratios (both engines ran in every run).
  local function ratio(fn)
    local t = {}
    for r = 1, cfg.runs do
      local x = fn(r)
      if x then t[#t + 1] = x end
    end
    local lo, hi = minmax(t)
    return median(t), lo, hi
  end
  local function r_hit1(r) return per[2][r] and per[1][r] and per[2][r].wall[0] / per[1][r].wall[0] end
  local function r_tcs(r) return per[4][r] and per[2][r] and per[4][r].agg / per[2][r].agg end
  local function r_shs(r) return per[3][r] and per[1][r] and per[3][r].agg / per[1][r].agg end
  local function r_lrs(r) return per[6][r] and per[5][r] and per[6][r].agg / per[5][r].agg end
  local function r_tvs(r) return per[4][r] and per[3][r] and per[4][r].agg / per[3][r].agg end
  local function r_tcs_cpu(r) return per[4][r] and per[2][r] and per[4][r].cpu_ops / per[2][r].cpu_ops end
  local function r_shs_cpu(r) return per[3][r] and per[1][r] and per[3][r].cpu_ops / per[1][r].cpu_ops end
  local function r_lrs_cpu(r) return per[6][r] and per[5][r] and per[6][r].cpu_ops / per[5][r].cpu_ops end
  local hit1, hit1lo, hit1hi = ratio(r_hit1)
  local tcs, tcslo, tcshi = ratio(r_tcs)
  local shs, shslo, shshi = ratio(r_shs)
  local tvs, tvslo, tvshi = ratio(r_tvs)
  local lrs, lrslo, lrshi = ratio(r_lrs)
  local tcc = ratio(r_tcs_cpu)
  local shc = ratio(r_shs_cpu)
  local lrc = ratio(r_lrs_cpu)
  p("")
  p("ratios (median of per-run ratios, min-max); scale = agg ops/s with 2 workers / with 1;")
  p("cpu scale = the same with ops per second of each worker's own CPU time, summed")
  p("  get hit, 1 worker, tiercache/shdict ns/op:   %.2fx (%.2f-%.2f)               goal <= 1.00x  %s",
    hit1, hit1lo, hit1hi, hit1 <= 1.0 and "MET" or "MISSED")
  p("  get hit, tiercache scale 2 workers / 1:      %.2fx (%.2f-%.2f)  cpu %.2fx    goal >= 1.80x  %s",
    tcs, tcslo, tcshi, tcc, tcs >= 1.8 and "MET" or "MISSED")
  p("  get hit, shdict scale 2 workers / 1:         %.2fx (%.2f-%.2f)  cpu %.2fx    (reference)",
    shs, shslo, shshi, shc)
  p("  get hit, lrucache scale 2 workers / 1:       %.2fx (%.2f-%.2f)  cpu %.2fx    (control: no shared state)",
    lrs, lrslo, lrshi, lrc)
  p("  get hit, 2 workers, tiercache/shdict agg:    %.2fx (%.2f-%.2f)               (reference)",
    tvs, tvslo, tvshi)
  local hits, misses = 0, 0
  for ci, c in ipairs(CASES) do
    if c.engine == "tiercache" and c.f ~= ph_set then
      local n = c.n()
      local runs = 0
      for r = 1, cfg.runs do if per[ci][r] then runs = runs + 1 end end
      local k = runs * c.workers * (n + warm_n(n))
      if c.f == ph_get_hit then hits = hits + k else misses = misses + k end
    end
  end
  p("tiercache gets issued: %d for hits, %d for misses (warm-ups included)", hits, misses)
  if errors > 0 then p("UNEXPECTED RESULTS: %d", errors) end
  ngx.say(table.concat(out, "\n"))
end

return M
