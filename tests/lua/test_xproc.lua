-- test_xproc.lua - two Lua processes share one directory: each sees the
-- other's writes (through SQLite and the shared-memory hot tier).
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "harness"
local tiercache = H.tiercache
local test, eq, ok = H.test, H.eq, H.ok

local wait_for = H.wait_for

-- The child: open the same cache, wait for the parent's "go", check the
-- parent's keys, write its own, answer "done".
local CHILD = [[
local tiercache = require "tiercache"
local kind, dir, n = arg[1], arg[2], tonumber(arg[3])
local c = tiercache[kind](dir)
local deadline = tiercache.now() + 30
while not c:get("go") do
  if tiercache.now() > deadline then io.write("no go\n") os.exit(1) end
  os.execute("sleep 0.02")
end
local seen, sum = 0, 0
for i = 1, n do
  local v = c:get("parent:" .. i)
  if v then seen = seen + 1 sum = sum + v end
end
for i = 1, n do c:set("child:" .. i, i * 10) end
c:set("child:seen", seen)
c:set("child:sum", sum)
c:set("child:table", {from = "child", list = {1, 2, 3}})
c:set("child:big", string.rep("c", 100000))
c:set("done", true)
io.write("child ok ", seen, "\n")
]]

local function handshake(dir, kind)
  local script = dir .. "/child.lua"
  H.write_file(script, CHILD)
  local c = tiercache[kind](dir .. "/cache")
  local n = 50
  local p = assert(io.popen(H.child(script, kind, dir .. "/cache", n), "r"))
  for i = 1, n do c:set("parent:" .. i, i) end
  c:set("go", 1)
  wait_for("the child's done", function() return c:get("done") end)
  local out = p:read("*a")
  p:close()
  eq(out, "child ok " .. n .. "\n", "the child saw every parent key")
  eq(c:get("child:seen"), n)
  local sum = 0
  for i = 1, n do sum = sum + i end
  eq(c:get("child:sum"), sum)
  for i = 1, n do eq(c:get("child:" .. i), i * 10) end
  H.deep_eq(c:get("child:table"), {from = "child", list = {1, 2, 3}})
  eq(c:get("child:big"), string.rep("c", 100000))
  eq(#c, 2 * n + 6)
end

test("Cache: two processes see each other's writes", function(dir)
  handshake(dir, "Cache")
end)

test("FanoutCache: two processes see each other's writes", function(dir)
  handshake(dir, "FanoutCache")
end)

-- The child changes keys the parent has read (so they sit in the hot tier).
local CHANGER = [[
local tiercache = require "tiercache"
local c = tiercache.Cache(arg[1])
c:set("x", "new")
c:delete("gone")
c:set("later", "expires", -1)
c:incr("n", 5)
c:touch("t", 1000)
io.write("changed\n")
]]

test("writes of another process invalidate what this one has read", function(dir)
  local c = tiercache.Cache(dir .. "/cache", {cull_limit = 0})
  c:set("x", "old")
  c:set("gone", "here")
  c:set("later", "live")
  c:set("n", 1)
  c:set("t", 1)
  for _ = 1, 3 do -- read them, more than once, so the hot tier holds them
    eq(c:get("x"), "old")
    eq(c:get("gone"), "here")
    eq(c:get("later"), "live")
    eq(c:get("n"), 1)
  end
  H.write_file(dir .. "/changer.lua", CHANGER)
  local out, good = H.sh(H.child(dir .. "/changer.lua", dir .. "/cache"))
  ok(good and out == "changed\n", "child: " .. out)
  eq(c:get("x"), "new")
  eq(c:get("gone"), nil)
  eq(c:get("later"), nil, "expired by the other process")
  eq(c:get("n"), 6)
  local _, e = c:get("t", nil, {expire_time = true})
  ok(e and e > tiercache.now() + 900, "touch seen")
end)

-- Both processes increment one counter at once.
local INCR = [[
local tiercache = require "tiercache"
local c = tiercache.Cache(arg[1])
local n = tonumber(arg[2])
while not c:get("start") do os.execute("sleep 0.01") end
for _ = 1, n do c:incr("counter", 1, 0, {retry = true}) end
io.write("incremented\n")
]]

test("concurrent incr from two processes loses nothing", function(dir)
  local c = tiercache.Cache(dir .. "/cache")
  H.write_file(dir .. "/incr.lua", INCR)
  local n = 300
  local p = assert(io.popen(H.child(dir .. "/incr.lua", dir .. "/cache", n), "r"))
  c:set("start", true)
  for _ = 1, n do c:incr("counter", 1, 0, {retry = true}) end
  local out = p:read("*a")
  p:close()
  eq(out, "incremented\n")
  eq(c:get("counter"), 2 * n)
end)

-- The other interpreter (LuaJIT when this is Lua 5.4 and the other way
-- round), when it and its build of the module are there.
local function other_interpreter()
  local name = H.is54 and "luajit" or "lua5.4"
  local from, to = "/lua54/", "/luajit/"
  if not H.is54 then from, to = to, from end
  local cpath = package.cpath:gsub(from, to)
  if cpath == package.cpath then return nil end
  local found = false
  for pat in cpath:gmatch("[^;]+") do
    if H.read_file((pat:gsub("%?", "tiercache"))) then found = true break end
  end
  local path = H.sh("command -v " .. name):match("[^\n]+")
  if not found or not path then return nil end
  return path, cpath
end

local OTHER = [[
local tiercache = require "tiercache"
local c = tiercache.Cache(arg[1])
local f = c:memoize("x")(function(...) return "other" end)
f(1, "a", {x = 1, y = {true, false}}, 2.5)
c:set("o:int", 42)
c:set("o:float", 0.25)
c:set("o:text", "caf\195\169")
c:set("o:table", {1, 2.5, "s", k = {true}})
local t = c:get("p:table")
io.write(c:get("p:int"), " ", c:get("p:float"), " ", c:get("p:text"), " ",
         t.list[3], " ", tostring(t.flag), "\n")
]]

test("Lua 5.4 and LuaJIT processes share a cache (values and memoize keys)", function(dir)
  local interp, cpath = other_interpreter()
  if not interp then
    print("      skipped: the other interpreter or its module build is not here")
    return
  end
  local c = tiercache.Cache(dir .. "/cache")
  c:set("p:int", 7)
  c:set("p:float", 1.5)
  c:set("p:text", "na\195\175ve")
  c:set("p:table", {list = {1, 2, 3}, flag = true})
  H.write_file(dir .. "/other.lua", OTHER)
  local cmd = "env LUA_PATH=" .. H.q(package.path) .. " LUA_CPATH=" .. H.q(cpath) .. " " ..
              H.q(interp) .. " " .. H.q(dir .. "/other.lua") .. " " .. H.q(dir .. "/cache")
  local out, good = H.sh(cmd)
  ok(good, "the other interpreter failed: " .. out)
  eq(out, "7 1.5 na\195\175ve 3 true\n")
  eq(c:get("o:int"), 42)
  eq(c:get("o:float"), 0.25)
  eq(c:get("o:text"), "caf\195\169")
  H.deep_eq(c:get("o:table"), {1, 2.5, "s", k = {true}})
  local calls = 0
  local f = c:memoize("x")(function() calls = calls + 1 return "mine" end)
  eq(f(1, "a", {y = {true, false}, x = 1}, 2.5), "other", "the other interpreter's memoize key")
  eq(calls, 0)
end)

H.run()
