-- KEYS[1]: the active workers set
-- KEYS[2]: worker metadata_key
-- ARGV[1]: unused (was the caller's clock; the server's is used)
-- ARGV[2]: worker name
-- ARGV[3]: threshold in milliseconds
-- ARGV[4]: backend_name
-- ARGV[5]: service
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local worker_name = ARGV[2]
local threshold = tonumber(ARGV[3])
local backend_name = ARGV[4]
local service = ARGV[5]
local worker_metadata_key = KEYS[2]

local last_seen = redis.call("zscore", KEYS[1], worker_name)
if last_seen then
    if now - tonumber(last_seen) < threshold then
        error("worker is still active within threshold")
    end
end

-- Update the active workers sorted set
redis.call("zadd", KEYS[1], now, worker_name)

-- The queue is listed in the global queue registry by the caller, in a
-- command of its own: that key lives in another hash slot than the
-- queue's keys, which Redis Cluster refuses in one script.

-- Store or update worker metadata
redis.call("hmset", worker_metadata_key, "backend_name", backend_name, "service", service)

return now
