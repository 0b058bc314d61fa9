-- Stores a job to run later (a retry after backoff) in our delayed set,
-- scored in milliseconds. promote.lua moves it to the active list when due.
--
-- KEYS[1] data hash, KEYS[2] delayed zset, KEYS[3] meta key prefix
-- ARGV[1] task_id, ARGV[2] payload, ARGV[3] max_attempts, ARGV[4] attempts,
-- ARGV[5] due time (ms since epoch)
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
    return 0
end
redis.call('HSET', KEYS[3] .. ':' .. ARGV[1],
    'attempts', ARGV[4], 'max_attempts', ARGV[3],
    'status', 'Pending', 'idempotency_key', '')
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return 1
