-- Claims a schedule tick for the cluster and, in the same atomic step,
-- queues its job: exactly one worker per tick gets 1, and a worker cannot
-- die between winning the tick and queueing its job.
--
-- KEYS[1] claim key, KEYS[2] data hash, KEYS[3] active list,
-- KEYS[4] meta key prefix, KEYS[5] signal list
-- ARGV[1] claimant, ARGV[2] claim ttl (s), ARGV[3] wake channel,
-- ARGV[4] queue name, ARGV[5] task id, ARGV[6] payload, ARGV[7] max attempts
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
    return 0
end
if redis.call('HSETNX', KEYS[2], ARGV[5], ARGV[6]) == 1 then
    redis.call('HSET', KEYS[4] .. ':' .. ARGV[5],
        'attempts', 0, 'max_attempts', ARGV[7], 'status', 'Pending', 'idempotency_key', '')
    redis.call('RPUSH', KEYS[3], ARGV[5])
    redis.call('DEL', KEYS[5])
    redis.call('LPUSH', KEYS[5], 1)
    redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return 1
