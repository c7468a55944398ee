-- Redis Cluster, the session's half of register.lua (the session's keys share its slot):
-- the heartbeat key and the session's index. The active-sessions hash is written
-- by the caller (it lives in another slot).
--
-- KEYS[1] connection key   KEYS[2] session's connection zset
-- ARGV[1] connection id   ARGV[2] connection JSON   ARGV[3] TTL, ms
-- ARGV[4] how long an index outlives its last member, ms
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], string.format('%d', now_ms + ttl), ARGV[1])
if redis.call('PTTL', KEYS[2]) < ttl + tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[2], ttl + tonumber(ARGV[4]))
end
return 1
