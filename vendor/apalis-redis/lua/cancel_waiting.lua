-- Cancels a task that has not started: takes it off the active list or out
-- of the scheduled set, and deletes its data and metadata. A task a worker
-- has fetched (in flight), finished or dead is left alone.
-- A producer that pushes the same task id again afterwards queues it anew
-- (pushes skip only ids whose data is stored): one that pushes at least
-- once must forget the task first.
-- KEYS[1]: the active task list
-- KEYS[2]: the scheduled set
-- KEYS[3]: the task data hash
-- KEYS[4]: the metadata prefix
-- ARGV[1]: the task id
-- Returns: {state, data} where state is "pending" or "scheduled" and data
-- the task's data as pushed; {"not_waiting", ""} for a task whose data is
-- stored but that is not waiting (fetched, finished or dead); false for an
-- unknown task.
local id = ARGV[1]
local state
if redis.call('LREM', KEYS[1], 1, id) == 1 then
    state = 'pending'
elseif redis.call('ZREM', KEYS[2], id) == 1 then
    state = 'scheduled'
elseif redis.call('HEXISTS', KEYS[3], id) == 1 then
    return {'not_waiting', ''}
else
    return false
end
local data = redis.call('HGET', KEYS[3], id)
redis.call('HDEL', KEYS[3], id)
redis.call('DEL', KEYS[4] .. ':' .. id)
return {state, data or ''}
