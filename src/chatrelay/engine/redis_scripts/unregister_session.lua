-- Redis Cluster, the session's half of unregister.lua: forget a socket (idempotent).
--
-- KEYS[1] connection key   KEYS[2] session's connection zset
-- ARGV[1] connection id
-- Returns 1 when the session has no live socket left (the caller drops it from
-- the active-sessions hash, which lives in another slot), else 0.
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCOUNT', KEYS[2], '(' .. string.format('%d', now_ms), '+inf') == 0 then
  return 1
end
return 0
