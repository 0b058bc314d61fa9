-- KEYS[1]: the active workers sorted set
--
-- ARGV[1]: worker name
--
-- Heartbeats are scored by the Redis server's clock in milliseconds, so
-- hosts whose clocks disagree judge each other's leases alike.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local worker = ARGV[1]

local last_seen = redis.call("zscore", KEYS[1], worker)

-- Worker is not registered
if not last_seen then
    error("Heartbeat failed: worker not registered")
end

-- Update the worker's heartbeat
redis.call("zadd", KEYS[1], now, worker)

return true
