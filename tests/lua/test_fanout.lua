-- test_fanout.lua - FanoutCache: shards, key placement, swallowed timeouts,
-- sub-collections and persisted settings.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "harness"
local tiercache = H.tiercache
local test, eq, ok, raises, deep_eq = H.test, H.eq, H.ok, H.raises, H.deep_eq

local function isdir(p)
  return (select(2, H.sh("test -d " .. H.q(p))))
end
local function isfile(p)
  return (select(2, H.sh("test -f " .. H.q(p))))
end

test("default: 8 shards in directories 000..007", function(dir)
  local fc = tiercache.FanoutCache(dir)
  fc:set("a", 1)
  for i = 0, 7 do
    ok(isfile(string.format("%s/%03d/cache.db", dir, i)), "shard " .. i)
  end
  ok(not isdir(dir .. "/008"), "no ninth shard")
  ok(not isfile(dir .. "/cache.db"), "no top-level database")
  eq(fc:get("a"), 1)
end)

test("keys are placed by diskcache's hash", function(dir)
  local fc = tiercache.FanoutCache(dir)
  -- python-diskcache 5.x: 'a'->2, 'b'->3, 'c'->4, 1->1, 2->2, 3->3
  local where = {a = "002", b = "003", c = "004"}
  for k, shard in pairs(where) do
    fc:set(k, k)
    eq(H.sqlite(dir .. "/" .. shard .. "/cache.db", "select value from Cache"):match(k) ~= nil,
       true, k .. " in shard " .. shard)
  end
  fc:set(1, "one")
  eq(H.sqlite(dir .. "/001/cache.db", "select value from Cache"), "one")
  eq(#fc, 4)
  -- keys() chains the shards in order
  deep_eq(H.list(fc:keys()), {1, "a", "b", "c"})
end)

test("the shards setting, kept by the directory", function(dir)
  local fc = tiercache.FanoutCache(dir, {shards = 3})
  fc:set("a", 1)
  ok(isdir(dir .. "/002"))
  ok(not isdir(dir .. "/003"))
  fc:close()
  fc = tiercache.FanoutCache(dir)
  eq(fc:get("a"), 1, "reopened with its 3 shards")
  ok(not isdir(dir .. "/003"))
  fc:close()
  raises(function() tiercache.FanoutCache(dir, {shards = 4}) end, "FanoutCache")
  raises(function() tiercache.FanoutCache(dir .. "/x", {shards = 0}) end, "shards")
  raises(function() tiercache.FanoutCache(dir .. "/x", {shards = 1.5}) end, "shards")
  raises(function() tiercache.FanoutCache(dir .. "/x", {shards = "8"}) end, "shards")
  -- a plain Cache directory is not a FanoutCache, and the other way round
  tiercache.Cache(dir .. "/plain"):close()
  raises(function() tiercache.FanoutCache(dir .. "/plain") end, "FanoutCache")
  raises(function() tiercache.Cache(dir) end, "Cache")
end)

test("FanoutCache has the core methods, without the queue ones", function(dir)
  local fc = tiercache.FanoutCache(dir, {shards = 4})
  for _, m in ipairs({"push", "pull", "peek", "peekitem", "iterkeys"}) do
    eq(fc[m], nil, m .. " is not a FanoutCache method")
  end
  eq(fc:set("a", 1, 100, {tag = "t"}), true)
  eq(fc:add("a", 2), false)
  eq(fc:add("b", 2), true)
  local v, e, t = fc:get("a", nil, {expire_time = true, tag = true})
  eq(v, 1)
  ok(e > tiercache.now() + 90)
  eq(t, "t")
  eq(fc:incr("n"), 1)
  eq(fc:decr("n", 3), -2)
  raises(function() fc:incr("nope", 1, false) end, "FanoutCache.incr.*not found")
  eq(fc:touch("a", false), true)
  eq(fc:touch("zz", 1), false)
  eq(fc:contains("a"), true)
  eq(fc:pop("b"), 2)
  eq(fc:pop("b", "d"), "d")
  eq(fc:delete("a"), true)
  eq(fc:delete("a"), false)
  fc:set("big", string.rep("x", 40000))
  local fh = fc:read("big")
  eq(#fh:read("*a"), 40000)
  fh:close()
  eq(fc:read("nope"), nil)
  eq(#fc, 2)
  eq(fc:len(), 2)
  ok(fc:volume() > 40000)
  deep_eq(fc:check(), {})
  fc:stats(true)
  fc:get("n")
  fc:get("nope")
  local h, m = fc:stats()
  eq(h, 1, "hits summed over shards")
  eq(m, 1)
  fc:set("e1", 1, 10)
  fc:set("e2", 1, 10, {tag = "x"})
  fc:set("e3", 1, nil, {tag = "x"})
  eq(fc:expire(tiercache.now() + 100), 2)
  eq(fc:evict("x"), 1)
  fc:create_tag_index()
  eq(fc:reset("tag_index"), 1)
  fc:drop_tag_index()
  eq(fc:reset("tag_index"), 0)
  eq(fc:cull(), 0)
  eq(fc:clear(), 2)
  eq(#fc, 0)
end)

test("transact spans every shard and rolls back", function(dir)
  local fc = tiercache.FanoutCache(dir)
  local r = fc:transact(function()
    for i = 1, 20 do fc:set(i, i) end
    return "done"
  end)
  eq(r, "done")
  eq(#fc, 20)
  raises(function()
    fc:transact(function()
      for i = 1, 20 do fc:delete(i) end
      error("undo")
    end)
  end, "undo")
  eq(#fc, 20, "rolled back on every shard")
  eq(fc:get(13), 13)
end)

test("reset on a FanoutCache applies to every shard", function(dir)
  local fc = tiercache.FanoutCache(dir, {shards = 4})
  eq(fc:reset("cull_limit", 3), 3)
  for i = 0, 3 do
    eq(H.sqlite(string.format("%s/%03d/cache.db", dir, i),
                "select value from Settings where key = 'cull_limit'"), "3")
  end
  eq(fc:reset("cull_limit"), 3)
  raises(function() fc:reset("cull_limt") end, "cull_limt")
end)

test("size_limit persists per shard and is kept on reopen without it", function(dir)
  local fc = tiercache.FanoutCache(dir, {size_limit = 8000000})
  eq(fc:reset("size_limit") == 1000000, true, "the per-shard limit (diskcache)")
  fc:close()
  fc = tiercache.FanoutCache(dir)
  eq(fc:reset("size_limit") == 1000000, true, "kept (python-diskcache would reset it)")
  for i = 0, 7 do
    eq(tonumber(H.sqlite(string.format("%s/%03d/cache.db", dir, i),
                         "select value from Settings where key = 'size_limit'")) == 1000000,
       true, "shard " .. i)
  end
  fc:close()
  fc = tiercache.FanoutCache(dir, {size_limit = 16000000})
  eq(fc:reset("size_limit") == 2000000, true, "a given size_limit wins")
  -- settings are inherited too
  fc:reset("cull_limit", 4)
  fc:close()
  eq(tiercache.FanoutCache(dir):reset("cull_limit"), 4)
end)

test("Timeout is swallowed: default, false or nil", function(dir)
  local fc = tiercache.FanoutCache(dir) -- default timeout 0.010 s
  local holder = tiercache.FanoutCache(dir)
  fc:set("a", 1)
  fc:set("b", 2)
  local results
  holder:transact(function()
    holder:set("held", 1)
    results = {
      set = fc:set("a", 100),
      add = fc:add("new", 1),
      delete = fc:delete("a"),
      touch = fc:touch("a", 10),
      incr = {fc:incr("n")},
      pop = {fc:pop("b", "dflt")},
      pop3 = {n = select("#", fc:pop("b", "d", {expire_time = true, tag = true})),
              fc:pop("b", "d", {expire_time = true, tag = true})},
      get = fc:get("a", "dflt"), -- WAL: readers are not blocked
    }
  end)
  eq(results.set, false)
  eq(results.add, false)
  eq(results.delete, false)
  eq(results.touch, false)
  eq(#results.incr, 0)
  eq(results.incr[1], nil, "incr -> nil")
  eq(results.pop[1], "dflt")
  eq(results.pop3[1], "d")
  eq(results.pop3.n, 3)
  eq(results.get, 1)
  -- nothing changed
  eq(fc:get("a"), 1)
  eq(fc:get("b"), 2)
  eq(fc:contains("new"), false)
  eq(fc:get("held"), 1)
end)

test("Timeout with statistics on: get returns the default", function(dir)
  local fc = tiercache.FanoutCache(dir, {statistics = 1})
  local holder = tiercache.FanoutCache(dir)
  fc:set("a", 1)
  local got
  holder:transact(function()
    holder:set("x", 1)
    got = {fc:get("a", "dflt", {expire_time = true})}
  end)
  -- with statistics a read is a write transaction (diskcache), which times
  -- out: the default, with nil for the expire_time asked for
  eq(got[1], "dflt")
  eq(#got, 1)
  eq(fc:get("a"), 1)
end)

test("cache(name): a Cache at DIR/cache/NAME, one object per name", function(dir)
  local fc = tiercache.FanoutCache(dir)
  local sub = fc:cache("users")
  ok(tostring(sub):find("Cache", 1, true))
  sub:set("k", "v")
  eq(sub:push("q"), 500000000000000, "a plain Cache: it has push")
  ok(isfile(dir .. "/cache/users/cache.db"))
  eq(fc:cache("users"), sub, "the same object for the same name")
  eq(fc:get("k"), nil, "separate from the shards")
  local nested = fc:cache("a/b")
  nested:set("x", 1)
  ok(isfile(dir .. "/cache/a/b/cache.db"))
  for _, bad in ipairs({"../x", "..", "a/../../x", "/abs", "", ".", "a//b", "a/./b", "x/.."}) do
    raises(function() fc:cache(bad) end, "FanoutCache.cache: name")
  end
  raises(function() fc:cache(nil) end, "FanoutCache.cache: name")
  raises(function() fc:cache({}) end, "FanoutCache.cache: name")
  ok(not isdir(dir .. "/x") and not isdir(dir .. "/../x"))
  -- a closed sub-cache is replaced by a fresh one
  sub:close()
  local again = fc:cache("users")
  eq(again:get("k"), "v")
  -- the sub-cache outlives the parent's close (diskcache forgets, not closes)
  fc:close()
  eq(again:get("k"), "v")
end)

test("deque(name) and index(name): python-diskcache's sub-collections", function(dir)
  local fc = tiercache.FanoutCache(dir)
  local dq = fc:deque("jobs", 2)
  dq:append(1) dq:append(2) dq:append(3)
  eq(#dq, 2, "maxlen applies")
  eq(dq:popleft(), 2)
  ok(select(2, H.sh("test -f " .. dir .. "/deque/jobs/cache.db")))
  local ix = fc:index("users/admins")
  ix:set("ann", 1)
  eq(fc:index("users/admins"):get("ann"), 1)
  ok(select(2, H.sh("test -f " .. dir .. "/index/users/admins/cache.db")))
  raises(function() fc:deque(42) end, "FanoutCache.deque: name")
  raises(function() fc:index("a/../b") end, "FanoutCache.index: name")
end)

test("FanoutCache settings: timeout, unknown names", function(dir)
  raises(function() tiercache.FanoutCache(dir, {size_limt = 1}) end, "size_limt", true)
  raises(function() tiercache.FanoutCache(dir, {timeout = -1}) end, "timeout")
  raises(function() tiercache.FanoutCache(dir, {MAX_ENTRIES = 10}) end, "MAX_ENTRIES", true)
  local fc = tiercache.FanoutCache(dir, {timeout = 2, eviction_policy = "none", shards = 2})
  eq(fc:reset("eviction_policy"), "none")
  fc:close()
  eq(select("#", fc:close()), 0, "close twice is harmless")
  raises(function() fc:get("a") end, "FanoutCache.get: cache is closed")
end)

H.run()
