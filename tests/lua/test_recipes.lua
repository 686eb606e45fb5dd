-- test_recipes.lua - Lock, RLock, BoundedSemaphore, Averager, throttle,
-- barrier and memoize_stampede from Lua, within one process and across
-- several (child interpreters of the same kind).
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "harness"
local tiercache = H.tiercache
local test, eq, ok, raises = H.test, H.eq, H.ok, H.raises

local wait_for = H.wait_for

local function open(dir)
  return tiercache.Cache(dir .. "/cache", {eviction_policy = "none"})
end

-- Start @n children running @script with @args; returns their pipes.
local function spawn(dir, name, script, n, ...)
  local path = dir .. "/" .. name .. ".lua"
  H.write_file(path, script)
  local ps = {}
  for i = 1, n do
    ps[i] = assert(io.popen(H.child(path, i, ...), "r"))
  end
  return ps
end

local function reap(ps, want)
  for i, p in ipairs(ps) do
    local out = p:read("*a")
    p:close()
    eq(out, want, "child " .. i)
  end
end

test("Lock: acquire, locked, release, with", function(dir)
  local c = open(dir)
  local l = tiercache.Lock(c, "lk")
  eq(l:locked(), false)
  eq(l:acquire(), true)
  eq(l:locked(), true)
  ok(tostring(c:get("lk")):find("^tiercache%-owner "), "the key names its holder")
  eq(l:acquire(0.05), false, "not re-entrant")
  l:release()
  eq(l:locked(), false)
  eq(c:get("lk"), nil, "released: the key is gone")
  raises(function() l:release() end, "Lock.release: cannot release un-acquired lock", true)
  -- with(fn): results come back, and the lock is released on error too
  local a, b = l:with(function(x) return l:locked(), x + 1 end, 41)
  eq(a, true)
  eq(b, 42)
  eq(l:locked(), false)
  raises(function() l:with(function() error("boom") end) end, "boom", true)
  eq(l:locked(), false, "released after an error")
  -- an expiring lock frees itself
  local e = tiercache.Lock(c, "ex", 0.2)
  eq(e:acquire(), true)
  wait_for("the lock to expire", function() return not e:locked() end)
  eq(tiercache.Lock(c, "ex"):acquire(0), true)
end)

test("Lock: bad arguments are named", function(dir)
  local c = open(dir)
  raises(function() tiercache.Lock("nope", "k") end, "tiercache.Lock: cache: expected a Cache or FanoutCache", true)
  raises(function() tiercache.Lock(c, {}) end, "key", true)
  raises(function() tiercache.Lock(c, "k", "soon") end, "expire", true)
  local l = tiercache.Lock(c, "k")
  raises(function() l:acquire("x") end, "Lock.acquire: timeout", true)
  raises(function() l.acquire({}) end, "Lock.acquire: expected a Lock object", true)
  raises(function() l:with(42) end, "Lock.with: fn: expected a function", true)
  raises(function() tiercache.BoundedSemaphore(c, "s", 0) end, "value", true)
  raises(function() tiercache.throttle(c, 1, 1, {nmae = "x"}) end, "unknown option 'nmae'", true)
  raises(function() tiercache.memoize_stampede(c, nil) end, "expire", true)
  raises(function() tiercache.barrier(c, print) end, "lock_factory", true)
end)

-- Children increment one counter under the lock; an "inside" marker must
-- never be found set by another holder.
local LOCKER = [==[
local tiercache = require "tiercache"
local id, dir, kind, n = arg[1], arg[2], arg[3], tonumber(arg[4])
local c = tiercache[kind](dir, {eviction_policy = "none"})
local lock
if kind == "Cache" then lock = tiercache.Lock(c, "lock")
else lock = tiercache.BoundedSemaphore(c, "lock", 1) end
while not c:get("go") do os.execute("sleep 0.01") end
local clash = 0
for _ = 1, n do
  lock:with(function()
    if c:get("inside") then clash = clash + 1 end
    c:set("inside", id)
    c:set("counter", (c:get("counter") or 0) + 1)
    c:delete("inside")
  end)
end
io.write("clashes ", clash, "\n")
]==]

for _, kind in ipairs({"Cache", "FanoutCache"}) do
  test(kind .. ": Lock/BoundedSemaphore exclude each other across processes", function(dir)
    local c = tiercache[kind](dir .. "/c", {eviction_policy = "none"})
    local n = 60
    local ps = spawn(dir, "locker", LOCKER, 3, dir .. "/c", kind, n)
    c:set("go", 1)
    reap(ps, "clashes 0\n")
    eq(c:get("counter"), 3 * n, "no lost update")
  end)
end

-- The holder takes the lock and SIGKILLs itself (no expire set).
local DIER = [==[
local tiercache = require "tiercache"
local c = tiercache.Cache(arg[2], {eviction_policy = "none"})
local l = tiercache[arg[3]](c, "lock")
assert(l:acquire())
io.write("held\n") io.flush()
os.execute("kill -9 $PPID")
os.execute("sleep 30")
]==]

for _, kind in ipairs({"Lock", "RLock", "BoundedSemaphore"}) do
  test(kind .. ": a holder killed with SIGKILL does not keep it", function(dir)
    local c = open(dir)
    local p = spawn(dir, "dier", DIER, 1, dir .. "/cache", kind)[1]
    p:read("*a")
    p:close()
    local l = tiercache[kind](c, "lock")
    ok(c:get("lock"), "the dead holder's record is still there")
    local t0 = tiercache.now()
    eq(l:acquire(10), true, "taken over")
    ok(tiercache.now() - t0 < 5, "taken over promptly")
    l:release()
  end)
end

-- A holder that stays alive keeps the lock from the parent.
local HOLDER = [==[
local tiercache = require "tiercache"
local c = tiercache.Cache(arg[2], {eviction_policy = "none"})
local l = tiercache.Lock(c, "lock")
assert(l:acquire())
c:set("held", 1)
while not c:get("stop") do os.execute("sleep 0.02") end
l:release()
io.write("released\n")
]==]

test("Lock: a live holder in another process keeps it", function(dir)
  local c = open(dir)
  local ps = spawn(dir, "holder", HOLDER, 1, dir .. "/cache")
  wait_for("the child to hold the lock", function() return c:get("held") end)
  local l = tiercache.Lock(c, "lock")
  eq(l:locked(), true)
  eq(l:acquire(0.5), false, "held by a live process")
  raises(function() l:release() end, "cannot release un-acquired lock", true)
  c:set("stop", 1)
  reap(ps, "released\n")
  eq(l:acquire(5), true)
end)

test("RLock: re-entrant for its holder only", function(dir)
  local c = open(dir)
  local r = tiercache.RLock(c, "rl")
  eq(r:acquire(), true)
  eq(r:acquire(), true)
  ok(tostring(c:get("rl")):find("count=2$"), "depth recorded")
  -- another coroutine of this process is another holder
  local co = coroutine.wrap(function()
    local got = r:acquire(0)
    local okr = pcall(r.release, r)
    return got, okr
  end)
  local got, released = co()
  eq(got, false, "another coroutine cannot take it")
  eq(released, false, "nor release it")
  r:release()
  eq(r:acquire(0), true)
  r:release()
  r:release()
  eq(c:get("rl"), nil)
  raises(function() r:release() end, "RLock.release: cannot release un-acquired lock", true)
  eq(r:with(function() return r:with(function() return "nested" end) end), "nested")
  eq(c:get("rl"), nil)
end)

test("BoundedSemaphore: permits are the stored integer", function(dir)
  local c = open(dir)
  local s = tiercache.BoundedSemaphore(c, "sem", 2)
  eq(s:acquire(), true)
  eq(c:get("sem"), 1, "python-diskcache's format: the free permits")
  eq(s:acquire(), true)
  eq(s:acquire(0), false)
  eq(s:acquire(0.05), false)
  s:release()
  eq(c:get("sem"), 1)
  s:release()
  raises(function() s:release() end, "cannot release un-acquired semaphore", true)
  eq(c:get("sem"), 2)
  eq(s:with(function() return c:get("sem") end), 1)
end)

test("BoundedSemaphore and Lock: shared with python-diskcache's recipes", function(dir)
  if not H.have_diskcache() then return end
  local c = open(dir)
  local s = tiercache.BoundedSemaphore(c, "sem", 2)
  eq(s:acquire(), true)
  -- python takes the second permit; then neither side gets a third
  local out, good = H.py(string.format([==[
import diskcache, diskcache.recipes as r
c = diskcache.Cache(%q)
print(c.get("sem"))
r.BoundedSemaphore(c, "sem", value=2).acquire()
print(c.get("sem"))
]==], dir .. "/cache"))
  ok(good, out)
  eq(out, "1\n0\n")
  eq(s:acquire(0.05), false, "python holds the last permit")
  -- python's Lock: an add of None at the key; ours waits for it
  out, good = H.py(string.format([==[
import diskcache, diskcache.recipes as r
c = diskcache.Cache(%q)
r.Lock(c, "plock").acquire()
print(r.Lock(c, "plock").locked())
]==], dir .. "/cache"))
  ok(good, out)
  eq(out, "True\n")
  local l = tiercache.Lock(c, "plock")
  eq(l:locked(), true)
  eq(l:acquire(0.05), false, "held by python (never judged dead)")
end)

test("Averager: add, get, pop", function(dir)
  local c = open(dir)
  local a = tiercache.Averager(c, "avg")
  eq(a:get(), nil)
  a:add(1)
  a:add(2)
  a:add(6)
  eq(a:get(), 3.0)
  local rec = c:get("avg")
  eq(rec[1], 9.0, "total")
  eq(rec[2], 3, "count")
  eq(a:pop(), 3.0)
  eq(a:get(), nil)
  eq(c:get("avg"), nil)
  raises(function() a:add("x") end, "Averager.add: value", true)
  c:set("bad", "not a record")
  raises(function() tiercache.Averager(c, "bad"):get() end, "Averager.get", true)
  eq(c:get("bad"), "not a record", "nothing lost")
end)

test("throttle: holds its rate (injected clock)", function(dir)
  local c = open(dir)
  local now, slept, calls = 1000, 0, 0
  local f = tiercache.throttle(c, 10, 1, {
    name = "t",
    time_func = function() return now end,
    sleep_func = function(d) slept = slept + d; now = now + d end,
  })(function(x) calls = calls + 1; return x * 2 end)
  eq(f(4), 8)
  for _ = 1, 199 do f(1) end
  eq(calls, 200)
  -- the first 10 run at once (the full bucket), the rest at 10 per second
  local want = (200 - 10) / 10
  ok(math.abs(slept - want) <= want * 0.1, "simulated time " .. slept .. " s, want " .. want)
  local rec = c:get("t")
  eq(type(rec), "table", "stored as [last, tally]")
end)

test("barrier: calls from several processes never overlap", function(dir)
  local c = open(dir)
  local script = [==[
local tiercache = require "tiercache"
local c = tiercache.Cache(arg[2], {eviction_policy = "none"})
local f = tiercache.barrier(c, tiercache[arg[3]], {name = "b"})(function(n)
  local v = (c:get("counter") or 0)
  c:set("counter", v + n)
  return v
end)
while not c:get("go") do os.execute("sleep 0.01") end
for _ = 1, 40 do f(1) end
io.write("done\n")
]==]
  for _, factory in ipairs({"Lock", "RLock", "BoundedSemaphore"}) do
    c:delete("go")
    c:set("counter", 0)
    local ps = spawn(dir, "barrier", script, 3, dir .. "/cache", factory)
    c:set("go", 1)
    reap(ps, "done\n")
    eq(c:get("counter"), 120, factory)
  end
end)

test("memoize_stampede: caches, keys like memoize, errors release the lease", function(dir)
  local c = open(dir)
  local n = 0
  local g = tiercache.memoize_stampede(c, 100, {beta = 0})(function(x, y)
    n = n + 1
    return {sum = x + (y or 0)}
  end)
  H.deep_eq(g(1, 2), {sum = 3})
  H.deep_eq(g(1, 2), {sum = 3})
  eq(n, 1)
  H.deep_eq(g(2), {sum = 2})
  eq(n, 2)
  -- a failing computation raises and leaves no lease behind
  local fails = true
  local h = tiercache.memoize_stampede(c, 100, {name = "h"})(function()
    if fails then error("not now") end
    return "fine"
  end)
  raises(function() h() end, "not now", true)
  fails = false
  eq(h(), "fine")
  -- nil results are not cached
  local m = 0
  local k = tiercache.memoize_stampede(c, 100, {name = "k"})(function() m = m + 1 end)
  eq(k(), nil)
  eq(k(), nil)
  eq(m, 2)
  -- an item near its expiry is recomputed early when XFetch says so
  local r = 0
  local e = tiercache.memoize_stampede(c, 0.5, {name = "e", beta = 1e9})(function()
    r = r + 1
    return r
  end)
  eq(e(), 1)
  eq(e(), 2, "beta huge: always stale, recomputed by the lease winner")
end)

local STAMPEDE = [==[
local tiercache = require "tiercache"
local c = tiercache.Cache(arg[2], {eviction_policy = "none"})
local beta = tonumber(arg[3])
local f = tiercache.memoize_stampede(c, 0.3, {name = "slow", beta = beta})(function(x)
  local now = c:incr("running", 1, 0)
  if now > 1 then c:incr("overlaps", 1, 0) end
  c:incr("computed", 1, 0)
  local t = tiercache.now() + 0.02
  while tiercache.now() < t do end
  c:decr("running", 1)
  return x * 10
end)
while not c:get("go") do os.execute("sleep 0.01") end
local bad = 0
local stop = tiercache.now() + 1.5
while tiercache.now() < stop do
  if f(7) ~= 70 then bad = bad + 1 end
end
io.write("bad ", bad, "\n")
]==]

for _, beta in ipairs({0, 1}) do
  test("memoize_stampede: one computation at a time across processes, beta " .. beta, function(dir)
    local c = open(dir)
    local ps = spawn(dir, "stampede", STAMPEDE, 3, dir .. "/cache", beta)
    c:set("go", 1)
    reap(ps, "bad 0\n")
    eq(c:get("overlaps"), nil, "no two computations of one key ran at once")
    ok((c:get("computed") or 0) >= 2, "recomputed after expiry")
  end)
end

H.run()
