-- Gives dead tasks a fresh start: out of the dead set, attempts reset,
-- back on the active list, and the queue's workers signalled.
-- KEYS[1]: the dead set
-- KEYS[2]: the active task list
-- KEYS[3]: the metadata prefix
-- KEYS[4]: the signal list
-- ARGV[1..]: task ids
-- Returns: how many were dead and are queued again
local moved = 0
for i = 1, #ARGV do
    local id = ARGV[i]
    if redis.call('ZREM', KEYS[1], id) == 1 then
        local meta = KEYS[3] .. ':' .. id
        redis.call('HSET', meta, 'attempts', 0, 'status', 'Pending')
        redis.call('HDEL', meta, 'result', 'done_at', 'locked_at', 'locked_by')
        redis.call('RPUSH', KEYS[2], id)
        moved = moved + 1
    end
end
if moved > 0 then
    redis.call('DEL', KEYS[4])
    redis.call('LPUSH', KEYS[4], 1)
end
return moved
