-- Moves due scheduled tasks to the active list, at most ARGV[1] per call,
-- and says when the next one falls due. Scores are milliseconds on this
-- server's clock.
-- KEYS[1]: the scheduled set
-- KEYS[2]: the active task list
-- KEYS[3]: the signal list
-- ARGV[1]: chunk
-- Returns: {moved, milliseconds until the next scheduled task, or -1}
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
if #ids > 0 then
    redis.call('RPUSH', KEYS[2], unpack(ids))
    redis.call('ZREM', KEYS[1], unpack(ids))
    redis.call('DEL', KEYS[3])
    redis.call('LPUSH', KEYS[3], 1)
end
local next_due = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first > 0 then
    next_due = math.max(0, tonumber(first[2]) - now_ms)
end
return {#ids, next_due}
