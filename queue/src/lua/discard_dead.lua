-- Deletes dead jobs for good.
--
-- KEYS[1] dead set, KEYS[2] data hash, KEYS[3] meta key prefix
-- ARGV[1..] task ids
local removed = 0
for i = 1, #ARGV do
    local id = ARGV[i]
    if redis.call('SREM', KEYS[1], id) == 1 then
        redis.call('HDEL', KEYS[2], id)
        redis.call('DEL', KEYS[3] .. ':' .. id)
        removed = removed + 1
    end
end
return removed
