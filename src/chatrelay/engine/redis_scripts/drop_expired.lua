-- Drop the expired members of an expiry-scored zset (a connection index).
--
-- KEYS[1] the zset (member -> expiry, ms)
-- Returns {members dropped, members left}.
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local dropped = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {dropped, redis.call('ZCARD', KEYS[1])}
