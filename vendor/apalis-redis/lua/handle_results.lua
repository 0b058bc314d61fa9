-- KEYS[1] =  the worker inflight_set
-- KEYS[2] = done_jobs_set
-- KEYS[3] = dead_jobs_set
-- KEYS[4] = scheduled_jobs_set
-- KEYS[5] = job_meta_hash
-- KEYS[6] = job_data_hash
-- KEYS[7] = dead_dropped_counter
-- ARGV[1] = emit events
-- ARGV[2] = max dead tasks (0: unbounded)
-- ARGV[3] = dead task ttl in milliseconds (0: unbounded)
-- ARGV[4..] = repeating groups of: task_id, timestamp, result_data, status,
--             attempt, retry delay in milliseconds
--
-- The done and dead sets are sorted sets scored by the Redis server's time
-- in milliseconds, as the stats scripts (stats.lua, overview*.lua) read
-- them: newest and oldest are one ZRANGE away, and bounds cost O(log n).
local inflight_set = KEYS[1]
local done_jobs_set = KEYS[2]
local dead_jobs_set = KEYS[3]
local scheduled_jobs_set = KEYS[4]
local job_meta_hash = KEYS[5]
local job_data_hash = KEYS[6]
local dead_dropped_counter = KEYS[7]
local emit_events = ARGV[1] == "1"
local max_dead = tonumber(ARGV[2]) or 0
local dead_ttl_ms = tonumber(ARGV[3]) or 0

local header = 3
local args_per_task = 6
local num_tasks = (#ARGV - header) / args_per_task
local acked = 0
local died = 0

local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

for i = 0, num_tasks - 1 do
    local base = (i * args_per_task + header)
    local task_id = ARGV[base + 1]
    local timestamp = ARGV[base + 2]
    local result_data = ARGV[base + 3]
    local status = ARGV[base + 4]
    local attempt = ARGV[base + 5]
    local retry_delay_ms = tonumber(ARGV[base + 6]) or 0
    local meta_key = job_meta_hash .. ':' .. task_id

    local removed = redis.call('SREM', inflight_set, task_id)
    if removed == 0 then
        error("task not executed by worker")
    end

    if status == 'Done' then
        redis.call('ZADD', done_jobs_set, now_ms, task_id)
        if emit_events then
            redis.call("publish", "tasks:" .. done_jobs_set, task_id)
        end

    elseif (status == 'Failed' or status == 'Pending')
        and (tonumber(attempt) or 0) < (tonumber(redis.call('HGET', meta_key, 'max_attempts')) or 25) then
        -- Another attempt after the caller's backoff, on the server's clock
        -- in milliseconds like every score here; the task's own
        -- max_attempts (stored when it was pushed) bounds the attempts.
        redis.call('ZADD', scheduled_jobs_set, now_ms + retry_delay_ms, task_id)
        if emit_events then
            redis.call("publish", "tasks:" .. scheduled_jobs_set .. ':retry', task_id)
        end
    else
        redis.call('ZADD', dead_jobs_set, now_ms, task_id)
        died = died + 1
        if emit_events then
            redis.call("publish", "tasks:" .. dead_jobs_set, task_id)
        end
    end

    redis.call('HSET', meta_key, 'result', result_data, 'status', status, 'attempts', attempt, 'done_at', timestamp)

    acked = acked + 1
end

-- Keep the dead set within its bounds: the oldest go first, with their data
-- and metadata. Each call drops at most what it could have added plus a
-- chunk, so no call runs long; dead.rs `trim` catches up on the rest.
if died > 0 and (max_dead > 0 or dead_ttl_ms > 0) then
    local chunk = died + 1000
    local dropped = 0
    local function drop(ids)
        for _, id in ipairs(ids) do
            redis.call('HDEL', job_data_hash, id)
            redis.call('DEL', job_meta_hash .. ':' .. id)
            redis.call('ZREM', dead_jobs_set, id)
        end
        dropped = dropped + #ids
    end
    if dead_ttl_ms > 0 then
        drop(redis.call('ZRANGEBYSCORE', dead_jobs_set, '-inf', '(' .. (now_ms - dead_ttl_ms), 'LIMIT', 0, chunk))
    end
    if max_dead > 0 then
        local over = redis.call('ZCARD', dead_jobs_set) - max_dead
        if over > 0 then
            drop(redis.call('ZRANGE', dead_jobs_set, 0, math.min(over, chunk) - 1))
        end
    end
    if dropped > 0 then
        redis.call('INCRBY', dead_dropped_counter, dropped)
    end
end

return acked
