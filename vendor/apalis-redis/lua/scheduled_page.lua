-- One page of the scheduled set, soonest first, after a cursor.
-- KEYS[1]: the scheduled set (scored by when each task falls due, ms)
-- KEYS[2]: the task data hash
-- KEYS[3]: the metadata prefix
-- ARGV[1]: cursor score ("-inf" for the first page)
-- ARGV[2]: cursor task id ("" for the first page: nothing skipped)
-- ARGV[3]: page size
-- Returns: flat groups of {task_id, due_at_ms, attempts, result, data}
--
-- Tasks due in the same millisecond share a score and come in ascending
-- id order (a sorted set's order for equal scores); those at the cursor's
-- score with an id <= the cursor's were on earlier pages and are skipped
-- by count, so ties never repeat or vanish across pages.
local skip = 0
if ARGV[2] ~= "" then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])) do
        if id <= ARGV[2] then
            skip = skip + 1
        end
    end
end
local page = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', skip, tonumber(ARGV[3]))
local out = {}
for i = 1, #page, 2 do
    local id = page[i]
    local meta = redis.call('HMGET', KEYS[3] .. ':' .. id, 'attempts', 'result')
    table.insert(out, id)
    table.insert(out, page[i + 1])
    table.insert(out, meta[1] or false)
    table.insert(out, meta[2] or false)
    table.insert(out, redis.call('HGET', KEYS[2], id) or false)
end
return out
