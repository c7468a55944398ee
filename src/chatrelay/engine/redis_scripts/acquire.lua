-- Take a lease if nobody holds it; the fencing token comes from the key's counter.
--
-- KEYS[1] lease key   KEYS[2] fence counter   KEYS[3] granted leases zset
-- ARGV[1] holder      ARGV[2] TTL, ms         ARGV[3] fence counter TTL, ms
-- ARGV[4] the grant's description; the zset member is "{token}:" .. ARGV[4]
--
-- Returns the token, or nil when the lease is held.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[3], string.format('%d', now_ms + tonumber(ARGV[2])), token .. ':' .. ARGV[4])
return token
