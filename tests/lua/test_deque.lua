-- test_deque.lua - tiercache.Deque (spec: "Deque and Index" and the
-- Clarifications): python-diskcache's persistent deque with Lua's
-- conventions (1-based indexes, nil from an empty pop).
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "harness"
local tiercache = H.tiercache
local test, eq, ok, raises, deep_eq = H.test, H.eq, H.ok, H.raises, H.deep_eq

-- The deque's contents, front to back, through dq:values().
local function list(dq)
  local t = {}
  for v in dq:values() do t[#t + 1] = v end
  return t
end

local function fill(dq, ...)
  for _, v in ipairs({...}) do dq:append(v) end
end

-- ---- construction ------------------------------------------------------------

test("Deque(dir) opens a plain Cache that never culls", function(dir)
  local dq = tiercache.Deque(dir)
  eq(tostring(dq), "tiercache.Deque(" .. dir .. ")")
  eq(dq:directory(), dir)
  eq(#dq, 0)
  eq(dq:maxlen(), nil, "unbounded by default")
  local c = dq:cache()
  eq(c:reset("eviction_policy"), "none")
  c:close()
  eq(#dq, 0, "closing the cache() object leaves the deque open")
end)

test("Deque(nil) makes a temporary directory", function(dir)
  local dq = tiercache.Deque(nil, 2)
  local d = dq:directory()
  ok(d ~= "" and d ~= dir)
  fill(dq, 1, 2, 3)
  deep_eq(list(dq), {2, 3})
  eq(dq:maxlen(), 2)
  dq:close()
  os.execute("rm -rf " .. H.q(d))
end)

test("constructor and self errors name the Deque", function(dir)
  raises(function() tiercache.Deque(5) end, "Deque: directory: expected a string, got number", true)
  raises(function() tiercache.Deque(dir, -1) end, "Deque: maxlen: expected an integer >= 0", true)
  raises(function() tiercache.Deque(dir, "3") end, "Deque: maxlen: expected an integer >= 0 or nil, got string", true)
  raises(function() tiercache.Deque(dir, 1.5) end, "Deque: maxlen", true)
  local dq = tiercache.Deque(dir)
  raises(function() dq.append(nil, 1) end, "Deque.append: expected a Deque as self", true)
  raises(function() dq.pop({}) end, "Deque.pop: expected a Deque as self", true)
  -- a Cache is not a Deque, nor the other way round
  local c = tiercache.Cache(dir .. "/c")
  raises(function() dq.append(c, 1) end, "Deque.append: expected a Deque", true)
  raises(function() c.set(dq, "k", 1) end, "expected a cache object", true)
  dq:close()
  dq:close() -- twice is harmless
  raises(function() dq:append(1) end, "Deque.append: deque is closed", true)
  raises(function() return #dq end, "Deque.len: deque is closed", true)
  eq(tostring(dq), "tiercache.Deque (closed)")
end)

test("a FanoutCache directory is not a Deque", function(dir)
  tiercache.FanoutCache(dir):close()
  raises(function() tiercache.Deque(dir) end, "Deque: cannot open", true)
end)

-- ---- ends ----------------------------------------------------------------------

test("append, appendleft, pop, popleft, peek, peekleft", function(dir)
  local dq = tiercache.Deque(dir)
  dq:append("b")
  dq:append("c")
  dq:appendleft("a")
  deep_eq(list(dq), {"a", "b", "c"})
  eq(#dq, 3)
  eq(dq:peek(), "c")
  eq(dq:peekleft(), "a")
  eq(dq:pop(), "c")
  eq(dq:popleft(), "a")
  eq(dq:pop(), "b")
  eq(#dq, 0)
end)

test("pop, popleft, peek, peekleft on an empty deque return nil", function(dir)
  local dq = tiercache.Deque(dir)
  eq(select("#", dq:pop()), 1)
  eq(dq:pop(), nil)
  eq(dq:popleft(), nil)
  eq(dq:peek(), nil)
  eq(dq:peekleft(), nil)
end)

test("values of every kind round-trip", function(dir)
  local dq = tiercache.Deque(dir)
  local big = string.rep("x", 70000)
  local vals = {"text", "\255\0bytes", 42, 2.5, true, false, {a = {1, 2}}, big}
  for _, v in ipairs(vals) do dq:append(v) end
  local got = list(dq)
  eq(#got, #vals)
  for i, v in ipairs(vals) do
    if type(v) == "table" then deep_eq(got[i], v) else eq(got[i], v) end
  end
  eq(dq:pop(), big)
  if H.is54 then eq(math.type(dq:get(4)), "float") end
end)

test("append rejects what cannot be stored", function(dir)
  local dq = tiercache.Deque(dir)
  raises(function() dq:append(nil) end, "Deque.append: value: cannot store a nil value", true)
  raises(function() dq:appendleft(print) end, "Deque.appendleft: value: cannot store a function value", true)
  local cyclic = {}
  cyclic.self = cyclic
  raises(function() dq:append(cyclic) end, "Deque.append: value:", true)
  eq(#dq, 0)
end)

-- ---- extend ----------------------------------------------------------------------

test("extend and extendleft take an array, in one go", function(dir)
  local dq = tiercache.Deque(dir)
  dq:extend({1, 2, 3})
  dq:extendleft({"a", "b", "c"})
  deep_eq(list(dq), {"c", "b", "a", 1, 2, 3})
  dq:extend({})
  eq(#dq, 6)
  raises(function() dq:extend("abc") end, "Deque.extend: values: expected a table, got string", true)
  raises(function() dq:extend({1, 2, print}) end, "Deque.extend: values[3]: cannot store a function value", true)
  raises(function() dq:extendleft({{}, {f = print}}) end, "Deque.extendleft: values[2]:", true)
  eq(#dq, 6, "a bad value stores none of the batch")
end)

-- ---- maxlen ------------------------------------------------------------------------

test("maxlen drops items from the other end", function(dir)
  local dq = tiercache.Deque(dir, 3)
  eq(dq:maxlen(), 3)
  fill(dq, 1, 2, 3, 4, 5)
  deep_eq(list(dq), {3, 4, 5})
  dq:appendleft(0)
  deep_eq(list(dq), {0, 3, 4})
  dq:extend({7, 8})
  deep_eq(list(dq), {4, 7, 8})
  dq:extendleft({"x", "y", "z", "w"})
  deep_eq(list(dq), {"w", "z", "y"})
end)

test("maxlen(n) sets the limit and trims from the left", function(dir)
  local dq = tiercache.Deque(dir)
  fill(dq, "a", "b", "c", "d", "e")
  dq:maxlen(2)
  eq(dq:maxlen(), 2)
  deep_eq(list(dq), {"d", "e"})
  dq:append("f")
  deep_eq(list(dq), {"e", "f"})
  dq:maxlen(0)
  eq(#dq, 0)
  dq:append("gone")
  eq(#dq, 0)
  dq:maxlen(false)
  eq(dq:maxlen(), nil)
  fill(dq, 1, 2, 3)
  eq(#dq, 3)
  dq:maxlen(nil)
  eq(dq:maxlen(), nil)
  raises(function() dq:maxlen(-2) end, "Deque.maxlen: maxlen: expected an integer >= 0", true)
  raises(function() dq:maxlen("x") end, "Deque.maxlen: maxlen:", true)
  -- maxlen is the object's, not the directory's (as python's)
  dq:maxlen(1)
  local other = tiercache.Deque(dir)
  eq(other:maxlen(), nil)
  fill(other, 4, 5)
  eq(#other, 3)
end)

-- ---- indexed access -----------------------------------------------------------------

test("get, set and delete use 1-based indexes, negative from the end", function(dir)
  local dq = tiercache.Deque(dir)
  fill(dq, "a", "b", "c", "d")
  eq(dq:get(1), "a")
  eq(dq:get(4), "d")
  eq(dq:get(-1), "d")
  eq(dq:get(-4), "a")
  dq:set(1, "A")
  dq:set(-1, "D")
  dq:set(2, 22)
  deep_eq(list(dq), {"A", 22, "c", "D"})
  dq:delete(2)
  deep_eq(list(dq), {"A", "c", "D"})
  dq:delete(-1)
  deep_eq(list(dq), {"A", "c"})
  dq:set(2, {t = true})
  deep_eq(dq:get(2), {t = true})
end)

test("an index out of range is a clear error", function(dir)
  local dq = tiercache.Deque(dir)
  fill(dq, 1, 2, 3)
  raises(function() dq:get(7) end, "Deque.get: index 7 out of range", true)
  raises(function() dq:get(4) end, "Deque.get: index 4 out of range", true)
  raises(function() dq:get(-4) end, "Deque.get: index -4 out of range", true)
  raises(function() dq:get(0) end, "Deque.get: index 0 out of range", true)
  raises(function() dq:set(9, "x") end, "Deque.set: index 9 out of range", true)
  raises(function() dq:delete(-9) end, "Deque.delete: index -9 out of range", true)
  raises(function() dq:get("1") end, "Deque.get: index: expected an integer, got string", true)
  raises(function() dq:get(1.5) end, "Deque.get: index: expected an integer, got number 1.5", true)
  raises(function() dq:get() end, "Deque.get: index: expected an integer, got nil", true)
  raises(function() dq:set(1, nil) end, "Deque.set: value: cannot store a nil value", true)
  deep_eq(list(dq), {1, 2, 3}, "nothing changed")
  dq:clear()
  raises(function() dq:get(1) end, "Deque.get: index 1 out of range", true)
end)

-- ---- count, remove ----------------------------------------------------------------------

test("count compares numbers by value and strings by type and bytes", function(dir)
  local dq = tiercache.Deque(dir)
  dq:extend({1, 1.5, "1", 1, "a", "\255", true})
  eq(dq:count(1), 2)
  eq(dq:count(1.5), 1)
  eq(dq:count("1"), 1)
  eq(dq:count("a"), 1)
  eq(dq:count("\255"), 1)
  eq(dq:count(true), 1)
  eq(dq:count(false), 0)
  eq(dq:count("zz"), 0)
  if H.is54 then
    eq(dq:count(1.0), 2, "1 == 1.0, as in python")
    eq(math.type(dq:count(1)), "integer")
  end
  raises(function() dq:count(nil) end, "Deque.count: value: cannot store a nil value", true)
end)

test("count compares tables by their MessagePack encoding", function(dir)
  local dq = tiercache.Deque(dir)
  dq:append({1, 2, 3})
  dq:append({1, 2, 3})
  dq:append({1, 2})
  eq(dq:count({1, 2, 3}), 2)
  eq(dq:count({1, 2}), 1)
  eq(dq:count({}), 0)
end)

test("remove takes the first equal item; a missing value raises", function(dir)
  local dq = tiercache.Deque(dir)
  fill(dq, "a", "b", "a", "c")
  dq:remove("a")
  deep_eq(list(dq), {"b", "a", "c"})
  dq:remove("c")
  deep_eq(list(dq), {"b", "a"})
  raises(function() dq:remove("zz") end, "Deque.remove: value not in deque", true)
  raises(function() dq:remove(1) end, "Deque.remove: value not in deque", true)
  deep_eq(list(dq), {"b", "a"})
end)

-- ---- reverse, rotate ---------------------------------------------------------------------

test("reverse", function(dir)
  local dq = tiercache.Deque(dir)
  fill(dq, 1, 2, 3, 4)
  dq:reverse()
  deep_eq(list(dq), {4, 3, 2, 1})
  dq:append(0)
  deep_eq(list(dq), {4, 3, 2, 1, 0})
  dq:clear()
  dq:reverse()
  eq(#dq, 0)
end)

test("rotate right and left, by more than the length, default 1", function(dir)
  local dq = tiercache.Deque(dir)
  dq:extend({0, 1, 2, 3, 4})
  dq:rotate(2)
  deep_eq(list(dq), {3, 4, 0, 1, 2})
  dq:rotate(-1)
  deep_eq(list(dq), {4, 0, 1, 2, 3})
  dq:rotate()
  deep_eq(list(dq), {3, 4, 0, 1, 2})
  dq:rotate(12) -- 12 % 5 = 2
  deep_eq(list(dq), {1, 2, 3, 4, 0})
  dq:rotate(-11) -- 11 % 5 = 1 to the left
  deep_eq(list(dq), {2, 3, 4, 0, 1})
  dq:rotate(0)
  dq:rotate(5)
  deep_eq(list(dq), {2, 3, 4, 0, 1})
  raises(function() dq:rotate("a") end, "Deque.rotate: steps: expected an integer, got string", true)
  raises(function() dq:rotate(0.5) end, "Deque.rotate: steps: expected an integer, got number 0.5", true)
  dq:clear()
  dq:rotate(3) -- empty: nothing to do
end)

-- ---- whole deque ------------------------------------------------------------------------

test("clear empties the deque and its value files", function(dir)
  local dq = tiercache.Deque(dir)
  dq:extend({"a", string.rep("b", 50000)})
  eq(#H.files(dir) > 1, true)
  dq:clear()
  eq(#dq, 0)
  for _, f in ipairs(H.files(dir)) do
    ok(not f:match("%.val$"), "value file left: " .. f)
  end
end)

test("values() iterates front to back and stops", function(dir)
  local dq = tiercache.Deque(dir)
  eq(#list(dq), 0)
  fill(dq, "x", "y")
  dq:appendleft("w")
  local it = dq:values()
  eq(it(), "w")
  eq(it(), "x")
  eq(it(), "y")
  eq(it(), nil)
  eq(it(), nil)
  -- an abandoned loop is closed by the collector
  for _ = 1, 3 do dq:values()() end
  collectgarbage()
  -- items popped while iterating are skipped
  local seen = {}
  for v in dq:values() do
    seen[#seen + 1] = v
    if v == "w" then dq:pop() end
  end
  deep_eq(seen, {"w", "x"})
end)

test("two Deque objects on one directory share the items", function(dir)
  local a, b = tiercache.Deque(dir), tiercache.Deque(dir)
  a:append(1)
  b:append(2)
  eq(#a, 2)
  eq(b:popleft(), 1)
  eq(a:peek(), 2)
end)

test("FanoutCache:deque(name, maxlen) is a Deque in dir/deque/name", function(dir)
  local fc = tiercache.FanoutCache(dir)
  local dq = fc:deque("jobs", 2)
  eq(dq:directory(), dir .. "/deque/jobs")
  fill(dq, 1, 2, 3)
  deep_eq(list(dq), {2, 3})
  deep_eq(list(fc:deque("jobs")), {2, 3})
end)

-- ---- processes --------------------------------------------------------------------------

-- Children append in parallel; each value exactly once, each child's own
-- order kept.
local APPENDER = [[
local tiercache = require "tiercache"
local dq = tiercache.Deque(arg[1])
local id, n = arg[2], tonumber(arg[3])
for i = 1, n do dq:append(id .. ":" .. i) end
io.write("ok\n")
]]

test("appends from several processes are all kept", function(dir)
  local script = dir .. "/appender.lua"
  H.write_file(script, APPENDER)
  local procs, n = 3, 100
  local pipes = {}
  for p = 1, procs do
    pipes[p] = assert(io.popen(H.child(script, dir .. "/dq", "p" .. p, n), "r"))
  end
  for p = 1, procs do
    eq(pipes[p]:read("*a"), "ok\n", "child " .. p)
    pipes[p]:close()
  end
  local dq = tiercache.Deque(dir .. "/dq")
  eq(#dq, procs * n)
  local last = {}
  for v in dq:values() do
    local id, i = v:match("^(p%d):(%d+)$")
    i = tonumber(i)
    ok(i > (last[id] or 0), "order of " .. id)
    last[id] = i
  end
  for p = 1, procs do eq(last["p" .. p], n) end
end)

H.run()
