-- test_errors.lua - misuse errors name the method and the argument; unknown
-- option names are errors; a busy database raises Timeout from a Cache and
-- is swallowed by a FanoutCache.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "harness"
local tiercache = H.tiercache
local test, eq, ok, raises = H.test, H.eq, H.ok, H.raises

test("misuse errors name the method and the argument", function(dir)
  local c = tiercache.Cache(dir)
  local cases = {
    {function() c:get() end, "Cache.get: key: expected a string or a number, got nil"},
    {function() c:get({}) end, "Cache.get: key: expected a string or a number, got table"},
    {function() c:set("k", 1, "soon") end, "Cache.set: expire: expected a number or false, got string"},
    {function() c:set("k", 1, true) end, "Cache.set: expire"},
    {function() c:set("k", 1, 0 / 0) end, "Cache.set: expire"},
    {function() c:set("k", 1, nil, "opts") end, "Cache.set: opts: expected a table, got string"},
    {function() c:set("k", 1, nil, {[1] = true}) end, "Cache.set: opts: option names are strings"},
    {function() c:set("k", 1, nil, {read = "yes"}) end, "Cache.set: read: expected a boolean"},
    {function() c:get("k", nil, {tag = 1}) end, "Cache.get: tag: expected a boolean"},
    {function() c:get("k", nil, {retry = "no"}) end, "Cache.get: retry: expected a boolean"},
    {function() c:touch("k", "x") end, "Cache.touch: expire"},
    {function() c:incr("k", {}) end, "Cache.incr: delta: expected a number"},
    {function() c:incr("k", 1, {}) end, "Cache.incr: default"},
    {function() c:decr(nil) end, "Cache.decr: key"},
    {function() c:pop(print) end, "Cache.pop: key"},
    {function() c:delete(true) end, "Cache.delete: key"},
    {function() c:contains({}) end, "Cache.contains: key"},
    {function() c:read(nil) end, "Cache.read: key"},
    {function() c:push(1, {side = 1}) end, "Cache.push: side"},
    {function() c:push(1, {expire = "x"}) end, "Cache.push: expire"},
    {function() c:push(1, {prefix = {}}) end, "Cache.push: prefix"},
    {function() c:pull("front") end, "Cache.pull: opts: expected a table"},
    {function() c:peek({side = "left"}) end, "Cache.peek: side: expected 'front' or 'back'"},
    {function() c:peekitem(true, 5) end, "Cache.peekitem: opts"},
    {function() c:expire("x") end, "Cache.expire: now: expected a number"},
    {function() c:evict({}) end, "Cache.evict: tag"},
    {function() c:evict() end, "Cache.evict: tag"},
    {function() c:reset(5) end, "Cache.reset: setting"},
    {function() c:reset("cull_limit", {}) end, "Cache.reset: value"},
    {function() c:transact(5) end, "Cache.transact: fn: expected a function"},
    {function() c:memoize(5) end, "Cache.memoize: name: expected a string"},
    {function() c:memoize(print) end, "Cache.memoize: name"},
    {function() c:memoize("n", "x") end, "Cache.memoize: expire"},
    {function() c:memoize("n", nil, {ignore = 5}) end, "Cache.memoize: ignore"},
    {function() c:memoize("n", nil, {typed = "yes"}) end, "Cache.memoize: typed"},
    {function() c:memoize("n")(5) end, "Cache.memoize: fn"},
    {function() c:set("k", print) end, "Cache.set: value: cannot store a function"},
    {function() c:set("k", nil) end, "Cache.set: value"},
    {function() c:add("k", coroutine.create(print)) end, "Cache.add: value"},
    {function() c:set("k", 1, nil, {tag = {}}) end, "Cache.set: tag"},
  }
  for i, t in ipairs(cases) do
    local okc, err = pcall(t[1])
    ok(not okc, "case " .. i .. " should raise: " .. t[2])
    ok(tostring(err):find(t[2], 1, true), "case " .. i .. ": expected " .. H.show(t[2]) ..
       ", got " .. H.show(tostring(err)))
  end
  eq(#c, 0, "nothing was stored by the failed calls")
  local fc = tiercache.FanoutCache(dir .. "/f", {shards = 2})
  raises(function() fc:cache(5) end, "FanoutCache.cache: name", true)
  raises(function() fc:get(nil) end, "FanoutCache.get: key", true)
  raises(function() fc:set("k", 1, nil, {bogus = 1}) end, "FanoutCache.set: opts: unknown option 'bogus'", true)
end)

test("unknown option names are errors for every method that takes options", function(dir)
  local c = tiercache.Cache(dir)
  c:set("k", 1)
  c:push(1)
  local calls = {
    {"set", function(o) return c:set("k", 1, nil, o) end},
    {"add", function(o) return c:add("k2", 1, nil, o) end},
    {"get", function(o) return c:get("k", nil, o) end},
    {"pop", function(o) return c:pop("k", nil, o) end},
    {"delete", function(o) return c:delete("k", o) end},
    {"touch", function(o) return c:touch("k", nil, o) end},
    {"incr", function(o) return c:incr("n", 1, 0, o) end},
    {"decr", function(o) return c:decr("n", 1, 0, o) end},
    {"push", function(o) return c:push(1, o) end},
    {"pull", function(o) return c:pull(o) end},
    {"peek", function(o) return c:peek(o) end},
    {"peekitem", function(o) return c:peekitem(true, o) end},
    {"memoize", function(o) return c:memoize("m", nil, o) end},
  }
  for _, t in ipairs(calls) do
    raises(function() t[2]({bogus_option = true}) end,
           "Cache." .. t[1] .. ": opts: unknown option 'bogus_option'", true)
    -- diskcache's names that are not options of this method
    raises(function() t[2]({expire_time = true, read = true, prefix = "p", typed = true}) end,
           "Cache." .. t[1] .. ": opts: unknown option", true)
  end
  eq(c:get("k"), 1, "nothing changed")
  eq(#c, 2)
end)

test("unknown setting names are errors at open", function(dir)
  for _, ctor in ipairs({"Cache", "FanoutCache"}) do
    local e = raises(function() tiercache[ctor](dir .. "/" .. ctor, {size_limt = 1000}) end,
                     "size_limt", true)
    ok(tostring(e):find(ctor, 1, true), tostring(e))
    raises(function() tiercache[ctor](dir .. "/" .. ctor, {Statistics = 1}) end, "Statistics", true)
    raises(function() tiercache[ctor](dir .. "/" .. ctor, {foo_custom = 7}) end, "foo_custom", true)
  end
  raises(function() tiercache.DjangoCache(dir .. "/dj", {OPTIONS = {cull_limt = 1}}) end,
         "cull_limt", true)
  -- bad timeouts are refused, not silently replaced by the default
  for _, bad in ipairs({-1, 0 / 0, 1e9, "1"}) do
    raises(function() tiercache.Cache(dir .. "/t", {timeout = bad}) end, "Cache: settings: timeout")
    raises(function() tiercache.FanoutCache(dir .. "/tf", {timeout = bad}) end, "timeout")
    raises(function() tiercache.DjangoCache(dir .. "/td", {DATABASE_TIMEOUT = bad}) end,
           "DjangoCache: DATABASE_TIMEOUT")
  end
end)

test("a Cache raises a Timeout error object on a busy database", function(dir)
  local holder = tiercache.Cache(dir)
  local c = tiercache.Cache(dir, {timeout = 0.05})
  c:set("a", 1)
  c:push("q")
  local errs, took = {}, nil
  holder:transact(function()
    holder:set("held", 1)
    local t0 = tiercache.now()
    local okc, e = pcall(c.set, c, "a", 2)
    took = tiercache.now() - t0
    errs.set = {okc, e}
    for name, f in pairs({
      add = function() return c:add("new", 1) end,
      delete = function() return c:delete("a") end,
      touch = function() return c:touch("a", 10) end,
      incr = function() return c:incr("n") end,
      pop = function() return c:pop("a") end,
      push = function() return c:push("x") end,
      pull = function() return c:pull() end,
      clear = function() return c:clear() end,
      evict = function() return c:evict("t") end,
      transact = function() return c:transact(function() end) end,
    }) do
      errs[name] = {pcall(f)}
    end
    errs.get = {pcall(c.get, c, "a")} -- WAL: a reader is not blocked
  end)
  local okc, e = errs.set[1], errs.set[2]
  eq(okc, false)
  eq(type(e), "table", "an error object")
  eq(e.code, "Timeout")
  eq(type(e.message), "string")
  local s = tostring(e)
  eq(type(s), "string")
  ok(not s:find("^table:"), "tostring is readable: " .. s)
  ok(s:find("Cache.set", 1, true), "names the method: " .. s)
  eq(s, e.message)
  ok(took >= 0.04, "waited the timeout: " .. took)
  ok(took < 5, "and not the 60 s default: " .. took)
  for name, r in pairs(errs) do
    if name ~= "get" and name ~= "set" then
      eq(r[1], false, name .. " raises")
      eq(type(r[2]) == "table" and r[2].code, "Timeout", name .. ": " .. tostring(r[2]))
      ok(tostring(r[2]):find("Cache." .. name, 1, true), tostring(r[2]))
    end
  end
  eq(errs.get[1], true)
  eq(errs.get[2], 1)
  -- nothing was changed
  eq(c:get("a"), 1)
  eq(c:contains("new"), false)
  eq(c:get("held"), 1)
  eq(select(2, c:peek()), "q")
  -- the error objects share a metatable; the message is not a "file:line:" string
  eq(getmetatable(e), getmetatable(errs.add[2]))
end)

test("a FanoutCache swallows the Timeout: false, nil or the default", function(dir)
  local holder = tiercache.FanoutCache(dir, {shards = 2})
  local fc = tiercache.FanoutCache(dir, {timeout = 0.05})
  fc:set("a", 1)
  local r = {}
  holder:transact(function()
    holder:set("held", 1)
    r.set = {fc:set("a", 2)}
    r.add = {fc:add("b", 2)}
    r.delete = {fc:delete("a")}
    r.touch = {fc:touch("a", 5)}
    r.incr = {n = select("#", fc:incr("n")), fc:incr("n")}
    r.pop = {fc:pop("a", "dflt")}
    r.pop_extras = {fc:pop("a", "d", {tag = true})}
  end)
  eq(r.set[1], false)
  eq(r.add[1], false)
  eq(r.delete[1], false)
  eq(r.touch[1], false)
  eq(r.incr.n, 1)
  eq(r.incr[1], nil)
  eq(r.pop[1], "dflt")
  eq(r.pop_extras[1], "d")
  eq(fc:get("a"), 1, "unchanged")
  eq(fc:contains("n"), false)
  -- a Cache in the same situation raises (the contrast)
  local c = tiercache.Cache(dir .. "/plain", {timeout = 0.05})
  local h2 = tiercache.Cache(dir .. "/plain")
  h2:transact(function()
    h2:set("x", 1)
    local e = raises(function() c:set("y", 1) end)
    eq(e.code, "Timeout")
  end)
end)

test("open errors are error objects with a code and a readable message", function(dir)
  H.write_file(dir .. "/file", "not a directory")
  local okc, e = pcall(tiercache.Cache, dir .. "/file/sub")
  eq(okc, false)
  ok(tostring(e):find("cannot open", 1, true), tostring(e))
  ok(tostring(e):find(dir .. "/file/sub", 1, true), "names the directory: " .. tostring(e))
  if type(e) == "table" then
    eq(type(e.code), "string")
    ok(e.code ~= "Timeout")
  end
  -- a file that is not a database
  os.execute("mkdir -p " .. H.q(dir .. "/bad"))
  H.write_file(dir .. "/bad/cache.db", string.rep("this is not SQLite ", 500))
  okc, e = pcall(tiercache.Cache, dir .. "/bad")
  eq(okc, false)
  eq(type(e), "table")
  ok(e.code ~= "Timeout" and type(e.code) == "string", tostring(e.code))
  ok(tostring(e):find("cannot open", 1, true), tostring(e))
end)

test("errors from a closed cache and from wrong self", function(dir)
  local c = tiercache.Cache(dir)
  c:close()
  local e = raises(function() c:get("k") end, "Cache.get: cache is closed", true)
  eq(type(e), "string")
  raises(function() tiercache.Cache(dir).get(5, "k") end, "expected a cache object", true)
  raises(function() tiercache.Cache(dir).get(io.stdout, "k") end, "use ':'", true)
end)

H.run()
