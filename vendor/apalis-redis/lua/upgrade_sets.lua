-- Converts a done or dead set written by apalis-redis 1.0.0 (a plain set)
-- into the sorted set later versions keep, scored by each task's `done_at`
-- (seconds) in milliseconds, or now when it has none. At most ARGV[1]
-- members per call; call until it returns 0.
-- KEYS[1]: the set to convert
-- KEYS[2]: the metadata prefix
-- KEYS[3]: a scratch key for the members not yet converted
-- ARGV[1]: chunk
-- Returns: how many members were converted by this call
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'set' and redis.call('EXISTS', KEYS[3]) == 0 then
    return 0
end
if kind == 'set' then
    -- The scratch key may hold what an interrupted upgrade left.
    redis.call('SUNIONSTORE', KEYS[3], KEYS[3], KEYS[1])
    redis.call('DEL', KEYS[1])
end
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ids = redis.call('SPOP', KEYS[3], tonumber(ARGV[1]))
for _, id in ipairs(ids) do
    local done_at = tonumber(redis.call('HGET', KEYS[2] .. ':' .. id, 'done_at'))
    redis.call('ZADD', KEYS[1], done_at and done_at * 1000 or now_ms, id)
end
return #ids
