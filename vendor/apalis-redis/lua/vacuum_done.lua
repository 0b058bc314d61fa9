-- Forgets up to ARGV[1] done tasks, oldest first: their data, metadata and
-- place in the done set.
-- KEYS[1]: the done set (scored by completion time, ms)
-- KEYS[2]: the task data hash
-- KEYS[3]: the metadata prefix
-- Returns: how many were forgotten
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[1]))
for i = 1, #popped, 2 do
    redis.call('HDEL', KEYS[2], popped[i])
    redis.call('DEL', KEYS[3] .. ':' .. popped[i])
end
return #popped / 2
