-- Forgets finished jobs: apalis-redis keeps every completed task's data and
-- meta forever (its vacuum scans the whole data hash at once). We pop done
-- ids in bounded chunks and delete what belongs to them.
--
-- KEYS[1] done set, KEYS[2] data hash, KEYS[3] meta key prefix
-- ARGV[1] limit
local ids = redis.call('SPOP', KEYS[1], tonumber(ARGV[1]))
for _, id in ipairs(ids) do
    redis.call('HDEL', KEYS[2], id)
    redis.call('DEL', KEYS[3] .. ':' .. id)
end
return #ids
