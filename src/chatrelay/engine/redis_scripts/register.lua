-- Record (or renew) a socket: heartbeat key, session and user indexes, unless
-- its user is at their socket limit (the count and the add are one step, so
-- sockets racing on several gateways cannot all pass). Returns 1, or 0 if refused.
--
-- KEYS[1] connection key   KEYS[2] session's connection zset
-- KEYS[3] user's connection zset   KEYS[4] active sessions hash
-- KEYS[5] user's recent sessions set
-- ARGV[1] connection id   ARGV[2] connection JSON   ARGV[3] TTL, ms
-- ARGV[4] session id      ARGV[5] user id
-- ARGV[6] how long an index outlives its last member, ms (for cleanup to see it)
-- ARGV[7] TTL of the user's recent sessions set, s
-- ARGV[8] the user's socket limit, or -1 for none (a live socket renewing is never refused)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
local index_ttl = ttl + tonumber(ARGV[6])
local limit = tonumber(ARGV[8])

if limit >= 0 then
  local expiry = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[1]) or 0)
  local live = '(' .. string.format('%d', now_ms)
  if expiry <= now_ms and redis.call('ZCOUNT', KEYS[3], live, '+inf') >= limit then
    return 0
  end
end

redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
for i = 2, 3 do
  redis.call('ZADD', KEYS[i], string.format('%d', now_ms + ttl), ARGV[1])
  -- The index lives at least as long as its longest-lived member.
  if redis.call('PTTL', KEYS[i]) < index_ttl then
    redis.call('PEXPIRE', KEYS[i], index_ttl)
  end
end
redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
redis.call('SADD', KEYS[5], ARGV[4])
redis.call('EXPIRE', KEYS[5], ARGV[7])
return 1
