-- Which of a batch of sessions have live sockets.
--
-- KEYS[1..] the sessions' connection zsets (member -> expiry, ms)
-- Returns one 0/1 per key, in order.
local t = redis.call('TIME')
local now = '(' .. string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local out = {}
for i = 1, #KEYS do
  out[#out + 1] = redis.call('ZCOUNT', KEYS[i], now, '+inf') > 0 and 1 or 0
end
return out
