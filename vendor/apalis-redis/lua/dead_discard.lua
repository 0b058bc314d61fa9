-- Deletes dead tasks for good, with their data and metadata.
-- KEYS[1]: the dead set
-- KEYS[2]: the task data hash
-- KEYS[3]: the metadata prefix
-- ARGV[1..]: task ids
-- Returns: how many were dead and are gone
local removed = 0
for i = 1, #ARGV do
    local id = ARGV[i]
    if redis.call('ZREM', KEYS[1], id) == 1 then
        redis.call('HDEL', KEYS[2], id)
        redis.call('DEL', KEYS[3] .. ':' .. id)
        removed = removed + 1
    end
end
return removed
