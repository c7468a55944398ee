-- Take a lease if nobody holds it; the fencing token comes from the key's counter.
--
-- KEYS[1] lease key   KEYS[2] fence counter
-- ARGV[1] holder      ARGV[2] TTL, ms         ARGV[3] fence counter TTL, ms
--
-- Returns the token, or nil when the lease is held.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return token
