-- Moves due jobs to the active list in bounded chunks: our delayed set
-- (retries) and apalis-redis's scheduled set (its own fallback retries), so
-- neither ever holds enough due ids to break apalis's unbounded promotion.
--
-- KEYS[1] our delayed zset (ms), KEYS[2] apalis scheduled zset (s),
-- KEYS[3] active list, KEYS[4] signal list
-- ARGV[1] now (ms), ARGV[2] now (s), ARGV[3] limit, ARGV[4] wake channel,
-- ARGV[5] queue name
local moved = 0
local limit = tonumber(ARGV[3])
local sources = { { KEYS[1], ARGV[1] }, { KEYS[2], ARGV[2] } }
for _, source in ipairs(sources) do
    local ids = redis.call('ZRANGEBYSCORE', source[1], '-inf', source[2], 'LIMIT', 0, limit)
    for _, id in ipairs(ids) do
        redis.call('RPUSH', KEYS[3], id)
        redis.call('ZREM', source[1], id)
        moved = moved + 1
    end
end
if moved > 0 then
    redis.call('DEL', KEYS[4])
    redis.call('LPUSH', KEYS[4], 1)
    redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return moved
