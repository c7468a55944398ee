-- Grants whose TTL ran out without a release, oldest expiry first.
--
-- KEYS[1] granted leases zset
-- ARGV[1] how long an unreaped orphan is kept, ms
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now_ms - tonumber(ARGV[1])))
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now_ms))
