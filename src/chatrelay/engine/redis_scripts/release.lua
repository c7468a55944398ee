-- Give a lease back if it is still this grant (compare-and-delete on the value).
--
-- KEYS[1] lease key
-- ARGV[1] the grant's value "{token}:{holder}"
--
-- Returns 1 if released, 0 if it was not held any more.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
