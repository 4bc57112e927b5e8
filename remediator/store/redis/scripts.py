"""Lua scripts of the Redis store: each one is atomic and touches keys of one hash slot.

Times that must agree across replicas come from the server (``TIME``), not
from the replicas' clocks. Every script is registered once per client
(``register_script``: EVALSHA, loaded again on NOSCRIPT).
"""

from __future__ import annotations

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# The queue: a stream per rule (``keys.rule_stream``), registered in ``keys.streams``, each
# read by the one consumer group; plus the single stream of the releases before them
# (``keys.stream``, "legacy"), still read while it holds jobs. ``q`` names them: streams,
# turn, legacy, bell (keys), base (a rule stream's key is base .. rule) and group.
#
# push: queue a job on its rule's stream; the first job of a rule registers its stream,
# makes the group and rings the bell (a waiting worker wakes for the new stream).
# take: one new job for a consumer, round robin over the streams that have one, starting
# after the stream served last (``turn``): no rule's backlog holds another rule's job.
# Returns {rule ('' legacy), entry id, fields} or false.
_QUEUE_FN = """
local function push(q, rule, job)
  local stream = q.base .. rule
  if redis.call('ZADD', q.streams, 'NX', 0, rule) == 1 then
    redis.pcall('XGROUP', 'CREATE', stream, q.group, '0', 'MKSTREAM')
    redis.call('XADD', q.bell, 'MAXLEN', '~', 100, '*', 'rule', rule)
  end
  return redis.call('XADD', stream, '*', 'job', job)
end
local function read_one(stream, group, consumer)
  if redis.call('EXISTS', stream) == 0 then return false end
  local args = {'XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', stream, '>'}
  local r = redis.pcall(unpack(args))
  if type(r) == 'table' and r['err'] then
    if string.find(r['err'], 'NOGROUP', 1, true) then
      redis.call('XGROUP', 'CREATE', stream, group, '0')
    end
    r = redis.call(unpack(args))
  end
  if type(r) == 'table' and r[1] and r[1][2][1] then return r[1][2][1] end
  return false
end
local function take(q, consumer)
  local names = redis.call('ZRANGE', q.streams, 0, -1)
  if redis.call('XLEN', q.legacy) > 0 then table.insert(names, 1, '') end
  local n = #names
  if n == 0 then return false end
  local turn, first = redis.call('GET', q.turn), 1
  if turn then
    for i = 1, n do
      if names[i] > turn then first = i break end
    end
  end
  for j = 0, n - 1 do
    local name = names[(first - 1 + j) % n + 1]
    local stream = q.legacy
    if name ~= '' then stream = q.base .. name end
    local entry = read_one(stream, q.group, consumer)
    if entry then
      redis.call('SET', q.turn, name)
      return {name, entry[1], entry[2]}
    end
  end
  return false
end
"""

# KEYS: streams, bell, then one intake key per job that may be collapsed; ARGV: the intake
# key's ttl ms, base, group, then per job its event id ('' = never collapsed), its rule and
# the job (JSON). The webhook's batch in one command. A job whose intake key exists (the
# same rule, alert status and firing episode is queued, running or done) is not queued:
# the key counts it (field n) and its event id is returned; the first job's id is the
# key's field id.
ENQUEUE = (
    _QUEUE_FN
    + """
local ttl, k, out = ARGV[1], 2, {}
local q = {streams = KEYS[1], bell = KEYS[2], base = ARGV[2], group = ARGV[3]}
for i = 4, #ARGV, 3 do
  local id = ARGV[i]
  if id == '' then
    push(q, ARGV[i + 1], ARGV[i + 2])
  else
    k = k + 1
    if redis.call('HSETNX', KEYS[k], 'id', id) == 1 then
      redis.call('PEXPIRE', KEYS[k], ttl)
      push(q, ARGV[i + 1], ARGV[i + 2])
    else
      redis.call('HINCRBY', KEYS[k], 'n', 1)
      table.insert(out, id)
    end
  end
end
return out
"""
)

# The webhook's batch in one command where every key may be in one script (one server or
# Sentinel; Redis Cluster pipelines the same writes around ENQUEUE instead: other slots).
# KEYS: streams, firing index, firing alerts, job states, bell, then one intake key per
# job that may be collapsed. ARGV: the intake key's ttl ms, how many firing and resolved
# alerts, base, group, each firing alert's fingerprint, expiry ms and data, each resolved
# fingerprint, then per job: 1 if it may be collapsed (else 0), its event id, its state
# (JSON; '' = none), its rule and the job (JSON). The firing index first, then the jobs
# as ENQUEUE does; a collapsed job leaves no state behind. Returns the event ids of the
# collapsed jobs.
INTAKE = (
    _QUEUE_FN
    + """
local ttl, nf, nr = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local q = {streams = KEYS[1], bell = KEYS[5], base = ARGV[4], group = ARGV[5]}
local i = 6
for _ = 1, nf do
  redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 2])
  i = i + 3
end
for _ = 1, nr do
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
  i = i + 1
end
local k, out = 5, {}
while i <= #ARGV do
  local id, queue = ARGV[i + 1], true
  if ARGV[i] == '1' then
    k = k + 1
    if redis.call('HSETNX', KEYS[k], 'id', id) == 1 then
      redis.call('PEXPIRE', KEYS[k], ttl)
    else
      redis.call('HINCRBY', KEYS[k], 'n', 1)
      table.insert(out, id)
      queue = false
    end
  end
  if queue then
    if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[4], id, ARGV[i + 2]) end
    push(q, ARGV[i + 3], ARGV[i + 4])
  end
  i = i + 5
end
return out
"""
)

# KEYS: intake key; ARGV: event id, 1 if the episode is done (the key stays until it
# expires: later copies are still collapsed). Only the job that owns the key settles it;
# returns how many copies were collapsed into it.
_SETTLE_FN = """
local function settle(key, id, done)
  if redis.call('HGET', key, 'id') ~= id then return 0 end
  local n = tonumber(redis.call('HGET', key, 'n') or '0')
  if done == '1' then
    redis.call('HSET', key, 'n', 0)
  else
    redis.call('DEL', key)
  end
  return n
end
"""
SETTLE_INTAKE = _SETTLE_FN + "return settle(KEYS[1], ARGV[1], ARGV[2])"

# KEYS: stream; ARGV: group, entry id. Acked entries are deleted: the stream
# holds only unfinished jobs, so it never needs a trim that could drop one.
_ACK_FN = """
local function ack(stream, group, id)
  redis.pcall('XACK', stream, group, id)
  return redis.call('XDEL', stream, id)
end
"""
ACK = _ACK_FN + "return ack(KEYS[1], ARGV[1], ARGV[2])"

# KEYS: streams, turn, legacy; ARGV: base, group, consumer, count. Up to count new jobs,
# each taken round robin (``take``): {0, jobs}. None: {the server's ms, {}, the rules
# with a stream}, for a blocking XREAD on them from that ms (a job queued after this
# call wakes the reader).
DEQUEUE = (
    _QUEUE_FN
    + """
local q = {streams = KEYS[1], turn = KEYS[2], legacy = KEYS[3], base = ARGV[1], group = ARGV[2]}
local out = {}
for _ = 1, tonumber(ARGV[4]) do
  local got = take(q, ARGV[3])
  if not got then break end
  table.insert(out, got)
end
if #out > 0 then return {0, out} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {now, out, redis.call('ZRANGE', KEYS[1], 0, -1)}
"""
)

# KEYS: streams, legacy; ARGV: base, group, consumer, min idle ms, count, cursors (JSON:
# rule ('' legacy) -> XAUTOCLAIM cursor). XAUTOCLAIM scans at most 10 x COUNT pending
# entries per call, so each stream goes on from its cursor a few times; each claimed
# entry comes with its delivery count. Returns {cursors (JSON), {rule, id, fields, n}...}.
RECLAIM = """
local cursors, want, out = cjson.decode(ARGV[6]), tonumber(ARGV[5]), {}
local names = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(names, 1, '')
for _, name in ipairs(names) do
  if #out >= want then break end
  local stream = KEYS[2]
  if name ~= '' then stream = ARGV[1] .. name end
  if redis.call('EXISTS', stream) == 1 then
    local cursor = cursors[name] or '0-0'
    for _ = 1, 10 do
      local r = redis.pcall('XAUTOCLAIM', stream, ARGV[2], ARGV[3], ARGV[4], cursor,
                            'COUNT', want - #out)
      if r['err'] then cursor = '0-0' break end
      cursor = r[1]
      for _, entry in ipairs(r[2]) do
        if entry and entry[2] then
          local p = redis.call('XPENDING', stream, ARGV[2], entry[1], entry[1], 1)
          local n = 1
          if p[1] then n = p[1][4] end
          table.insert(out, {name, entry[1], entry[2], n})
        end
      end
      if #out >= want or cursor == '0-0' then break end
    end
    cursors[name] = cursor
  end
end
return {cjson.encode(cursors), out}
"""

# KEYS: streams, legacy; ARGV: base, group, quiet ms (the legacy stream), then the rules
# loaded now. A stream of a rule not loaded (renamed or removed) goes once it is empty
# (acked entries are deleted: empty is drained, nothing pending); the legacy stream once
# it is empty and no consumer of its group has read it for the quiet time (the last
# replica of the previous release is gone). Returns how many streams went.
RETIRE = """
local active, removed = {}, 0
for i = 4, #ARGV do active[ARGV[i]] = true end
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local stream = ARGV[1] .. name
  if not active[name] and redis.call('XLEN', stream) == 0 then
    redis.call('DEL', stream)
    redis.call('ZREM', KEYS[1], name)
    removed = removed + 1
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('XLEN', KEYS[2]) == 0 then
  local quiet = true
  local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[2], ARGV[2])
  if type(consumers) == 'table' and not consumers['err'] then
    for _, c in ipairs(consumers) do
      for j = 1, #c, 2 do
        if c[j] == 'idle' and tonumber(c[j + 1]) < tonumber(ARGV[3]) then quiet = false end
      end
    end
  end
  if quiet then
    redis.call('DEL', KEYS[2])
    removed = removed + 1
  end
end
return removed
"""

# KEYS: stream, deferred zset, held hash; ARGV: group, entry id, delay ms,
# member (17-char token + job), event id, 1 if the job is held by a pause or window
DEFER = (
    _NOW_MS
    + """
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[4])
else
  redis.call('HDEL', KEYS[3], ARGV[5])
end
redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""
)

# KEYS: deferred zset, held hash. Every held job still deferred becomes due now.
RELEASE_HELD = (
    _NOW_MS
    + """
local held = redis.call('HVALS', KEYS[2])
local n = 0
for _, member in ipairs(held) do
  if redis.call('ZSCORE', KEYS[1], member) then
    redis.call('ZADD', KEYS[1], now, member)
    n = n + 1
  end
end
redis.call('DEL', KEYS[2])
return n
"""
)

# KEYS: job-state hash; ARGV: event id, state, why, target, now (epoch seconds).
# Only a job still in the index moves: one whose outcome is recorded stays gone.
_JOB_STATE_FN = """
local function job_state(key, id, state, why, target, now)
  local data = redis.call('HGET', key, id)
  if not data then return 0 end
  local job = cjson.decode(data)
  if job['state'] ~= state or job['why'] ~= why then
    job['since'] = tonumber(now)
  end
  job['state'] = state
  job['why'] = why
  if target ~= '' then job['target'] = target end
  local out = cjson.encode(job)
  -- cjson writes 14 significant digits: put received_at (the jobs view's order) back as written
  local received = string.match(data, '"received_at":%s*(%-?[%d%.]+[eE]?[%+%-]?%d*)')
  if received then
    out = string.gsub(out, '"received_at":%-?[%d%.]+[eE]?[%+%-]?%d*', '"received_at":' .. received, 1)
  end
  redis.call('HSET', key, id, out)
  return 1
end
"""
JOB_STATE = _JOB_STATE_FN + "return job_state(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])"

# KEYS: deferred zset, streams, bell, legacy; ARGV: max jobs to move, base, group. Each
# due job goes back on its rule's stream (a member the job's rule cannot be read from
# goes on the legacy stream, where its reader dead-letters it as unreadable).
PROMOTE = (
    _NOW_MS
    + _QUEUE_FN
    + """
local q = {streams = KEYS[2], bell = KEYS[3], base = ARGV[2], group = ARGV[3]}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local job = string.sub(member, 18)
  local ok, decoded = pcall(cjson.decode, job)
  local rule = ok and type(decoded) == 'table' and decoded['rule']
  if type(rule) == 'string' and string.match(rule, '^[a-z0-9][a-z0-9._-]*$') then
    push(q, rule, job)
  else
    redis.call('XADD', KEYS[4], '*', 'job', job)
  end
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""
)

# KEYS: stream, dead-letter stream; ARGV: group, entry id, record json, max length
DEAD_LETTER = """
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'data', ARGV[3])
redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
"""

# KEYS: legacy stream, deferred zset, streams; ARGV: base
DEPTH = """
local n = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
for _, name in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  n = n + redis.call('XLEN', ARGV[1] .. name)
end
return n
"""

# KEYS: lease; ARGV: token, ttl ms
EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease; ARGV: token
_RELEASE_FN = """
local function release(key, token)
  if redis.call('GET', key) == token then
    return redis.call('DEL', key)
  end
  return 0
end
"""
RELEASE = _RELEASE_FN + "return release(KEYS[1], ARGV[1])"

# KEYS: slots zset; ARGV: token, limit, ttl ms. Members are scored by their expiry.
_ACQUIRE_SLOT_FN = """
local function acquire_slot(key, token, limit, ttl, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if not redis.call('ZSCORE', key, token) and redis.call('ZCARD', key) >= tonumber(limit) then
    return 0
  end
  redis.call('ZADD', key, now + tonumber(ttl), token)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, math.floor(tonumber(last[2])))
  return 1
end
"""
ACQUIRE_SLOT = _NOW_MS + _ACQUIRE_SLOT_FN + "return acquire_slot(KEYS[1], ARGV[1], ARGV[2], ARGV[3], now)"

# KEYS: attempts zset, circuit key; ARGV: window ms, max attempts, unique member.
# Returns {failures in the window, 1 if this failure opened the circuit}.
RECORD_FAILURE = (
    _NOW_MS
    + """
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], '1', 'PX', window)
  return {n, 1}
end
return {n, 0}
"""
)

# KEYS: firing index zset, firing alerts hash; ARGV: now ms. Drops expired, returns the rest.
FIRING = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for i = 1, #expired, 500 do
  redis.call('HDEL', KEYS[2], unpack(expired, i, math.min(i + 499, #expired)))
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
end
return redis.call('HVALS', KEYS[2])
"""

# KEYS: firing index zset, firing alerts hash; ARGV: fingerprint, now ms.
# Drops up to 100 expired entries on the way (alerts whose resolution never came).
_FIRING_FN = """
local function firing(index, alerts, fingerprint, now)
  local expired = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, 100)
  if #expired > 0 then
    redis.call('ZREM', index, unpack(expired))
    redis.call('HDEL', alerts, unpack(expired))
  end
  local expires = redis.call('ZSCORE', index, fingerprint)
  if not expires or tonumber(expires) <= tonumber(now) then return false end
  return redis.call('HGET', alerts, fingerprint)
end
"""
IS_FIRING = _FIRING_FN + "return firing(KEYS[1], KEYS[2], ARGV[1], ARGV[2])"

# KEYS: audit stream, event hash, job-state hash; ARGV: event json, rule, outcome, outcome label,
# max events, retention ms, event id, event key prefix (same {audit} tag).
# Re-recording an event replaces its earlier entry; the events trimmed off the
# stream (by count or age) lose their lookup key too, as in the memory store.
_RECORD_EVENT_FN = """
local function record_event(stream, event, jobs, a, now)
  redis.call('HDEL', jobs, a[7])
  local prev = redis.call('HGET', event, 's')
  if prev then redis.call('XDEL', stream, prev) end
  local sid = redis.call('XADD', stream, '*', 'i', a[7], 'r', a[2], 'o', a[3], 'l', a[4], 'e', a[1])
  redis.call('HSET', event, 'e', a[1], 's', sid)
  redis.call('PEXPIRE', event, a[6])
  local over = redis.call('XLEN', stream) - tonumber(a[5])
  if over > 0 then
    for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', over)) do
      local fields = entry[2]
      for j = 1, #fields, 2 do
        if fields[j] == 'i' then redis.call('DEL', a[8] .. fields[j + 1]) end
      end
      redis.call('XDEL', stream, entry[1])
    end
  end
  redis.call('XTRIM', stream, 'MINID', now - tonumber(a[6]))
  return sid
end
"""
RECORD_EVENT = _NOW_MS + _RECORD_EVENT_FN + "return record_event(KEYS[1], KEYS[2], KEYS[3], ARGV, now)"

# KEYS: thread key; ARGV: ts, ttl ms. The first writer wins; everyone gets the winner.
CLAIM_THREAD = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""

# KEYS: approval scope, request, index; ARGV: event id, request (JSON), ttl ms, score
# (requested at, ms), cutoff (ms: older index entries are gone). The first caller of a
# scope stores its request: {1, event id}; any later one learns whose it is: {0, event id}.
REQUEST_APPROVAL = """
local current = redis.call('GET', KEYS[1])
if current then return {0, current} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
return {1, ARGV[1]}
"""

# KEYS: request, decision; ARGV: decision (JSON). The first decision wins and lives as
# long as the request: 1 stored, 2 already decided, 0 no such request.
DECIDE_APPROVAL = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
if ttl < 1 then ttl = 1 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ttl) then return 1 end
return 2
"""

# KEYS: request, message; ARGV: where the Slack message is (JSON). Lives as long as the request.
SET_APPROVAL_MESSAGE = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
return 1
"""

# A job's admission (``store.admission``), on one server only: its keys span hash slots,
# and they come inside ARGV[1] (one JSON object; a command with a few arguments costs
# redis-py far less to encode than one with twenty-five), which a cluster would refuse.
# ARGV[1]: {keys: {pauses, index, alerts, episode, cooldown, circuit, lease, slots, states,
# marker}, pauses: version seen, fingerprint, starts_at, automatic, cooldown, circuit
# (check them: booleans), lease (ttl ms; 0: check only), token, slot ('' none), limit,
# id (event id), why (running), target, now (epoch seconds, for the job state)}.
# Returns {stop ('' = admitted), ms left, the lease's value (locked), copies so far}.
ADMIT = (
    _NOW_MS
    + _FIRING_FN
    + _ACQUIRE_SLOT_FN
    + _JOB_STATE_FN
    + """
local a = cjson.decode(ARGV[1])
local k = a['keys']
if (redis.call('GET', k['pauses']) or '0') ~= tostring(a['pauses']) then
  return {'pauses_changed', 0, '', 0}
end
if a['automatic'] then
  local data = firing(k['index'], k['alerts'], a['fingerprint'], now)
  if not data or cjson.decode(data)['startsAt'] ~= a['starts_at'] then return {'resolved', 0, '', 0} end
  if redis.call('EXISTS', k['episode']) == 1 then return {'duplicate', 0, '', 0} end
end
if a['cooldown'] then
  local left = redis.call('PTTL', k['cooldown'])
  if left > 0 then return {'cooldown', left, '', 0} end
end
if a['circuit'] then
  local left = redis.call('PTTL', k['circuit'])
  if left > 0 then return {'circuit', left, '', 0} end
end
if a['lease'] > 0 then
  if not redis.call('SET', k['lease'], a['token'], 'NX', 'PX', a['lease']) then
    return {'locked', redis.call('PTTL', k['lease']), redis.call('GET', k['lease']) or '', 0}
  end
  if a['slot'] ~= '' and acquire_slot(k['slots'], a['slot'], a['limit'], a['lease'], now) == 0 then
    redis.call('DEL', k['lease'])
    return {'concurrency', 0, '', 0}
  end
  job_state(k['states'], a['id'], 'running', a['why'], a['target'], a['now'])
end
local copies = 0
if redis.call('HGET', k['marker'], 'id') == a['id'] then
  copies = tonumber(redis.call('HGET', k['marker'], 'n') or '0')
end
return {'', 0, '', copies}
"""
)

# A job's end (``store.admission``), on one server only, keys inside ARGV[1] as for ADMIT.
# ARGV[1]: {keys: {marker, audit, event, states, stream (the delivery's), lease, slots,
# cooldown, attempts, episode, resolution (the claim to forget, '' none)}, id, expected
# (copies the event counts; -1: any), done, record (RECORD_EVENT's ARGV but the event),
# group, ack (entry id, '' none), token (lease, '' none), slot ('' none), cooldown (ms, 0
# none), reset (failures), episode (ttl ms, 0 none), next (a consumer to hand its next
# job, '' none), queue (``take``'s q)}; ARGV[2]: the event (JSON). When the marker counts
# other copies than expected, nothing is written: returns {0, copies} and the caller
# builds the event again. Else {1, copies, the next job as ``take`` returns it (when next)}.
CONCLUDE = (
    _NOW_MS
    + _SETTLE_FN
    + _RECORD_EVENT_FN
    + _ACK_FN
    + _RELEASE_FN
    + _QUEUE_FN
    + """
local a = cjson.decode(ARGV[1])
local k = a['keys']
local n = 0
if redis.call('HGET', k['marker'], 'id') == a['id'] then
  n = tonumber(redis.call('HGET', k['marker'], 'n') or '0')
end
if a['expected'] ~= -1 and n ~= a['expected'] then return {0, n} end
if a['cooldown'] > 0 then redis.call('SET', k['cooldown'], '1', 'PX', a['cooldown']) end
if a['reset'] then redis.call('DEL', k['attempts']) end
if a['episode'] > 0 then redis.call('SET', k['episode'], '1', 'PX', a['episode']) end
if k['resolution'] ~= '' then redis.call('DEL', k['resolution']) end
settle(k['marker'], a['id'], a['done'] and '1' or '0')
local r = a['record']
record_event(k['audit'], k['event'], k['states'], {ARGV[2], r[1], r[2], r[3], r[4], r[5], r[6], r[7]}, now)
if a['ack'] ~= '' then ack(k['stream'], a['group'], a['ack']) end
if a['slot'] ~= '' then redis.call('ZREM', k['slots'], a['slot']) end
if a['token'] ~= '' then release(k['lease'], a['token']) end
if a['next'] ~= '' then
  local handed = take(a['queue'], a['next'])
  if handed then return {1, n, handed} end
end
return {1, n}
"""
)

# KEYS: per key its failures (ZSET: member per failure, scored by the server's ms) then its
# "burst reported" marker; ARGV: window ms, limit, a nonce (unique members). Counts one
# failure under each key in the sliding window and keeps the newest limit + 1. Per key:
# failures, ms refused (until fewer than limit remain in the window; 0: not refused), and
# 1 for the failure that made it refused the first time in this burst (the marker lives
# a window past the refusal), else 0.
COUNT_FAILURE = (
    _NOW_MS
    + """
local window, limit, out = tonumber(ARGV[1]), tonumber(ARGV[2]), {}
for i = 1, #KEYS, 2 do
  local k, told = KEYS[i], KEYS[i + 1]
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
  redis.call('ZADD', k, now, ARGV[3] .. ':' .. i)
  redis.call('ZREMRANGEBYRANK', k, 0, -(limit + 2))
  redis.call('PEXPIRE', k, window)
  local n, left, first = redis.call('ZCARD', k), 0, 0
  if n >= limit then
    local at = redis.call('ZRANGE', k, -limit, -limit, 'WITHSCORES')
    left = math.max(1, tonumber(at[2]) + window - now)
    if redis.call('SET', told, '1', 'NX', 'PX', left + window) then
      first = 1
    else
      redis.call('PEXPIRE', told, left + window)
    end
  end
  table.insert(out, n)
  table.insert(out, left)
  table.insert(out, first)
end
return out
"""
)

# KEYS: the session, its credential's set of sessions; ARGV: the name, ttl ms, session id.
# The set lives as long as its longest session.
OPEN_SESSION = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
"""

# The blast-radius brake (max_targets). KEYS: the rule's counted targets (zset: target ->
# ms), its held jobs (hash: event id -> JSON), its released event ids (set). ARGV: event
# id, target, count, window ms, dry run ('1'/'0'), how long the held and released keys
# live (ms; refreshed by every write). Returns {verdict, targets counted, held targets...}:
# a released job passes once (counted); a held job stays held whatever the window does;
# a target in the window, or a new one while fewer than count are, passes (counted);
# else the job is held, and the first one held of an empty brake opens it (told once).
BRAKE_ENTER = (
    _NOW_MS
    + """
local id, target, count, within = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - within)
local function count_it(verdict)
  redis.call('ZADD', KEYS[1], now, target)
  redis.call('PEXPIRE', KEYS[1], within)
  return {verdict, redis.call('ZCARD', KEYS[1])}
end
if redis.call('SREM', KEYS[3], id) == 1 then
  return count_it('released')
end
local n = redis.call('ZCARD', KEYS[1])
if redis.call('HEXISTS', KEYS[2], id) == 1 then
  return {'held', n}
end
if redis.call('ZSCORE', KEYS[1], target) or n < count then
  return count_it('pass')
end
local first = redis.call('HLEN', KEYS[2]) == 0
local job = cjson.encode({target = target, at = now / 1000, dry_run = ARGV[5] == '1'})
redis.call('HSET', KEYS[2], id, job)
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if first then
  return {'opened', n, target}
end
return {'held', n}
"""
)

# KEYS: the rule's held jobs, its released event ids; ARGV: how long the released key
# lives (ms), then the event ids to release ('*' alone: every held job). Moves them from
# held to released; returns {event id, JSON} of each one moved.
BRAKE_RELEASE = """
local ids, out = {}, {}
if ARGV[2] == '*' then
  ids = redis.call('HKEYS', KEYS[1])
else
  for i = 2, #ARGV do table.insert(ids, ARGV[i]) end
end
for _, id in ipairs(ids) do
  local job = redis.call('HGET', KEYS[1], id)
  if job then
    redis.call('HDEL', KEYS[1], id)
    redis.call('SADD', KEYS[2], id)
    table.insert(out, id)
    table.insert(out, job)
  end
end
if #out > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return out
"""
