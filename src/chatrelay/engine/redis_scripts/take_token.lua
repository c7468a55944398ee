-- Token bucket shared by every node, on the server's clock.
--
-- KEYS[1] bucket hash {tokens, stamp}
-- ARGV[1] capacity   ARGV[2] refill per second
--
-- Returns "0" if a token was taken, else the seconds to wait ("-1": never).
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = capacity
  stamp = now
end
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
elseif rate > 0 then
  wait = (1 - tokens) / rate
else
  wait = -1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'stamp', string.format('%.17g', now))
-- An idle bucket is full again after capacity / rate: then it can go.
local ttl_ms = 86400000
if rate > 0 then
  ttl_ms = math.ceil(capacity / rate * 1000) + 1000
end
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return string.format('%.17g', wait)
