-- Claim one of a bounded set of slots (a user's running answers), on the server's clock.
--
-- KEYS[1] sorted set member -> expiry (ms)
-- ARGV[1] member   ARGV[2] limit   ARGV[3] ttl (ms)
--
-- Drops expired members, then adds ARGV[1] unless the set is full.
-- Returns 1 if claimed (or already held), 0 if the limit is reached.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
