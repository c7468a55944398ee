-- A session's epoch and latest offset, creating its epoch when it has none.
--
-- KEYS[1] session meta hash   KEYS[2] session stream
-- ARGV[1] an epoch to use if the session has none   ARGV[2] meta TTL, ms
--
-- Returns {epoch, latest}.
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'latest')
return {meta[1], tonumber(meta[2]) or 0}
