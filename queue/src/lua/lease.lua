-- Takes or keeps a lease (the upkeep lease: one process at a time runs the
-- cluster-wide queue upkeep; a webhook endpoint's turn: one delivery at a
-- time). The holder renews its lease; anyone takes a lease that has
-- expired.
--
-- KEYS[1] the lease key
-- ARGV[1] the caller's name, ARGV[2] time to live (ms)
-- Returns 1 when the caller holds the lease.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
