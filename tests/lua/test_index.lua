-- test_index.lua - tiercache.Index (spec: "Deque and Index"): python-
-- diskcache's persistent ordered mapping; insertion order, KeyError-like
-- errors for pop without a default, popitem and peekitem.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "harness"
local tiercache = H.tiercache
local test, eq, ok, raises, deep_eq = H.test, H.eq, H.ok, H.raises, H.deep_eq

local function pack(...)
  return {n = select("#", ...), ...}
end

local function keys(ix)
  return H.list(ix:keys())
end

-- ---- construction ------------------------------------------------------------

test("Index(dir) opens a plain Cache that never culls", function(dir)
  local ix = tiercache.Index(dir)
  eq(tostring(ix), "tiercache.Index(" .. dir .. ")")
  eq(ix:directory(), dir)
  eq(#ix, 0)
  local c = ix:cache()
  eq(c:reset("eviction_policy"), "none")
  ix:set("k", 1)
  eq(c:get("k"), 1, "the Cache on the same directory sees the items")
  c:close()
  eq(ix:get("k"), 1)
end)

test("Index(nil) makes a temporary directory", function(dir)
  local ix = tiercache.Index()
  local d = ix:directory()
  ok(d ~= "" and d ~= dir)
  ix:set("a", 1)
  eq(#ix, 1)
  ix:close()
  os.execute("rm -rf " .. H.q(d))
end)

test("misuse names the Index, the method and the argument", function(dir)
  raises(function() tiercache.Index(1) end, "Index: directory: expected a string, got number", true)
  local ix = tiercache.Index(dir)
  raises(function() ix:get({}) end, "Index.get: key: expected a string or a number, got table", true)
  raises(function() ix:get() end, "Index.get: key: expected a string or a number, got nil", true)
  raises(function() ix:set(0 / 0, 1) end, "Index.set: key: NaN is not a valid key", true)
  raises(function() ix:set("k", nil) end, "Index.set: value: cannot store a nil value", true)
  raises(function() ix:set("k", 1, 60) end, "Index.set: expire: items of an Index never expire", true)
  raises(function() ix:get("k", nil, {bogus = true}) end, "Index.get: opts: unknown option 'bogus'", true)
  raises(function() ix:get("k", nil, "x") end, "Index.get: opts: expected a table, got string", true)
  raises(function() ix:get("k", nil, {retry = 1}) end, "Index.get: retry: expected a boolean", true)
  raises(function() ix.get(nil, "k") end, "Index.get: expected an Index as self", true)
  local c = tiercache.Cache(dir .. "/c")
  raises(function() ix.get(c, "k") end, "Index.get: expected an Index as self", true)
  raises(function() c.get(ix, "k") end, "expected a cache object", true)
  ix:close()
  raises(function() ix:get("k") end, "Index.get: index is closed", true)
  eq(tostring(ix), "tiercache.Index (closed)")
end)

-- ---- mapping ------------------------------------------------------------------

test("get, set, delete", function(dir)
  local ix = tiercache.Index(dir)
  ix:set("a", 1)
  ix:set(2, "two")
  ix:set(2.5, {list = {1, 2}})
  eq(ix:get("a"), 1)
  eq(ix:get(2), "two")
  deep_eq(ix:get(2.5), {list = {1, 2}})
  eq(ix:get("missing"), nil)
  eq(ix:get("missing", "dflt"), "dflt")
  eq(ix:get("a", nil, {retry = true}), 1, "retry is accepted")
  eq(select("#", ix:set("a", 11)), 0)
  eq(ix:get("a"), 11)
  eq(ix:delete("a"), true)
  eq(ix:delete("a"), false)
  eq(#ix, 2)
end)

test("pop: the value, the default, or an error without a default", function(dir)
  local ix = tiercache.Index(dir)
  ix:set("a", 1)
  ix:set("b", string.rep("b", 40000))
  eq(ix:pop("a"), 1)
  eq(ix:pop("a", "d"), "d")
  eq(ix:pop("a", nil), nil, "an explicit nil default")
  raises(function() ix:pop("a") end, "Index.pop: key not found", true)
  eq(ix:pop("b"), string.rep("b", 40000))
  eq(#ix, 0)
end)

test("setdefault stores only when missing", function(dir)
  local ix = tiercache.Index(dir)
  eq(ix:setdefault("a", 0), 0)
  eq(ix:setdefault("a", 5), 0)
  deep_eq(ix:setdefault("t", {x = 1}), {x = 1})
  eq(ix:setdefault("a"), 0, "a nil default reads an existing key")
  raises(function() ix:setdefault("new") end, "Index.setdefault: default: cannot store a nil value", true)
  eq(#ix, 2)
  if H.is54 then eq(math.type(ix:setdefault("f", 1.0)), "float") end
end)

test("insertion order: keys, values, items", function(dir)
  local ix = tiercache.Index(dir)
  ix:set("c", 3)
  ix:set("a", 1)
  ix:set("b", 2)
  ix:set("a", 10) -- an update keeps its place
  deep_eq(keys(ix), {"c", "a", "b"})
  deep_eq(H.list(ix:values()), {3, 10, 2})
  local items = {}
  for k, v in ix:items() do items[#items + 1] = k .. "=" .. v end
  deep_eq(items, {"c=3", "a=10", "b=2"})
  ix:delete("c")
  ix:set("c", 30)
  deep_eq(keys(ix), {"a", "b", "c"}, "a deleted key comes back last")
  -- an empty index iterates nothing
  ix:clear()
  deep_eq(keys(ix), {})
  deep_eq(H.list(ix:items()), {})
end)

test("values() skips items deleted during the loop", function(dir)
  local ix = tiercache.Index(dir)
  ix:set("a", 1)
  ix:set("b", 2)
  ix:set("c", 3)
  local seen = {}
  for k, v in ix:items() do
    seen[#seen + 1] = k
    if k == "a" then ix:delete("b") end
  end
  deep_eq(seen, {"a", "c"})
end)

test("popitem: last in, first out by default; first with last = false", function(dir)
  local ix = tiercache.Index(dir)
  ix:set("a", 1)
  ix:set("b", 2)
  ix:set("c", 3)
  local r = pack(ix:popitem())
  eq(r.n, 2)
  eq(r[1], "c")
  eq(r[2], 3)
  r = pack(ix:popitem(false))
  eq(r[1], "a")
  eq(r[2], 1)
  r = pack(ix:popitem(true))
  eq(r[1], "b")
  raises(function() ix:popitem() end, "Index.popitem: dictionary is empty", true)
end)

test("peekitem: key and value, without removing", function(dir)
  local ix = tiercache.Index(dir)
  raises(function() ix:peekitem() end, "Index.peekitem: dictionary is empty", true)
  ix:set("x", 1)
  ix:set("y", {2})
  local r = pack(ix:peekitem())
  eq(r.n, 2)
  eq(r[1], "y")
  deep_eq(r[2], {2})
  r = pack(ix:peekitem(false))
  eq(r[1], "x")
  eq(r[2], 1)
  eq(#ix, 2)
end)

test("push and pull are the Cache queue (prefix, side, default)", function(dir)
  local ix = tiercache.Index(dir)
  eq(ix:push("a"), 500000000000000)
  eq(ix:push("b"), 500000000000001)
  eq(ix:push("z", {side = "front"}), 499999999999999)
  eq(ix:push("apple", {prefix = "fruit"}), "fruit-500000000000000")
  local r = pack(ix:pull())
  eq(r.n, 2)
  eq(r[1], 499999999999999)
  eq(r[2], "z")
  r = pack(ix:pull({side = "back"}))
  eq(r[2], "b")
  r = pack(ix:pull({prefix = "fruit"}))
  eq(r[1], "fruit-500000000000000")
  eq(r[2], "apple")
  r = pack(ix:pull({prefix = "fruit", default = "none"}))
  eq(r.n, 2)
  eq(r[1], nil)
  eq(r[2], "none")
  raises(function() ix:push("v", {side = "middle"}) end, "Index.push: side: expected \"back\" or \"front\"", true)
  raises(function() ix:push("v", {prefix = 1}) end, "Index.push: prefix: expected a string", true)
  raises(function() ix:pull({expire_time = true}) end, "Index.pull: opts: unknown option 'expire_time'", true)
  raises(function() ix:push(nil) end, "Index.push: value: cannot store a nil value", true)
end)

test("clear and #ix", function(dir)
  local ix = tiercache.Index(dir)
  for i = 1, 10 do ix:set(i, i) end
  eq(#ix, 10)
  eq(ix:len(), 10)
  eq(select("#", ix:clear()), 0)
  eq(#ix, 0)
end)

-- ---- memoize ---------------------------------------------------------------------

test("memoize stores results that never expire", function(dir)
  local ix = tiercache.Index(dir)
  local calls = 0
  local sq = ix:memoize("sq")(function(x)
    calls = calls + 1
    return x * x
  end)
  eq(sq(4), 16)
  eq(sq(4), 16)
  eq(calls, 1)
  eq(#ix, 1)
  local k = keys(ix)[1]
  ok(k:match("^sq:1:"), "the memoize key: " .. k)
  -- a second Index on the directory sees the result
  local again = tiercache.Index(dir):memoize("sq")(function() error("not called") end)
  eq(again(4), 16)
  -- typed and ignore
  local n = 0
  local f = ix:memoize("f", {typed = true, ignore = {2}})(function(a)
    n = n + 1
    return a
  end)
  eq(f(1, "x"), 1)
  eq(f(1, "y"), 1)
  eq(n, 1, "argument 2 is ignored")
  raises(function() ix:memoize(5) end, "Index.memoize: name: expected a string, got number", true)
  raises(function() ix:memoize("n", {expire = 1}) end, "Index.memoize: opts: unknown option 'expire'", true)
  raises(function() ix:memoize("n", {ignore = 2}) end, "Index.memoize: ignore: expected a list", true)
  raises(function() ix:memoize("n")(42) end, "Index.memoize: fn: the decorator expects a function, got number", true)
end)

test("FanoutCache:index(name) is an Index in dir/index/name", function(dir)
  local fc = tiercache.FanoutCache(dir)
  local ix = fc:index("users")
  eq(ix:directory(), dir .. "/index/users")
  ix:set("u1", "ann")
  eq(fc:index("users"):get("u1"), "ann")
end)

-- ---- processes --------------------------------------------------------------------

-- Children pop items in parallel: no item is popped twice.
local POPPER = [[
local tiercache = require "tiercache"
local ix = tiercache.Index(arg[1])
local out = {}
while true do
  local ok, k = pcall(ix.popitem, ix, #out % 2 == 0)
  if not ok then break end
  out[#out + 1] = k
end
io.write(table.concat(out, "\n"), "\n")
]]

test("popitem from several processes never repeats", function(dir)
  local script = dir .. "/popper.lua"
  H.write_file(script, POPPER)
  local ix = tiercache.Index(dir .. "/ix")
  local n = 200
  for i = 1, n do ix:set("k" .. i, i) end
  local pipes = {}
  for p = 1, 3 do
    pipes[p] = assert(io.popen(H.child(script, dir .. "/ix"), "r"))
  end
  local seen, total = {}, 0
  for p = 1, 3 do
    for k in pipes[p]:read("*a"):gmatch("k%d+") do
      ok(not seen[k], k .. " popped twice")
      seen[k] = true
      total = total + 1
    end
    pipes[p]:close()
  end
  eq(total, n)
  eq(#ix, 0)
end)

H.run()
