-- Drop the expired sockets of a batch of sessions; forget sessions left without any.
--
-- KEYS[1] active sessions hash
-- ARGV[1] session connection zset prefix   ARGV[2] user connection zset prefix
-- ARGV[3..] pairs of session id, user id
-- Returns how many registrations were dropped.
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local dropped = 0
for i = 3, #ARGV, 2 do
  local session_key = ARGV[1] .. ARGV[i]
  dropped = dropped + redis.call('ZREMRANGEBYSCORE', session_key, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', ARGV[2] .. ARGV[i + 1], '-inf', now)
  if redis.call('ZCARD', session_key) == 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return dropped
