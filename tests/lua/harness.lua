-- harness.lua - a tiny test harness for the tiercache Lua module.
--
-- Runs unchanged under Lua 5.4 and LuaJIT 2.1:
--
--   local H = require "harness"
--   H.test("set then get", function(dir) ... end)   -- dir: a fresh, empty directory
--   H.run()                                          -- summary line, exit status
--
-- Every test gets its own directory under $TMPDIR (or /tmp), removed after the
-- test together with the hot-tier segments of the caches made in it (they are
-- named after the directory's device and inode, so nothing else is touched).
-- TEST_FILTER=pattern runs only the tests whose names match; TEST_KEEP=1
-- keeps the directories.
local H = {}

H.tiercache = require "tiercache"

-- Which get path this run tests (tests/lua/meson.build sets it): the
-- LuaJIT FFI fast path, or the C method everywhere else.
local expect_ffi = os.getenv("TIERCACHE_EXPECT_FFI")
if expect_ffi and (H.tiercache._FFI and "1" or "0") ~= expect_ffi then
    io.stderr:write("harness: tiercache._FFI is " .. tostring(H.tiercache._FFI) ..
                    ", this run expects " .. expect_ffi .. "\n")
    os.exit(1)
end
H.is54 = math.type ~= nil -- Lua 5.4 has an integer subtype, LuaJIT does not

-- The interpreter running us, to start children with the same module.
local i = -1
while arg and arg[i - 1] do
  i = i - 1
end
H.interp = arg and arg[i] or "lua"
H.python = "/usr/bin/python3" -- the one with python3-diskcache

local function q(s) -- a shell word
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.q = q

-- sh(cmd): the command's whole stdout, and whether it exited 0. (LuaJIT's
-- popen close does not report the status, so the shell echoes it.)
function H.sh(cmd)
  local p = assert(io.popen("{ " .. cmd .. "\n}; echo \"__rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.*)__rc=(%d+)\n?$")
  if not body then return out, false end
  return body, rc == "0"
end

function H.sleep(s)
  os.execute("sleep " .. string.format("%.3f", s))
end

-- A child interpreter command with this process's module search paths:
-- child(script_path, args...) -> a shell command string.
function H.child(script, ...)
  local words = {"env", "LUA_PATH=" .. q(package.path), "LUA_CPATH=" .. q(package.cpath),
                 q(H.interp), q(script)}
  for _, a in ipairs({...}) do
    words[#words + 1] = q(a)
  end
  return table.concat(words, " ")
end

-- wait_for(what, fn): poll fn() every 20 ms until it returns a true value
-- (returned) or H.WAIT seconds pass (a failure naming @what).
H.WAIT = 30 -- seconds: a generous bound on every handshake
function H.wait_for(what, fn)
  local deadline = H.tiercache.now() + H.WAIT
  while H.tiercache.now() < deadline do
    local v = fn()
    if v then return v end
    H.sleep(0.02)
  end
  H.fail("timed out waiting for " .. what, 2)
end

function H.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  assert(f:close())
end

function H.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- py(code): run code under /usr/bin/python3 (with diskcache); returns stdout
-- and whether it succeeded. Output on stderr goes to the test's log.
local pyfile
function H.py(code)
  pyfile = pyfile or os.tmpname()
  H.write_file(pyfile, code)
  return H.sh(q(H.python) .. " " .. q(pyfile))
end

-- have_diskcache(): whether /usr/bin/python3 can import diskcache (the
-- interop tests say "skipped" without it).
local diskcache_ok
function H.have_diskcache()
  if diskcache_ok == nil then
    diskcache_ok = select(2, H.sh(q(H.python) .. " -c 'import diskcache' 2>/dev/null"))
  end
  if not diskcache_ok then
    print("      skipped: " .. H.python .. " cannot import diskcache")
  end
  return diskcache_ok
end

-- sqlite(db, sql): the sqlite3 CLI's output (one row a line, '|' between).
function H.sqlite(db, sql)
  local out, ok = H.sh("sqlite3 " .. q(db) .. " " .. q(sql))
  if not ok then error("sqlite3 failed on " .. db .. ": " .. sql, 2) end
  return (out:gsub("\n$", ""))
end

-- files(dir): the regular files below dir (sorted, relative paths).
function H.files(dir)
  local out = H.sh("cd " .. q(dir) .. " && find . -type f | sed 's|^\\./||' | sort")
  local t = {}
  for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- ---- assertions ---------------------------------------------------------

local function show(v)
  if type(v) == "string" then
    if #v > 80 then v = v:sub(1, 77) .. "..." end
    return string.format("%q", v)
  end
  if type(v) == "number" then
    local s = v == math.floor(v) and math.abs(v) < 2 ^ 63 and string.format("%.0f", v)
              or string.format("%.17g", v)
    if H.is54 then return s .. " (" .. math.type(v) .. ")" end
    return s
  end
  return tostring(v)
end
H.show = show

local function fail(msg, level)
  error(msg, (level or 2) + 1)
end
H.fail = fail

-- Same value and type; under Lua 5.4 numbers must also have the same
-- subtype (1 and 1.0 differ), and NaN equals NaN.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if a ~= a then return b ~= b end
    if H.is54 and math.type(a) ~= math.type(b) then return false end
  end
  return a == b
end

function H.eq(got, want, msg)
  if not same(got, want) then
    fail((msg and msg .. ": " or "") .. "expected " .. show(want) .. ", got " .. show(got), 2)
  end
end

function H.ne(got, notwant, msg)
  if same(got, notwant) then
    fail((msg and msg .. ": " or "") .. "did not expect " .. show(got), 2)
  end
end

function H.ok(v, msg)
  if not v then fail(msg or ("expected a true value, got " .. show(v)), 2) end
  return v
end

function H.near(got, want, tol, msg)
  if type(got) ~= "number" or math.abs(got - want) > tol then
    fail((msg and msg .. ": " or "") .. "expected " .. show(want) .. " +- " .. tol ..
         ", got " .. show(got), 2)
  end
end

local function deep(a, b, path, seen)
  if type(a) ~= "table" or type(b) ~= "table" then
    if not same(a, b) then
      return path .. ": expected " .. show(b) .. ", got " .. show(a)
    end
    return nil
  end
  if seen[a] == b then return nil end
  seen[a] = b
  for k, v in pairs(b) do
    local r = deep(a[k], v, path .. "[" .. show(k) .. "]", seen)
    if r then return r end
  end
  for k, v in pairs(a) do
    if b[k] == nil then
      return path .. "[" .. show(k) .. "]: unexpected " .. show(v)
    end
    -- keys that are equal as Lua keys but differ in subtype (2 vs 2.0 cannot
    -- both be keys; this catches a float key coming back as an integer)
    if H.is54 and type(k) == "number" then
      local found = false
      for k2 in pairs(b) do
        if same(k, k2) then found = true break end
      end
      if not found then return path .. ": key " .. show(k) .. " has the wrong subtype" end
    end
  end
  return nil
end

function H.deep_eq(got, want, msg)
  local r = deep(got, want, "value", {})
  if r then fail((msg and msg .. ": " or "") .. r, 2) end
end

-- raises(fn, pattern): fn must raise an error whose tostring matches the Lua
-- pattern (plain = true: a plain substring). Returns the error value.
function H.raises(fn, pattern, plain)
  local ok, err = pcall(fn)
  if ok then
    fail("expected an error matching " .. show(pattern) .. ", none raised", 2)
  end
  local s = tostring(err)
  if pattern and not s:find(pattern, 1, plain) then
    fail("expected an error matching " .. show(pattern) .. ", got " .. show(s), 2)
  end
  return err
end

-- count(iterator...) and list(iterator...): drain a generic-for iterator.
function H.list(f, s, v)
  local t = {}
  for k in f, s, v do t[#t + 1] = k end
  return t
end

-- ---- running ---------------------------------------------------------------

local tests = {}

function H.test(name, fn)
  tests[#tests + 1] = {name = name, fn = fn}
end

local root
local function new_root()
  local base = os.getenv("TMPDIR")
  if not base or base == "" then base = "/tmp" end
  local out = H.sh("mktemp -d " .. q(base .. "/tclua.XXXXXX"))
  root = out:match("[^\n]+")
  assert(root and root ~= "", "cannot create a temporary directory under " .. base)
  return root
end

-- Remove the hot-tier segments of every directory below @dir: each cache
-- directory has one, named tiercache-<dev>-<ino> (hex) in the shm directory.
local function drop_segments(dir)
  local shm = os.getenv("TIERCACHE_SHM_DIR")
  if not shm or shm == "" then shm = "/dev/shm" end
  os.execute("find " .. q(dir) .. " -type d -exec stat -c '%D %i' {} + 2>/dev/null |" ..
             " while read d i; do n=" .. q(shm) .. "/tiercache-$d-$(printf %x \"$i\");" ..
             " rm -f \"$n\" \"$n.lock\"; done")
end

function H.run()
  local filter = os.getenv("TEST_FILTER")
  local keep = os.getenv("TEST_KEEP") == "1"
  new_root()
  local passed, failed, names = 0, 0, {}
  local t0 = os.time()
  for n, t in ipairs(tests) do
    if not filter or t.name:find(filter) then
      local dir = string.format("%s/%03d", root, n)
      os.execute("mkdir -p " .. q(dir))
      local started = H.tiercache.now()
      local ok, err = xpcall(function() t.fn(dir) end, function(e)
        return debug.traceback(tostring(e), 2)
      end)
      collectgarbage() -- close the caches the test dropped
      collectgarbage()
      local took = H.tiercache.now() - started
      local slow = took >= 1 and string.format(" (%.1fs)", took) or ""
      if ok then
        passed = passed + 1
        print("ok    " .. t.name .. slow)
      else
        failed = failed + 1
        names[#names + 1] = t.name
        print("FAIL  " .. t.name .. slow .. "\n" .. err:gsub("\n", "\n      "))
      end
      if not keep then
        drop_segments(dir)
        os.execute("rm -rf " .. q(dir))
      end
    end
  end
  if not keep then os.execute("rm -rf " .. q(root)) end
  if pyfile then os.remove(pyfile) end
  local interp = H.is54 and _VERSION or (jit and jit.version or _VERSION)
  print(string.format("%s: %d passed, %d failed (%s, %ds)", arg and arg[0] or "?",
                      passed, failed, interp, os.time() - t0))
  if failed > 0 then
    print("failed: " .. table.concat(names, ", "))
  end
  os.exit(failed == 0 and 0 or 1)
end

return H
