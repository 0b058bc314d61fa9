-- Gives dead jobs a fresh start: out of the dead set, attempts reset,
-- back on the active list.
--
-- KEYS[1] dead set, KEYS[2] active list, KEYS[3] meta key prefix,
-- KEYS[4] signal list
-- ARGV[1] wake channel, ARGV[2] queue name, ARGV[3..] task ids
local moved = 0
for i = 3, #ARGV do
    local id = ARGV[i]
    if redis.call('SREM', KEYS[1], id) == 1 then
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
    redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return moved
