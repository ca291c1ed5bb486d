"""The Lua scripts that update a run's progress object atomically in Redis (used by agent/progress.py).

Redis runs each script as one step, so no update is lost between a read and a write. The hash
layout is private to the two modules; see agent/progress.py for it.
"""
from agent.metrics import METER_LUA

# Shared Lua: settle a provider's state (forward only) and the group's status after counts change.
# The provider rule is a copy of agent.outcomes.provider_state; a parity test pins the two.
SETTLE_LUA = """
local function settle(key, p)
  local h = redis.call('HMGET', key, 's:'..p, 'e:'..p, 'ok:'..p, 'f:'..p, 'c:'..p)
  local state, e = h[1], tonumber(h[2])
  local ok, f, c = tonumber(h[3]), tonumber(h[4]), tonumber(h[5])
  local pdone = 0
  if ok + f + c >= e then
    local final = 'completed'
    if ok == 0 and f > 0 then final = 'failed' end
    if state ~= final then
      redis.call('HSET', key, 's:'..p, final)
      redis.call('HINCRBY', key, 'u', 1)
      pdone = 1
    end
  elseif state == 'pending' and ok + f + c > 0 then
    redis.call('HSET', key, 's:'..p, 'processing')
    redis.call('HINCRBY', key, 'u', 1)
  end
  return pdone
end
local function settle_group(key)
  local g = redis.call('HMGET', key, 'status', 'exp', 'n')
  if g[1] ~= 'completed' and tonumber(g[3]) >= tonumber(g[2]) then
    redis.call('HSET', key, 'status', 'completed')
    redis.call('HINCRBY', key, 'u', 1)
    return 1
  end
  return 0
end
"""

# KEYS: result, done, metrics totals, metrics minute, paused-queue mirror. ARGV: item id, provider,
# count field (ok|f|c), ttl, error, done ttl, duration bucket (le or ''), duration seconds, minute ttl.
# Returns {counted, provider_done, group_done, paused mirror fields}; {-1} when the object is missing
# (caller rebuilds). The cluster metrics are counted here, exactly when progress counts the item;
# the mirror's fields ride along so a busy consumer learns of a pause or a resume from the answers
# it records, without a round trip of its own (agent/queue_ops.py).
FINISH_BODY = """
local paused = redis.call('HKEYS', KEYS[5])
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0, paused} end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[6])
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return {0, 0, 0, paused} end
local p = ARGV[2]
redis.call('HINCRBY', KEYS[1], ARGV[3]..':'..p, 1)
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HINCRBY', KEYS[1], 'u', 1)
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'err:'..p, ARGV[5]) end
meter(KEYS[3], KEYS[4], ARGV[9], p, ARGV[3], ARGV[7], ARGV[8])
local pdone = settle(KEYS[1], p)
local gdone = settle_group(KEYS[1])
if gdone == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
return {1, pdone, gdone, paused}
"""
FINISH_LUA = SETTLE_LUA + METER_LUA + FINISH_BODY

# KEYS: result. ARGV: provider, ttl. Returns 1 when this start moved the provider to processing,
# 0 when it was already past pending, -1 when the object is missing.
START_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if redis.call('HGET', KEYS[1], 's:'..ARGV[1]) == 'pending' then
  redis.call('HSET', KEYS[1], 's:'..ARGV[1], 'processing')
  redis.call('HINCRBY', KEYS[1], 'u', 1)
  return 1
end
return 0
"""

# KEYS: result, done, metrics totals, metrics minute. ARGV: ttl, snapshot JSON (see
# agent.progress._snapshot), done ttl, minute ttl. Creates the object when missing, then merges the
# snapshot's finished items idempotently; safe to run beside live workers. A missing object is
# counted from the snapshot alone, while only items new to the done set are metered (the others
# were, when they finished: the done set outlives the object while the run is open).
REBUILD_LUA = SETTLE_LUA + METER_LUA + """
local snap = cjson.decode(ARGV[2])
local key = KEYS[1]
local fresh = redis.call('EXISTS', key) == 0
if fresh then
  redis.call('HSET', key, 'status', 'pending', 'u', 0, 'n', 0, 'exp', snap.expected,
             'tp', snap.totalPrompts, 'providers', cjson.encode(snap.providers))
  for _, p in ipairs(snap.providers) do
    redis.call('HSET', key, 's:'..p, 'pending', 'e:'..p, snap.expectedByProvider[p], 'ok:'..p, 0, 'f:'..p, 0, 'c:'..p, 0)
  end
end
for _, it in ipairs(snap.finished) do
  local new = redis.call('SADD', KEYS[2], it[1]) == 1
  if new or fresh then
    redis.call('HINCRBY', key, it[3]..':'..it[2], 1)
    redis.call('HINCRBY', key, 'n', 1)
    redis.call('HINCRBY', key, 'u', 1)
  end
  if new then meter(KEYS[3], KEYS[4], ARGV[4], it[2], it[3], it[4], it[5]) end
end
for p, err in pairs(snap.errors) do redis.call('HSET', key, 'err:'..p, err) end
for _, p in ipairs(snap.started) do
  if redis.call('HGET', key, 's:'..p) == 'pending' then
    redis.call('HSET', key, 's:'..p, 'processing')
    redis.call('HINCRBY', key, 'u', 1)
  end
end
for _, p in ipairs(snap.providers) do settle(key, p) end
if snap.cancelled and redis.call('HSETNX', key, 'cancelled', 1) == 1 then redis.call('HINCRBY', key, 'u', 1) end
if snap.error ~= '' then redis.call('HSET', key, 'err', snap.error) end
local gdone = settle_group(key)
redis.call('EXPIRE', key, ARGV[1])
if gdone == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) else redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return gdone
"""

# KEYS: result. ARGV: field, value, ttl. Sets a group-level flag (cancelled, error) once.
FLAG_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('EXPIRE', KEYS[1], ARGV[3])
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'u', 1)
return 1
"""
