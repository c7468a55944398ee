-- Forget a socket (idempotent); a session left without live sockets stops being active.
--
-- KEYS[1] connection key   KEYS[2] session's connection zset
-- KEYS[3] user's connection zset   KEYS[4] active sessions hash
-- ARGV[1] connection id    ARGV[2] session id
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCOUNT', KEYS[2], '(' .. string.format('%d', now_ms), '+inf') == 0 then
  redis.call('HDEL', KEYS[4], ARGV[2])
end
return 1
