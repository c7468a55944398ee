-- How many members of an expiry-scored zset are still live.
--
-- KEYS[1] a connection zset (member -> expiry, ms)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%d', now_ms), '+inf')
