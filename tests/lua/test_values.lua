-- test_values.lua - the spec's value table: what each Lua value is stored as,
-- what comes back, file-backed values, file handles, and python-diskcache
-- reading what Lua wrote and the other way round.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "harness"
local tiercache = H.tiercache
local test, eq, ok, raises, deep_eq = H.test, H.eq, H.ok, H.raises, H.deep_eq

-- The SQLite row of a text key: typeof(value), mode, filename.
local function row(dir, key, db)
  local sql = string.format("select typeof(value), mode, ifnull(filename, '') from Cache " ..
                            "where key = '%s' and raw = 1", key)
  local out = H.sqlite((db or dir .. "/cache.db"), sql)
  local t, mode, file = out:match("^([^|]*)|([^|]*)|(.*)$")
  return t, tonumber(mode), file
end

local function vals(dir)
  local n = 0
  for _, f in ipairs(H.files(dir)) do
    if f:match("%.val$") then n = n + 1 end
  end
  return n
end

-- ---- strings -------------------------------------------------------------------

local valid = {
  ascii = "hello",
  empty = "",
  nul = "a\0b",
  two = "caf\195\169",                  -- é
  three = "\226\130\172",               -- €
  four = "\240\159\152\128",            -- U+1F600
  maxcp = "\244\143\191\191",           -- U+10FFFF
}
local invalid = {
  surrogate_hi = "\237\160\128",        -- U+D800 as UTF-8 (CESU)
  surrogate_lo = "\237\191\191",        -- U+DFFF
  overlong_slash = "\192\175",          -- '/' in two bytes
  overlong_nul = "\192\128",            -- modified UTF-8 NUL
  overlong_three = "\224\128\175",
  overlong_four = "\240\128\128\175",
  too_big = "\244\144\128\128",         -- U+110000
  lone_cont = "a\128b",
  truncated = "caf\195",
  ff = "\255",
  fe = "\254\254",
}

test("valid UTF-8 strings are TEXT, others BLOB, all come back identical", function(dir)
  local c = tiercache.Cache(dir)
  for name, s in pairs(valid) do
    c:set(name, s)
    eq(c:get(name), s, name)
    eq((row(dir, name)), "text", name .. " stored as TEXT")
  end
  for name, s in pairs(invalid) do
    c:set(name, s)
    eq(c:get(name), s, name)
    eq((row(dir, name)), "blob", name .. " stored as BLOB")
  end
end)

test("string keys: valid UTF-8 is a TEXT key, other bytes a BLOB key", function(dir)
  local c = tiercache.Cache(dir)
  c:set("t\195\169", 1)
  c:set("\192\175", 2)
  c:set("\237\160\128", 3)
  eq(H.sqlite(dir .. "/cache.db", "select typeof(key) from Cache order by rowid"),
     "text\nblob\nblob")
  eq(c:get("t\195\169"), 1)
  eq(c:get("\192\175"), 2)
  eq(c:get("\237\160\128"), 3)
  deep_eq(H.list(c:keys()), {"t\195\169", "\192\175", "\237\160\128"})
end)

-- ---- numbers -------------------------------------------------------------------

test("integers are INTEGER, floats REAL, with their subtype kept", function(dir)
  local c = tiercache.Cache(dir)
  local cases = {
    {"zero", 0, "integer"}, {"neg", -42, "integer"},
    {"i53", H.is54 and math.tointeger(2 ^ 53) or 2 ^ 53, "integer"},
    {"half", 0.5, "real"}, {"pi", math.pi, "real"}, {"negf", -1.25e-300, "real"},
    {"inf", math.huge, "real"}, {"ninf", -math.huge, "real"},
  }
  for _, t in ipairs(cases) do
    c:set(t[1], t[2])
    eq(c:get(t[1]), t[2], t[1])
    if t[3] then eq((row(dir, t[1])), t[3], t[1]) end
  end
  c:set("negz", -0.0)
  eq(1 / c:get("negz"), -math.huge, "-0.0 keeps its sign")
  if H.is54 then
    c:set("three", 3.0)
    eq(math.type(c:get("three")), "float", "3.0 stays a float under 5.4")
    eq((row(dir, "three")), "real")
    c:set("max", math.maxinteger)
    c:set("min", math.mininteger)
    eq(c:get("max"), math.maxinteger)
    eq(c:get("min"), math.mininteger)
    eq((row(dir, "max")), "integer")
    eq(math.type(c:get("zero")), "integer")
    eq(math.type(c:get("half")), "float")
    -- integer and float keys: 1 and 1.0 are one key inside a cache
    c:set(7, "seven")
    eq(c:get(7.0), "seven")
    c:set(2.5, "f")
    eq(c:get(2.5), "f")
    eq(H.sqlite(dir .. "/cache.db", "select typeof(key) from Cache where key = 2.5"), "real")
  else
    -- LuaJIT: an integral number within +-2^53 is an integer
    c:set("three", 3.0)
    eq((row(dir, "three")), "integer", "3.0 is the integer 3 under LuaJIT")
    c:set("huge", 2 ^ 60)
    eq((row(dir, "huge")), "real", "beyond 2^53 it is a float")
    eq(c:get("huge"), 2 ^ 60)
  end
end)

test("a NaN value round-trips; a NaN key is an error", function(dir)
  local c = tiercache.Cache(dir)
  local nan = 0 / 0
  eq(c:set("nan", nan), true)
  local v = c:get("nan")
  eq(type(v), "number")
  ok(v ~= v, "NaN comes back as NaN, got " .. tostring(v))
  eq((row(dir, "nan")), "blob", "stored as MessagePack, not a NULL REAL")
  local e = raises(function() c:set(nan, 1) end, "NaN")
  ok(tostring(e):find("Cache.set: key", 1, true), tostring(e))
  raises(function() c:get(nan) end, "Cache.get: key.*NaN")
  raises(function() c:set("k", 1, nil, {tag = nan}) end, "Cache.set: tag")
end)

-- ---- booleans and tables -------------------------------------------------------

test("booleans round-trip; false is a value, not a miss", function(dir)
  local c = tiercache.Cache(dir)
  c:set("t", true)
  c:set("f", false)
  eq(c:get("t"), true)
  eq(c:get("f"), false)
  eq(c:get("f", "default"), false, "a stored false is not the default")
  eq(c:get("f", "d", {expire_time = true}), false)
  eq(c:pop("f", "d"), false)
  eq(c:get("f", "d"), "d")
  eq((row(dir, "t")), "blob")
  eq(H.sqlite(dir .. "/cache.db", "select mode from Cache where key = 't'"), "16",
     "tiercache's own value mode")
end)

test("nested tables with negative, float and boolean keys round-trip", function(dir)
  local c = tiercache.Cache(dir)
  local v = {
    1, 2, "three", 4.5, true, false,
    [-1] = "neg", [0] = "zero", [1.5] = "float", [-2.25] = "negf",
    [true] = "t", [false] = "f",
    [100] = "sparse", [2 ^ 40] = "big",
    name = "caf\195\169", bytes = "\255\0\254",
    nested = {a = {b = {c = {d = {}}}}, list = {{}, {1}, {{2}}}},
    empty = {},
    nums = {i = 3, f = 3.5, n = -0.125, big = 2 ^ 53},
  }
  if H.is54 then
    v.nums.fl = 3.0 -- stays a float
    v.nums.max = math.maxinteger
    v.nums.min = math.mininteger
  end
  c:set("t", v)
  deep_eq(c:get("t"), v)
  -- the same through a file-backed value
  v.blob = string.rep("x", 40000)
  c:set("big", v)
  deep_eq(c:get("big"), v)
  eq((row(dir, "big")), "null", "file-backed")
  -- shared subtables are not cycles
  local shared = {1, 2}
  c:set("dag", {a = shared, b = shared, {shared}})
  deep_eq(c:get("dag"), {a = {1, 2}, b = {1, 2}, {{1, 2}}})
end)

test("tables nest up to the codec's limit; deeper is an error", function(dir)
  local c = tiercache.Cache(dir)
  local deep = {}
  local t = deep
  for _ = 1, 100 do
    t[1] = {}
    t = t[1]
  end
  c:set("d", deep)
  deep_eq(c:get("d"), deep)
  for _ = 1, 200 do
    t[1] = {}
    t = t[1]
  end
  raises(function() c:set("d2", deep) end, "Cache.set: value")
end)

test("cycles, functions, coroutines, userdata and nil are errors naming the method", function(dir)
  local c = tiercache.Cache(dir)
  local cyc = {}
  cyc.self = cyc
  local e = raises(function() c:set("k", cyc) end, "Cache.set: value")
  ok(tostring(e):find("cycl", 1, true), tostring(e))
  local cyc2 = {a = {b = {}}}
  cyc2.a.b.c = cyc2.a
  raises(function() c:add("k", cyc2) end, "Cache.add: value.*cycl")
  raises(function() c:set("k", print) end, "Cache.set: value.*function")
  raises(function() c:set("k", function() end) end, "Cache.set: value.*function")
  raises(function() c:set("k", coroutine.create(print)) end, "Cache.set: value.*thread")
  raises(function() c:set("k", {co = coroutine.create(print)}) end, "Cache.set: value")
  raises(function() c:set("k", {f = print}) end, "Cache.set: value.*function")
  raises(function() c:set("k", {[print] = 1}) end, "Cache.set: value")
  raises(function() c:set("k", {[{}] = 1}) end, "Cache.set: value")
  raises(function() c:set("k", c) end, "Cache.set: value.*userdata")
  raises(function() c:set("k", io.stdout) end, "Cache.set: value")
  raises(function() c:set("k", nil) end, "Cache.set: value.*nil")
  raises(function() c:set("k") end, "Cache.set: value.*nil")
  raises(function() c:push(nil) end, "Cache.push: value")
  raises(function() c:push(print) end, "Cache.push: value")
  raises(function() c:set({}, 1) end, "Cache.set: key")
  raises(function() c:set(true, 1) end, "Cache.set: key")
  raises(function() c:get(nil) end, "Cache.get: key")
  raises(function() c:set("k", 1, nil, {tag = {}}) end, "Cache.set: tag")
  raises(function() c:set("k", 1, nil, {tag = true}) end, "Cache.set: tag")
  eq(#c, 0, "nothing was stored")
end)

-- ---- large values --------------------------------------------------------------

test("strings at or above 32768 bytes are file-backed and round-trip", function(dir)
  local c = tiercache.Cache(dir)
  local below = string.rep("a", 32767)
  local at = string.rep("b", 32768)
  local bin = string.rep("\255\0", 30000)
  local text = string.rep("caf\195\169 ", 10000)
  c:set("below", below)
  eq(vals(dir), 0, "32767 bytes stay inline")
  eq((row(dir, "below")), "text")
  c:set("at", at)
  eq(vals(dir), 1, "32768 bytes go to a file")
  c:set("bin", bin)
  c:set("text", text)
  eq(vals(dir), 3)
  eq(c:get("below"), below)
  eq(c:get("at"), at)
  eq(c:get("bin"), bin)
  eq(c:get("text"), text)
  local t, mode, file = row(dir, "at")
  eq(t, "null")
  eq(mode, 3, "a valid UTF-8 string is a text file (python str)")
  ok(file:match("^%x%x/%x%x/%x+%.val$"), "diskcache's file name: " .. file)
  eq(#file:match("([^/]+)%.val$"), 28)
  eq(H.read_file(dir .. "/" .. file), at, "the file holds the bytes")
  t, mode = row(dir, "bin")
  eq(mode, 2, "other bytes are a binary file")
  -- a replaced or deleted value removes its file
  c:set("at", "small")
  eq(vals(dir), 2)
  c:delete("bin")
  eq(vals(dir), 1)
  eq(c:pop("text"), text)
  eq(vals(dir), 0)
  -- disk_min_file_size moves the threshold
  local c2 = tiercache.Cache(dir .. "/small", {disk_min_file_size = 100})
  c2:set("x", string.rep("x", 100))
  eq(vals(dir .. "/small"), 1)
end)

test("set with a file handle and read = true stores its contents", function(dir)
  local c = tiercache.Cache(dir)
  local path = dir .. "/in.bin"
  local data = string.rep("\0\1\2\255", 20000)
  H.write_file(path, data)
  local fh = assert(io.open(path, "rb"))
  eq(c:set("f", fh, nil, {read = true}), true)
  fh:close()
  eq(c:get("f"), data)
  local _, mode = row(dir, "f")
  eq(mode, 2, "a binary file")
  -- small contents are file-backed too (diskcache: read=True is always a file)
  H.write_file(path, "tiny")
  fh = assert(io.open(path, "rb"))
  c:set("tiny", fh, 100, {read = true, tag = "ft"})
  fh:close()
  local v, e, t = c:get("tiny", nil, {expire_time = true, tag = true})
  eq(v, "tiny")
  ok(e ~= nil)
  eq(t, "ft")
  eq(select(2, row(dir, "tiny")), 2)
  -- from where the handle is: a partly read handle stores the rest
  H.write_file(path, "0123456789" .. string.rep("z", 10000))
  fh = assert(io.open(path, "rb"))
  eq(fh:read(10), "0123456789")
  c:set("rest", fh, nil, {read = true})
  fh:close()
  eq(c:get("rest"), string.rep("z", 10000))
  -- push: a file-backed value whatever its size, with expire and tag
  H.write_file(dir .. "/q.bin", "queued")
  fh = assert(io.open(dir .. "/q.bin", "rb"))
  local qk = c:push(fh, {read = true, prefix = "fq", expire = 100, tag = "qt"})
  fh:close()
  eq(qk, "fq-500000000000000")
  eq(select(2, row(dir, qk)), 2, "pushed as a binary file")
  local k2, v2, e2, t2 = c:pull({prefix = "fq", expire_time = true, tag = true})
  eq(k2, qk)
  eq(v2, "queued")
  ok(e2 and e2 > tiercache.now() + 90)
  eq(t2, "qt")
  -- a pipe
  local pipe = assert(io.popen("printf 'piped data'", "r"))
  eq(c:set("pipe", pipe, nil, {read = true}), true)
  pipe:close()
  eq(c:get("pipe"), "piped data")
  -- add with a handle
  fh = assert(io.open(path, "rb"))
  eq(c:add("rest", fh, nil, {read = true}), false, "add: key exists")
  eq(c:add("new", fh, nil, {read = true}), true)
  fh:close()
  eq(c:get("new"), "0123456789" .. string.rep("z", 10000))
  -- misuse
  raises(function() c:set("x", "not a file", nil, {read = true}) end, "Cache.set: value")
  -- a closed handle is refused
  raises(function() c:set("x", fh, nil, {read = true}) end, "Cache.set: value")
  fh = assert(io.open(path, "rb"))
  -- a handle without read = true
  raises(function() c:set("x", fh) end, "Cache.set: value.*userdata")
  fh:close()
end)

test("read() gives a handle for inline and file-backed values", function(dir)
  local c = tiercache.Cache(dir)
  local big = string.rep("B", 50000)
  c:set("small", "s\0mall")
  c:set("big", big)
  c:set("num", 42)
  local fh = c:read("small")
  eq(io.type(fh), "file")
  eq(fh:read("*a"), "s\0mall")
  fh:close()
  fh = c:read("big")
  eq(fh:read(5), "BBBBB", "positioned at the start")
  eq(#fh:read("*a"), 49995)
  fh:close()
  fh = c:get("big", nil, {read = true})
  eq(fh:read("*a"), big)
  fh:close()
  eq(c:read("missing"), nil)
  -- the handle stays valid after the value is deleted (a file-backed value)
  fh = c:read("big")
  c:delete("big")
  eq(#fh:read("*a"), 50000)
  fh:close()
  fh = c:read("num")
  eq(io.type(fh), "file", "any existing key has a handle")
  fh:close()
  -- many handles do not leak descriptors
  for _ = 1, 300 do c:read("small"):close() end
  for _ = 1, 300 do c:get("small", nil, {read = true}):close() end
end)

test("tags: strings and integers are stored as given", function(dir)
  local c = tiercache.Cache(dir)
  c:set("a", 1, nil, {tag = "text"})
  c:set("b", 1, nil, {tag = 17})
  c:set("c", 1, nil, {tag = "\255bin"})
  c:set("d", 1, nil, {tag = 2.5})
  eq(H.sqlite(dir .. "/cache.db", "select typeof(tag) from Cache order by rowid"),
     "text\ninteger\nblob\nreal")
  eq(select(2, c:get("a", nil, {tag = true})), "text")
  eq(select(2, c:get("b", nil, {tag = true})), 17)
  eq(select(2, c:get("c", nil, {tag = true})), "\255bin")
  eq(select(2, c:get("d", nil, {tag = true})), 2.5)
  eq(c:evict(17), 1)
  eq(c:evict("\255bin"), 1)
  eq(c:evict(2.5), 1)
end)

-- ---- python-diskcache interop --------------------------------------------------

test("python-diskcache reads what Lua wrote", function(dir)
  if not H.have_diskcache() then return end
  local c = tiercache.Cache(dir)
  c:set("text", "caf\195\169")
  c:set("bytes", "\255\0\1")
  c:set("int", 1234567890123)
  c:set("neg", -7)
  c:set("float", 2.5)
  c:set("bigtext", string.rep("\226\130\172", 20000))
  c:set("bigbytes", string.rep("\255", 40000))
  c:set("tagged", "v", 3600, {tag = "tg"})
  c:set(42, "int key")
  c:set("\254k", "blob key")
  local out, good = H.py(string.format([[
import diskcache, sys
c = diskcache.Cache(%q)
def show(k):
    print(repr(c.get(k)))
for k in ["text", "bytes", "int", "neg", "float"]:
    show(k)
v = c.get("bigtext"); print(type(v).__name__, len(v), v[:2] == "\u20ac\u20ac")
v = c.get("bigbytes"); print(type(v).__name__, len(v), v == b"\xff" * 40000)
v, e, t = c.get("tagged", expire_time=True, tag=True); print(v, t, e is not None)
print(repr(c.get(42)), repr(c.get(b"\xfek")))
print(len(c), c.check())
]], dir))
  ok(good, "python failed: " .. out)
  eq(out, table.concat({
    "'café'", "b'\\xff\\x00\\x01'", "1234567890123", "-7", "2.5",
    "str 20000 True", "bytes 40000 True", "v tg True", "'int key' 'blob key'", "10 []", ""}, "\n"))
end)

test("Lua reads what python-diskcache wrote", function(dir)
  if not H.have_diskcache() then return end
  local out, good = H.py(string.format([[
import diskcache
c = diskcache.Cache(%q)
c.set("text", "na\u00efve")
c.set("bytes", b"\x00\xff")
c.set("int", -(2**40))
c.set("float", 0.1)
c.set("bigtext", "\u00e9" * 40000)
c.set("bigbytes", b"\x01" * 50000)
c.set("tagged", 1, expire=3600, tag="tg")
c.set("itag", 1, tag=9)
c.set(-5, "five")
c.set(-1.5, "onehalf")
c.set(b"\xfe", "blobkey")
c.push("q1"); c.push("q2", prefix="p")
print("done")
]], dir))
  ok(good and out == "done\n", "python failed: " .. out)
  local c = tiercache.Cache(dir)
  eq(c:get("text"), "na\195\175ve")
  eq(c:get("bytes"), "\0\255")
  eq(c:get("int"), H.is54 and math.tointeger(-(2 ^ 40)) or -(2 ^ 40))
  if H.is54 then eq(math.type(c:get("int")), "integer") end
  eq(c:get("float"), 0.1)
  eq(c:get("bigtext"), string.rep("\195\169", 40000))
  eq(c:get("bigbytes"), string.rep("\1", 50000))
  local v, e, t = c:get("tagged", nil, {expire_time = true, tag = true})
  eq(v, 1)
  ok(e and e > tiercache.now() + 3000)
  eq(t, "tg")
  eq(select(2, c:get("itag", nil, {tag = true})), 9)
  eq(c:get(-5), "five")
  eq(c:get(-1.5), "onehalf")
  eq(c:get("\254"), "blobkey")
  local k, qv = c:pull()
  eq(k, 500000000000000)
  eq(qv, "q1")
  k, qv = c:pull({prefix = "p"})
  eq(k, "p-500000000000000")
  eq(qv, "q2")
  eq(#c, 11)
  deep_eq(c:check(), {})
  -- and python still reads it after Lua wrote more
  c:set("fromlua", "x")
  c:close()
  local out2 = H.py(string.format("import diskcache\nc = diskcache.Cache(%q)\nprint(c.get('fromlua'), len(c))\n", dir))
  eq(out2, "x 12\n")
end)

test("python reads a table value as None (tiercache's own mode), Lua keeps it", function(dir)
  if not H.have_diskcache() then return end
  local c = tiercache.Cache(dir)
  c:set("t", {1, 2})
  c:set("s", "s")
  local out = H.py(string.format("import diskcache\nc = diskcache.Cache(%q)\nprint(c.get('s'), c.get('t'))\n", dir))
  eq(out, "s None\n")
  deep_eq(c:get("t"), {1, 2})
end)

test("python pickles: values raise EUNSUPPORTED, pickled keys are skipped", function(dir)
  if not H.have_diskcache() then return end
  local out, good = H.py(string.format([[
import diskcache
c = diskcache.Cache(%q)
c.set("tuple", (1, 2))
c.set(("a", 1), "under a tuple key")
c.set("s", "plain")
print("done")
]], dir))
  ok(good and out == "done\n", "python failed: " .. out)
  local c = tiercache.Cache(dir)
  local e = raises(function() c:get("tuple") end, "Cache.get")
  eq(type(e), "table")
  eq(e.code, "EUNSUPPORTED")
  ok(tostring(e):find("pickle", 1, true), tostring(e))
  e = raises(function() c:pop("tuple") end, "Cache.pop")
  eq(e.code, "EUNSUPPORTED")
  eq(c:contains("tuple"), true, "a failed pop removes nothing")
  H.deep_eq(H.list(c:keys()), {"tuple", "s"}, "the pickled key is skipped")
  eq(#c, 3)
  eq(c:get("s"), "plain")
end)

H.run()
