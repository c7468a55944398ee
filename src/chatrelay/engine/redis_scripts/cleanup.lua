-- Drop the expired sockets of a batch of sessions; forget sessions left without any.
--
-- KEYS[1] active sessions hash
-- KEYS[2..] pairs: a session's connection zset, its user's connection zset
-- ARGV[1..] the session id of each pair, in order
-- Returns how many registrations were dropped.
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local dropped = 0
for i = 1, #ARGV do
  local session_key = KEYS[2 * i]
  dropped = dropped + redis.call('ZREMRANGEBYSCORE', session_key, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[2 * i + 1], '-inf', now)
  if redis.call('ZCARD', session_key) == 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return dropped
