-- The live sockets of one session, as connection JSON.
--
-- KEYS[1] session's connection zset
-- ARGV[1] the connection key prefix
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%d', now_ms), '+inf')
local out = {}
for _, id in ipairs(ids) do
  local json = redis.call('GET', ARGV[1] .. id)
  if json then
    out[#out + 1] = json
  end
end
return out
