-- recipes.lua - the Lua half of the recipes (lua/recipes.c builds this
-- file into the module). It waits and decorates; the C library does the
-- cross-process work: C.lock_try, C.sem_try, C.throttle, ... are its
-- primitives, each one transaction or one read.
--
-- Waiting polls with a backoff from 1 ms up to C.POLL_MAX seconds. Inside
-- an OpenResty phase that may yield it sleeps with ngx.sleep, so the
-- worker keeps serving other requests; elsewhere it sleeps in C.
local C, M = ...

local unpack = table.unpack or unpack
local pack = table.pack or function(...)
    return { n = select("#", ...), ... }
end
local floor, huge, random = math.floor, math.huge, math.random
local type, error, pcall, select, tostring = type, error, pcall, select, tostring

local yieldable = {
    rewrite = true, access = true, content = true, timer = true,
    ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

-- The sleep to wait with now: ngx.sleep where it yields, else C's.
local function sleeper()
    local ngx = rawget(_G, "ngx")
    if type(ngx) == "table" and ngx.sleep and ngx.get_phase then
        local ok, phase = pcall(ngx.get_phase)
        if ok and yieldable[phase] then
            return ngx.sleep
        end
    end
    return C.sleep
end

-- Who holds an RLock: the thread of this process, or in OpenResty the
-- request's coroutine. The process part is added by C (its hot-tier slot).
local function thread_id()
    local co = coroutine.running()
    if co == nil then
        return "main"
    end
    local s = tostring(co):match("0x%x+") or tostring(co)
    return "co" .. s
end

-- Poll @try until it returns true, or until @timeout seconds (nil: no
-- limit) have passed; true if it succeeded.
local function wait_for(try, timeout, who)
    if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
        error(who .. ": timeout: expected a number of seconds or nil, got "
            .. type(timeout), 3)
    end
    if try() then
        return true
    end
    if timeout ~= nil and timeout <= 0 then
        return false
    end
    local deadline = timeout and C.mono() + timeout
    local interval, sleep = 0.001, sleeper()
    while true do
        local s = interval
        if deadline then
            local left = deadline - C.mono()
            if left <= 0 then
                return false
            end
            if s > left then
                s = left
            end
        end
        sleep(s)
        if try() then
            return true
        end
        interval = interval * 2
        if interval > C.POLL_MAX then
            interval = C.POLL_MAX
        end
    end
end

-- obj:with(fn, ...): fn(...) while held; released when fn returns or
-- raises (the error is raised again, unchanged).
local function with(kind)
    return function(self, fn, ...)
        C.state(self, kind, "with")
        if type(fn) ~= "function" then
            error(kind .. ".with: fn: expected a function, got " .. type(fn), 2)
        end
        self:acquire()
        local r = pack(pcall(fn, ...))
        self:release()
        if not r[1] then
            error(r[2], 0)
        end
        return unpack(r, 2, r.n)
    end
end

local Lock = {}

function Lock.acquire(self, timeout)
    local s = C.state(self, "Lock", "acquire")
    return wait_for(function()
        return C.lock_try("Lock.acquire", s.cache, s.key, s.expire)
    end, timeout, "Lock.acquire")
end

function Lock.release(self)
    local s = C.state(self, "Lock", "release")
    C.lock_release("Lock.release", s.cache, s.key)
end

function Lock.locked(self)
    local s = C.state(self, "Lock", "locked")
    return C.lock_locked("Lock.locked", s.cache, s.key)
end

Lock.with = with("Lock")

local RLock = {}

function RLock.acquire(self, timeout)
    local s = C.state(self, "RLock", "acquire")
    local me = thread_id()
    return wait_for(function()
        return C.lock_try("RLock.acquire", s.cache, s.key, s.expire, me)
    end, timeout, "RLock.acquire")
end

function RLock.release(self)
    local s = C.state(self, "RLock", "release")
    C.lock_release("RLock.release", s.cache, s.key, thread_id())
end

RLock.with = with("RLock")

local BoundedSemaphore = {}

function BoundedSemaphore.acquire(self, timeout)
    local s = C.state(self, "BoundedSemaphore", "acquire")
    return wait_for(function()
        return C.sem_try("BoundedSemaphore.acquire", s.cache, s.key, s.value,
            s.expire)
    end, timeout, "BoundedSemaphore.acquire")
end

function BoundedSemaphore.release(self)
    local s = C.state(self, "BoundedSemaphore", "release")
    C.sem_release("BoundedSemaphore.release", s.cache, s.key, s.value,
        s.expire)
end

BoundedSemaphore.with = with("BoundedSemaphore")

local Averager = {}

function Averager.add(self, value)
    local s = C.state(self, "Averager", "add")
    C.avg_add("Averager.add", s.cache, s.key, value, s.expire)
end

function Averager.get(self)
    local s = C.state(self, "Averager", "get")
    return C.avg_get("Averager.get", s.cache, s.key, false)
end

function Averager.pop(self)
    local s = C.state(self, "Averager", "pop")
    return C.avg_get("Averager.pop", s.cache, s.key, true)
end

-- Option tables: unknown names are errors, as everywhere in the module.
local function check_opts(who, opts, allowed)
    if opts == nil then
        return {}
    end
    if type(opts) ~= "table" then
        error(who .. ": opts: expected a table, got " .. type(opts), 3)
    end
    for k in pairs(opts) do
        if not allowed[k] then
            error(who .. ": opts: unknown option '" .. tostring(k) .. "'", 3)
        end
    end
    return opts
end

-- expire as the primitives take it: seconds, or inf for never.
local function expire_arg(who, e)
    if e == nil or e == false then
        return huge
    end
    if type(e) ~= "number" or e ~= e then
        error(who .. ": expire: expected a number or false, got " .. type(e), 3)
    end
    return e
end

local function check_cache(who, cache)
    -- C checks the object itself; this only gives the error the right name.
    if type(cache) ~= "userdata" then
        error(who .. ": cache: expected a Cache or FanoutCache, got "
            .. type(cache), 3)
    end
end

local function check_fn(who, fn)
    if type(fn) ~= "function" then
        error(who .. ": the decorator expects a function, got " .. type(fn), 3)
    end
end

-- throttle(cache, count, seconds, opts{name, expire, time_func,
-- sleep_func})(fn): at most count calls per seconds across processes.
local function throttle(cache, count, seconds, opts)
    local who = "tiercache.throttle"
    check_cache(who, cache)
    if type(count) ~= "number" or not (count > 0) then
        error(who .. ": count: expected a positive number", 2)
    end
    if type(seconds) ~= "number" or not (seconds > 0) then
        error(who .. ": seconds: expected a positive number", 2)
    end
    opts = check_opts(who, opts, { name = true, expire = true,
        time_func = true, sleep_func = true })
    local expire = expire_arg(who, opts.expire)
    local time_func = opts.time_func or M.now
    local sleep_func = opts.sleep_func
    return function(fn)
        check_fn(who, fn)
        local key = opts.name or C.fn_name(fn)
        C.throttle(who, cache, key, count, seconds, expire, time_func(), true)
        return function(...)
            while true do
                local delay = C.throttle(who, cache, key, count, seconds,
                    expire, time_func(), false)
                if delay <= 0 then
                    break
                end
                (sleep_func or sleeper())(delay)
            end
            return fn(...)
        end
    end
end

-- barrier(cache, lock_factory, opts{name, expire})(fn): every call of fn,
-- in any process, runs while holding one lock.
local function barrier(cache, lock_factory, opts)
    local who = "tiercache.barrier"
    check_cache(who, cache)
    if lock_factory ~= M.Lock and lock_factory ~= M.RLock
        and lock_factory ~= M.BoundedSemaphore then
        error(who .. ": lock_factory: expected tiercache.Lock, RLock or "
            .. "BoundedSemaphore", 2)
    end
    opts = check_opts(who, opts, { name = true, expire = true })
    local expire = opts.expire
    return function(fn)
        check_fn(who, fn)
        local key = opts.name or C.fn_name(fn)
        local lock
        if lock_factory == M.BoundedSemaphore then
            lock = lock_factory(cache, key, 1, expire)
        else
            lock = lock_factory(cache, key, expire)
        end
        return function(...)
            return lock:with(fn, ...)
        end
    end
end

-- memoize_stampede(cache, expire, opts{name, typed, tag, beta, ignore,
-- random})(fn): memoize with early recomputation (XFetch), one computer
-- of a key at a time across processes. A caller that finds the result
-- stale and wins the lease recomputes before returning; the others get
-- the stale result at once. On a miss, one computes and the others wait
-- for its result.
local function memoize_stampede(cache, expire, opts)
    local who = "tiercache.memoize_stampede"
    check_cache(who, cache)
    if type(expire) ~= "number" or expire ~= expire then
        error(who .. ": expire: expected a number of seconds, got "
            .. type(expire), 2)
    end
    opts = check_opts(who, opts, { name = true, typed = true, tag = true,
        beta = true, ignore = true, random = true })
    local beta = opts.beta == nil and 1 or opts.beta
    if type(beta) ~= "number" or not (beta >= 0) then
        error(who .. ": beta: expected a number >= 0", 2)
    end
    if opts.ignore ~= nil and type(opts.ignore) ~= "table" then
        error(who .. ": ignore: expected a table of argument positions", 2)
    end
    local rand = opts.random or random
    local typed, tag, ignore = opts.typed and true or false, opts.tag, opts.ignore
    return function(fn)
        check_fn(who, fn)
        local name = opts.name or C.fn_name(fn)
        return function(...)
            local key = C.memo_key(who, name, typed, ignore, ...)
            local interval, sleep = 0.001, nil
            while true do
                -- rand() is in [0, 1); XFetch takes the log of (0, 1].
                local action, cached = C.stampede_begin(who, cache, key, beta,
                    1 - rand())
                if action == "use" then
                    return cached
                elseif action == "wait" then
                    sleep = sleep or sleeper()
                    sleep(interval)
                    interval = interval * 2
                    if interval > C.POLL_MAX then
                        interval = C.POLL_MAX
                    end
                else
                    local t0 = C.mono()
                    local r = pack(pcall(fn, ...))
                    if not r[1] then
                        C.stampede_abort(who, cache, key)
                        error(r[2], 0)
                    end
                    local result = r[2]
                    if result == nil then
                        -- Nothing to store: a nil result is not cached.
                        C.stampede_abort(who, cache, key)
                        return nil
                    end
                    C.stampede_end(who, cache, key, result, C.mono() - t0,
                        expire, tag)
                    return result
                end
            end
        end
    end
end

return {
    Lock = Lock,
    RLock = RLock,
    BoundedSemaphore = BoundedSemaphore,
    Averager = Averager,
    throttle = throttle,
    barrier = barrier,
    memoize_stampede = memoize_stampede,
}
