-- Which of a batch of sessions have live sockets.
--
-- ARGV[1] the session connection zset prefix
-- ARGV[2..] session ids
-- Returns one 0/1 per session id, in order.
local t = redis.call('TIME')
local now = '(' .. string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = redis.call('ZCOUNT', ARGV[1] .. ARGV[i], now, '+inf') > 0 and 1 or 0
end
return out
