-- Extend a lease if it is still this grant (compare-and-set on the value).
--
-- KEYS[1] lease key
-- ARGV[1] the grant's value "{token}:{holder}"   ARGV[2] TTL, ms
--
-- Returns 1 if renewed, 0 if the lease was lost.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
