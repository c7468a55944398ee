-- Extend a lease if it is still this grant (compare-and-set on the value).
--
-- KEYS[1] lease key   KEYS[2] granted leases zset
-- ARGV[1] the grant's value "{token}:{holder}"   ARGV[2] TTL, ms
-- ARGV[3] the grant's zset member
--
-- Returns 1 if renewed, 0 if the lease was lost.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], 'XX', string.format('%d', now_ms + tonumber(ARGV[2])), ARGV[3])
return 1
