-- Rescores scheduled tasks that apalis-redis 1.0.0 scored in seconds to
-- milliseconds, at most ARGV[1] per call; call until it returns 0. Any
-- score below 10^11 is seconds (10^11 ms is in 1973, 10^11 s in 5138).
-- KEYS[1]: the scheduled set
-- ARGV[1]: chunk
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(100000000000', 'LIMIT', 0, tonumber(ARGV[1]), 'WITHSCORES')
for i = 1, #old, 2 do
    redis.call('ZADD', KEYS[1], tonumber(old[i + 1]) * 1000, old[i])
end
return #old / 2
