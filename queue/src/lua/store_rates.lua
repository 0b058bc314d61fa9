-- Updates the latest-price cache and announces the new prices. A price
-- replaces the cached one only if it is newer, so a late job cannot roll
-- the cache back.
--
-- KEYS[1] rates hash
-- ARGV[1] channel, ARGV[2] message (JSON array of the new prices),
-- ARGV[3..] repeating (symbol, as_of epoch ms, entry JSON)
local updated = 0
for i = 3, #ARGV, 3 do
    local current = redis.call('HGET', KEYS[1], ARGV[i] .. ':ms')
    if not current or tonumber(current) < tonumber(ARGV[i + 1]) then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2], ARGV[i] .. ':ms', ARGV[i + 1])
        updated = updated + 1
    end
end
if updated > 0 then
    redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return updated
