-- Append one event to a session log and fan it out: one round trip, atomic.
--
-- KEYS[1] session meta hash {epoch, latest}   KEYS[2] session stream
-- KEYS[3] pub/sub channel of the session
-- KEYS[4] (when ARGV[6] is not empty) lease key whose value must still be ARGV[6]
-- KEYS[5] (or KEYS[4] without a lease; optional) a cancel key to report
-- ARGV[1] the frame as a JSON object (starts with "{")
-- ARGV[2] an epoch to use if the session has none (its meta was lost)
-- ARGV[3] max entries kept   ARGV[4] max age of entries, ms
-- ARGV[5] meta TTL, ms
-- ARGV[6] the caller's lease value "{token}:{holder}", or "" for no fencing
-- ARGV[7] '1' to check the meta's writer (Redis Cluster, see _epoch.lua)
-- ARGV[8] the fan-out command: PUBLISH, or SPUBLISH on Redis Cluster (sharded pub/sub)
--
-- The event is the frame with "offset" put first (engine/events.py holds
-- the layout). Returns {offset, cancelled}: the event's offset (0 when the
-- lease is no longer current and nothing was appended), and 1 when the
-- cancel key exists, so a generation learns of a cancel without a round
-- trip of its own.
--#include _epoch
local next_key = 4
if ARGV[6] ~= '' then
  if redis.call('GET', KEYS[4]) ~= ARGV[6] then
    return {0, 0}
  end
  next_key = 5
end
local cancelled = 0
if KEYS[next_key] then
  cancelled = redis.call('EXISTS', KEYS[next_key])
end

current_epoch(KEYS[1], KEYS[2], ARGV[2], ARGV[5], ARGV[7])
local offset = redis.call('HINCRBY', KEYS[1], 'latest', 1)

local body = ARGV[1]
local data
if body == '{}' then
  data = '{"offset":' .. offset .. '}'
else
  data = '{"offset":' .. offset .. ',' .. string.sub(body, 2)
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max_age = tonumber(ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '=', ARGV[3], '*', 'o', offset, 'd', data)
-- Age trim is approximate (whole nodes); history filters by age exactly.
redis.call('XTRIM', KEYS[2], 'MINID', '~', string.format('%d', now_ms - max_age))
redis.call('PEXPIRE', KEYS[2], max_age)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if ARGV[8] == 'SPUBLISH' then
  redis.call('SPUBLISH', KEYS[3], data)
else
  redis.call('PUBLISH', KEYS[3], data)
end
return {offset, cancelled}
