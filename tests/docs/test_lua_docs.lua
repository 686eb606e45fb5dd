-- test_lua_docs.lua - run every ```lua block of docs/lua.md.
--
-- Usage: lua test_lua_docs.lua DOCS_LUA_MD
-- Each block runs in its own environment; "/tmp/tiercache-example-" in a
-- block is replaced by a fresh directory prefix, removed afterwards with
-- the hot-tier segments of the caches made there. A block fails the test
-- if it raises (the examples check themselves with assert).
local path = assert(arg[1], "usage: test_lua_docs.lua docs/lua.md")
local f = assert(io.open(path, "rb"))
local text = f:read("a")
f:close()

local blocks = {}
for code in text:gmatch("\n```lua\n(.-)\n```") do
    blocks[#blocks + 1] = code
end
assert(#blocks > 0, "no lua blocks in " .. path)

local function sh(cmd)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    return (out:gsub("%s+$", ""))
end

local shm_dir = os.getenv("TIERCACHE_SHM_DIR") or "/dev/shm"
local base = sh("mktemp -d /tmp/tiercache-docs.XXXXXX")
assert(base ~= "", "mktemp failed")

-- Remove the segments of every cache directory under base: they are named
-- by the directory's device and inode, in hex (shm/segment.c).
local function drop_segments()
    local list = sh("find '" .. base .. "' -mindepth 1 -type d " ..
                    "-exec stat -c '%d %i' {} +")
    for dev, ino in list:gmatch("(%d+) (%d+)") do
        local seg = string.format("%s/tiercache-%x-%x", shm_dir,
                                  tonumber(dev), tonumber(ino))
        os.remove(seg)
        os.remove(seg .. ".lock")
    end
end

local failed = 0
for i, code in ipairs(blocks) do
    local prefix = base .. "/b" .. i .. "-"
    local src = code:gsub("/tmp/tiercache%-example%-", prefix)
    local env = setmetatable({}, {__index = _G})
    local chunk, err
    if setfenv then -- LuaJIT
        chunk, err = loadstring(src, "=docs block " .. i)
        if chunk then setfenv(chunk, env) end
    else
        chunk, err = load(src, "=docs block " .. i, "t", env)
    end
    local ok, rerr = false, err
    if chunk then
        ok, rerr = pcall(chunk)
    end
    collectgarbage()
    collectgarbage()
    if ok then
        print("ok " .. i .. " - docs/lua.md block " .. i)
    else
        failed = failed + 1
        print("not ok " .. i .. " - docs/lua.md block " .. i .. ": " .. tostring(rerr))
    end
end
drop_segments()
os.execute("rm -rf '" .. base .. "'")
print(string.format("%d blocks, %d failed", #blocks, failed))
os.exit(failed == 0 and 0 or 1)
