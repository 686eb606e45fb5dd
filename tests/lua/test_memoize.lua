-- test_memoize.lua - memoize: deterministic keys (across processes), typed,
-- ignore, tag, expire, table arguments, nil results.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "harness"
local tiercache = H.tiercache
local test, eq, ok, raises, deep_eq, near = H.test, H.eq, H.ok, H.raises, H.deep_eq, H.near

-- A memoized function that counts its calls.
local function counted(c, name, expire, opts)
  local n = {calls = 0}
  n.f = c:memoize(name, expire, opts)(function(...)
    n.calls = n.calls + 1
    local s = {}
    for i = 1, select("#", ...) do s[#s + 1] = tostring((select(i, ...))) end
    return table.concat(s, ",") .. "#" .. n.calls
  end)
  return n
end

-- The script a child runs: memoize a call with these arguments and print
-- the keys the cache holds afterwards.
local KEYS_SCRIPT = [[
local tiercache = require "tiercache"
local c = tiercache.Cache(arg[1])
local f = c:memoize("shared.fn")(function(...) return "r" end)
local t = {}
for i = 1, 40 do t["k" .. i] = i end
f(1, "two", 2.5, true, {x = 1, y = {3, 4}, [7] = "z"}, t)
f()
f("caf\195\169", -3, {1, 2, 3})
local keys = {}
for k in c:keys() do keys[#keys + 1] = k end
io.write(table.concat(keys, "\n"), "\n")
]]

test("memoize keys are the same in separate processes", function(dir)
  local script = dir .. "/keys.lua"
  H.write_file(script, KEYS_SCRIPT)
  local out1, ok1 = H.sh(H.child(script, dir .. "/a"))
  local out2, ok2 = H.sh(H.child(script, dir .. "/b"))
  ok(ok1 and ok2, "children ran: " .. out1 .. out2)
  eq(select(2, out1:gsub("\n", "")), 3, "three keys: " .. out1)
  eq(out1, out2, "two processes built the same keys")
  -- and this process builds them too
  local c = tiercache.Cache(dir .. "/a")
  local calls = 0
  local f = c:memoize("shared.fn")(function() calls = calls + 1 return "mine" end)
  local t = {}
  for i = 40, 1, -1 do t["k" .. i] = i end -- another insertion order
  eq(f(1, "two", 2.5, true, {y = {3, 4}, [7] = "z", x = 1}, t), "r", "hit the child's entry")
  eq(f(), "r")
  eq(f("caf\195\169", -3, {1, 2, 3}), "r")
  eq(calls, 0)
  -- keys are text (raw = 1) and start with the name
  for k in out1:gmatch("[^\n]+") do
    ok(k:find("^shared%.fn:"), k)
  end
  eq(H.sqlite(dir .. "/a/cache.db", "select distinct typeof(key) || raw from Cache"), "text1")
end)

test("memoize key format is stable: name:count:hex of MessagePack", function(dir)
  local c = tiercache.Cache(dir)
  local f = c:memoize("n")(function() return 1 end)
  f(1, "a")
  f()
  f({b = 1, a = 2})
  deep_eq(H.list(c:keys()), {"n:2:9201a161", "n:0:80", "n:1:9182a16102a16201"},
          "the documented format (lua/memoize.c)")
end)

test("hits, misses and argument identity", function(dir)
  local c = tiercache.Cache(dir)
  local m = counted(c, "f")
  eq(m.f(1, 2), "1,2#1")
  eq(m.f(1, 2), "1,2#1", "cached")
  eq(m.f(2, 1), "2,1#2", "order matters")
  eq(m.f(1), "1#3")
  eq(m.f(1, nil), "1,nil#4", "a trailing nil is an argument")
  eq(m.f(nil, 1), "nil,1#5")
  eq(m.f("1"), "1#6", "the string '1' is not the number 1")
  eq(m.f(), "#7")
  local r = m.f({})
  ok(r:find("#8$"), r)
  eq(m.f({}), r, "another empty table is the same argument")
  eq(m.calls, 8)
  eq(m.f(true), "true#9")
  eq(m.f(false), "false#10")
  eq(m.f(false), "false#10")
  eq(#c, 10)
  -- another name is another entry
  local m2 = counted(c, "g")
  eq(m2.f(1, 2), "1,2#1")
end)

test("table arguments in different insertion orders hit the same entry", function(dir)
  local c = tiercache.Cache(dir)
  local m = counted(c, "t")
  local a, b = {}, {}
  for i = 1, 100 do a["key" .. i] = i end
  for i = 100, 1, -1 do b["key" .. i] = i end
  a.nested = {z = 1, y = {q = true, p = false}, [3] = "x", [-1] = 0.5}
  b.nested = {[-1] = 0.5, [3] = "x", y = {p = false, q = true}, z = 1}
  local r = m.f(a)
  eq(m.f(b), r)
  eq(m.calls, 1)
  b.nested.z = 2
  ok(m.f(b) ~= r, "a different value is a different key")
  eq(m.calls, 2)
  -- arrays keep their order
  m.f({1, 2, 3})
  m.f({3, 2, 1})
  eq(m.calls, 4)
end)

test("typed puts each argument's type into the key", function(dir)
  local c = tiercache.Cache(dir)
  local plain = counted(c, "p")
  local typed = counted(c, "t", nil, {typed = true})
  typed.f(3)
  typed.f("3")
  eq(typed.calls, 2)
  typed.f(3)
  eq(typed.calls, 2)
  plain.f(3)
  plain.f("3")
  eq(plain.calls, 2, "3 and '3' differ even untyped")
  if H.is54 then
    typed.f(3.0)
    eq(typed.calls, 3, "typed: 3 and 3.0 are separate calls")
  end
end)

if H.is54 then
  test("untyped: 3 and 3.0 are one call (equal Lua numbers; the key LuaJIT builds)", function(dir)
    local c = tiercache.Cache(dir)
    local plain = counted(c, "p")
    plain.f(3)
    plain.f(3.0)
    eq(plain.calls, 1, "top-level argument")
    plain.f({n = 2})
    plain.f({n = 2.0})
    eq(plain.calls, 2, "inside a table")
  end)
end

test("ignore leaves 1-based positions out of the key", function(dir)
  local c = tiercache.Cache(dir)
  local m = counted(c, "i", nil, {ignore = {2}})
  eq(m.f(1, "a", 3), "1,a,3#1")
  eq(m.f(1, "b", 3), "1,a,3#1", "argument 2 is ignored")
  eq(m.f(1, "b", 4), "1,b,4#2")
  eq(m.f(2, "a", 3), "2,a,3#3")
  local m2 = counted(c, "j", nil, {ignore = {1, 3}})
  m2.f("x", 1, "y")
  m2.f("other", 1, "other")
  eq(m2.calls, 1)
  m2.f("x", 2, "y")
  eq(m2.calls, 2)
  -- typed and ignore together
  local m3 = counted(c, "k", nil, {typed = true, ignore = {1}})
  m3.f({}, 1)
  m3.f(print, 1) -- an ignored argument may be anything
  eq(m3.calls, 1)
end)

test("tag is stored with the results", function(dir)
  local c = tiercache.Cache(dir)
  local m = counted(c, "tg", nil, {tag = "memo"})
  m.f(1)
  m.f(2)
  local other = counted(c, "plain")
  other.f(1)
  for k in c:keys() do
    local _, t = c:get(k, nil, {tag = true})
    if k:find("^tg:") then eq(t, "memo", k) else eq(t, nil, k) end
  end
  eq(c:evict("memo"), 2)
  m.f(1)
  eq(m.calls, 3, "recomputed after evict")
  local itag = counted(c, "it", nil, {tag = 5})
  itag.f(1)
  eq(c:evict(5), 1)
end)

test("nil results are returned but not stored; only the first result is kept", function(dir)
  local c = tiercache.Cache(dir, {cull_limit = 0})
  local calls = 0
  local f = c:memoize("nil")(function() calls = calls + 1 return nil end)
  eq(f(), nil)
  eq(f(), nil)
  eq(calls, 2, "computed again")
  eq(#c, 0, "nothing stored")
  local g = c:memoize("multi")(function() return 1, 2, 3 end)
  eq(select("#", g()), 1)
  eq(g(), 1)
  eq(select("#", g()), 1, "a hit also returns one value")
  local h = c:memoize("false")(function() calls = calls + 1 return false end)
  eq(h(), false)
  eq(h(), false)
  eq(calls, 3, "false is a result like any other")
end)

test("expire is honoured", function(dir)
  local c = tiercache.Cache(dir, {cull_limit = 0})
  local m = counted(c, "e", 100)
  m.f(1)
  local key = H.list(c:keys())[1]
  local _, e = c:get(key, nil, {expire_time = true})
  near(e, tiercache.now() + 100, 5, "stored with the expire")
  eq(c:expire(tiercache.now() + 1000), 1)
  m.f(1)
  eq(m.calls, 2, "recomputed once expired")
  -- a short expire, with a generous margin
  local s = counted(c, "s", 1.0)
  s.f(1)
  s.f(1)
  eq(s.calls, 1)
  H.sleep(1.6)
  s.f(1)
  eq(s.calls, 2)
  -- expire <= 0: results are not stored, lookups still happen
  local z = counted(c, "z", 0)
  z.f(1)
  z.f(1)
  eq(z.calls, 2)
  local n = counted(c, "n", -1)
  n.f(1)
  eq(n.calls, 1)
  for k in c:keys() do
    ok(not k:find("^[zn]:"), "not stored: " .. k)
  end
  -- no expire: never
  local forever = counted(c, "forever", false)
  forever.f(1)
  for k in c:keys() do
    if k:find("^forever:") then eq(select(2, c:get(k, nil, {expire_time = true})), nil) end
  end
end)

test("the default name is where the function was defined", function(dir)
  local c = tiercache.Cache(dir)
  local f = c:memoize()(function(x) return x end)
  local g = c:memoize()(function(x) return -x end)
  eq(f(1), 1)
  eq(g(1), -1, "two functions, two names")
  local keys = H.list(c:keys())
  eq(#keys, 2)
  ok(keys[1]:find("test_memoize.lua:%d+:1:"), keys[1])
  ok(keys[1] ~= keys[2])
end)

test("memoize works through FanoutCache and the memoized function checks its arguments", function(dir)
  local fc = tiercache.FanoutCache(dir, {shards = 2})
  local m = counted(fc, "fan")
  m.f("x")
  m.f("x")
  eq(m.calls, 1)
  eq(#fc, 1)
  raises(function() m.f(print) end, "memoize")
  local cyc = {}
  cyc[1] = cyc
  raises(function() m.f(cyc) end, "cycl")
  fc:close()
  raises(function() m.f("x") end, "closed")
end)

H.run()
