-- Included by the scripts that read or write a session log ("--#include _epoch").
--
-- current_epoch(meta, log, epoch, meta_ttl, check_writer): makes sure the session
-- has an epoch, and returns nothing. A session without meta (new, or its meta
-- was lost) gets `epoch`, and whatever stream is left belongs to a lost epoch
-- and is dropped. With check_writer ('1', Redis Cluster) the meta also records
-- the node that writes it (CLUSTER MYID): replication is asynchronous, so a
-- replica promoted after its master died may lack the last entries its master
-- acknowledged, and the next offsets it hands out would repeat offsets clients
-- already saw with other events. A different writer therefore starts a new
-- epoch: clients get an honest reset, never a silent gap.
local function current_epoch(meta, log, epoch, meta_ttl, check_writer)
  local created = redis.call('HSETNX', meta, 'epoch', epoch) == 1
  if created then
    redis.call('DEL', log)
    redis.call('PEXPIRE', meta, meta_ttl)
  end
  if check_writer == '1' then
    local me = redis.call('CLUSTER', 'MYID')
    local writer = redis.call('HGET', meta, 'writer')
    if writer ~= me then
      if writer and not created then
        redis.call('HSET', meta, 'epoch', epoch)
        redis.call('DEL', log)
      end
      redis.call('HSET', meta, 'writer', me)
    end
  end
end
