-- Give a lease back if it is still this grant (compare-and-delete on the value).
--
-- KEYS[1] lease key   KEYS[2] granted leases zset
-- ARGV[1] the grant's value "{token}:{holder}"   ARGV[2] the grant's zset member
--
-- Returns 1 if released, 0 if it was not held any more.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
