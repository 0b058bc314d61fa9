-- Drops dead tasks past the dead set's bounds, oldest first, at most
-- ARGV[3] per call, and counts them.
-- KEYS[1]: the dead set (scored by death time, ms)
-- KEYS[2]: the task data hash
-- KEYS[3]: the metadata prefix
-- KEYS[4]: the dropped counter
-- ARGV[1]: max dead tasks (0: unbounded)
-- ARGV[2]: ttl in milliseconds (0: unbounded)
-- ARGV[3]: chunk
-- Returns: how many were dropped
local max_dead = tonumber(ARGV[1])
local ttl_ms = tonumber(ARGV[2])
local chunk = tonumber(ARGV[3])
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local dropped = 0
local function drop(ids)
    for _, id in ipairs(ids) do
        redis.call('HDEL', KEYS[2], id)
        redis.call('DEL', KEYS[3] .. ':' .. id)
        redis.call('ZREM', KEYS[1], id)
    end
    dropped = dropped + #ids
end
if ttl_ms > 0 then
    drop(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now_ms - ttl_ms), 'LIMIT', 0, chunk))
end
if max_dead > 0 and dropped < chunk then
    local over = redis.call('ZCARD', KEYS[1]) - max_dead
    if over > 0 then
        drop(redis.call('ZRANGE', KEYS[1], 0, math.min(over, chunk - dropped) - 1))
    end
end
if dropped > 0 then
    redis.call('INCRBY', KEYS[4], dropped)
end
return dropped
