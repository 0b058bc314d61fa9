-- Pushes ready jobs straight onto apalis-redis's active list, in its key
-- layout (task data hash + per-task meta hash + active list).
--
-- apalis-redis's own push puts every task in the scheduled set first and its
-- fetch promotes all due tasks with one `unpack`, which fails beyond ~8,000
-- ids and wedges the queue; pushing to the active list avoids that path.
-- HSETNX makes a re-push of the same id (a relay retry) a no-op while the
-- job is still known.
--
-- KEYS[1] data hash, KEYS[2] active list, KEYS[3] meta key prefix,
-- KEYS[4] signal list
-- ARGV[1] wake channel, ARGV[2] queue name,
-- ARGV[3..] repeating (task_id, payload, max_attempts, attempts)
local pushed = 0
for i = 3, #ARGV, 4 do
    local id = ARGV[i]
    if redis.call('HSETNX', KEYS[1], id, ARGV[i + 1]) == 1 then
        redis.call('HSET', KEYS[3] .. ':' .. id,
            'attempts', ARGV[i + 3], 'max_attempts', ARGV[i + 2],
            'status', 'Pending', 'idempotency_key', '')
        redis.call('RPUSH', KEYS[2], id)
        pushed = pushed + 1
    end
end
if pushed > 0 then
    redis.call('DEL', KEYS[4])
    redis.call('LPUSH', KEYS[4], 1)
    redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return pushed
