-- A session's epoch and latest offset, creating its epoch when it has none.
--
-- KEYS[1] session meta hash   KEYS[2] session stream
-- ARGV[1] an epoch to use if the session has none   ARGV[2] meta TTL, ms
-- ARGV[3] '1' to check the meta's writer (Redis Cluster, see _epoch.lua)
--#include _epoch
--
-- Returns {epoch, latest}.
current_epoch(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'latest')
return {meta[1], tonumber(meta[2]) or 0}
