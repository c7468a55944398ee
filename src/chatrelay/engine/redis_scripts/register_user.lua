-- Redis Cluster, the user's half of register.lua (the user's keys share the user's slot):
-- the socket limit and the user's indexes. Returns 1, or 0 if refused.
--
-- KEYS[1] user's connection zset   KEYS[2] user's recent sessions set
-- ARGV[1] connection id   ARGV[2] TTL, ms   ARGV[3] session id
-- ARGV[4] how long an index outlives its last member, ms
-- ARGV[5] TTL of the user's recent sessions set, s
-- ARGV[6] the user's socket limit, or -1 for none (a live socket renewing is never refused)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local limit = tonumber(ARGV[6])
if limit >= 0 then
  local expiry = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or 0)
  if expiry <= now_ms and redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%d', now_ms), '+inf') >= limit then
    return 0
  end
end
redis.call('ZADD', KEYS[1], string.format('%d', now_ms + ttl), ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl + tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ttl + tonumber(ARGV[4]))
end
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
