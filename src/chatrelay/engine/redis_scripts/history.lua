-- The events of a session log after an offset, with its epoch and latest offset.
--
-- KEYS[1] session meta hash   KEYS[2] session stream
-- ARGV[1] an epoch to use if the session has none   ARGV[2] meta TTL, ms
-- ARGV[3] '1' to check the meta's writer (Redis Cluster, see _epoch.lua)
-- ARGV[4] since (events with a larger offset are wanted)
-- ARGV[5] max age of entries, ms (older ones count as trimmed)
--
--#include _epoch
-- Returns {epoch, latest, offset1, data1, offset2, data2, ...}, oldest first.
current_epoch(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'latest')
local latest = tonumber(meta[2]) or 0
local since = tonumber(ARGV[4])
local out = {meta[1], latest}
local wanted = latest - since
if wanted <= 0 then
  return out
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local oldest_id = string.format('%d', now_ms - tonumber(ARGV[5]))
-- A stream holds consecutive offsets ending at latest, so the newest
-- `wanted` entries are exactly those after `since` that are still kept.
local entries = redis.call('XREVRANGE', KEYS[2], '+', oldest_id, 'COUNT', wanted)
for i = #entries, 1, -1 do
  local fields = entries[i][2]
  local offset = tonumber(fields[2])
  if offset > since then
    out[#out + 1] = offset
    out[#out + 1] = fields[4]
  end
end
return out
