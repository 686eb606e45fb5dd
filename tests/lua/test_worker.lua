-- test_worker.lua - settings.worker = "auto" starts one tiercached for the
-- directory (found through $TIERCACHED, which tests/lua/meson.build sets to
-- the built program); a second open starts none.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "harness"
local tiercache = H.tiercache
local test, eq, ok = H.test, H.eq, H.ok

-- The pid in the worker's lock file, once a live tiercached holds it.
local function worker_pid(dir, wait)
  local deadline = tiercache.now() + wait
  repeat
    local f = io.open(dir .. "/cache.db-tiercached.lock", "rb")
    local pid = f and tonumber((f:read("*a") or ""):match("%d+"))
    if f then f:close() end
    if pid then
      local comm = io.open("/proc/" .. pid .. "/comm", "rb")
      local name = comm and comm:read("*l")
      if comm then comm:close() end
      if name == "tiercached" then return pid end
    end
    H.sleep(0.05)
  until tiercache.now() > deadline
  return nil
end

local function stop(pid)
  os.execute("kill -TERM " .. pid)
  local deadline = tiercache.now() + 20
  while tiercache.now() < deadline do
    local f = io.open("/proc/" .. pid .. "/comm", "rb")
    if not f then return true end
    f:close()
    H.sleep(0.05)
  end
  os.execute("kill -KILL " .. pid)
  return false
end

test("worker = 'auto' starts one tiercached; a second open starts none", function(dir)
  if not os.getenv("TIERCACHED") then
    ok(os.getenv("CI") ~= "true", "TIERCACHED is not set (CI=true)")
    return
  end
  local c = tiercache.Cache(dir, {worker = "auto"})
  eq(c:set("k", "v"), true)
  local pid = worker_pid(dir, 20)
  ok(pid, "no tiercached holds the directory's worker lock")
  local c2 = tiercache.Cache(dir, {worker = "auto"})
  eq(c2:get("k"), "v")
  H.sleep(0.3)
  eq(worker_pid(dir, 1), pid, "the second open started another worker")
  -- Every tiercached on the machine whose command line names this dir.
  local mine = 0
  for p in (H.sh("pgrep -x tiercached")):gmatch("%d+") do
    local f = io.open("/proc/" .. p .. "/cmdline", "rb")
    local cmd = f and f:read("*a") or ""
    if f then f:close() end
    if cmd:find(dir, 1, true) then mine = mine + 1 end
  end
  eq(mine, 1, "tiercached processes for the directory")
  ok(stop(pid), "tiercached did not stop on SIGTERM")
  c:close()
  c2:close()
end)

test("worker = false starts nothing", function(dir)
  local c = tiercache.FanoutCache(dir, {worker = false, shards = 2})
  c:set("k", 1)
  H.sleep(0.2)
  eq(worker_pid(dir, 0.2), nil)
  c:close()
end)

H.run()
