/**
 * The Lua scripts behind the Redis stores. Every state change is one script, so the check (version,
 * idempotency key, epoch), the write, the index upkeep and the PUBLISH that wakes other processes
 * happen atomically: no reader ever sees a write whose notification could still be lost, and two
 * writers racing on one job serialize inside Redis instead of needing WATCH on a connection of their own.
 *
 * Scripts run by EVALSHA and fall back to EVAL once per connection when Redis answers NOSCRIPT (a
 * restart or SCRIPT FLUSH drops the cache), so nothing is registered on the caller's client.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * A Lua script run by its SHA-1, loaded on demand. Internal to the Redis stores.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { LuaScript } from './scripts.js';
 * const ping = new LuaScript("return redis.call('PING')");
 * console.log(await ping.run(new Redis(), [], []));
 * ```
 */
export class LuaScript {
  /** The script's SHA-1, as EVALSHA wants it. */
  readonly sha: string;
  /** The Lua source. */
  readonly source: string;

  constructor(source: string) {
    this.source = source;
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** Runs the script with `keys` and `args`; loads it first when the server does not know it. */
  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return await redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

// --- jobs ------------------------------------------------------------------------------------------
// A job is a hash: v (version), s (status), j (the StoredJob as JSON), q (insertion sequence),
// o (the key of its owner index, or ''), i (its idempotency key, or ''), x (expiresAtMs, or ''),
// l (its lease's current expiry, or '') and h (its lease's holder, or ''). Renewals move l (and the
// job's score in the leases index) without touching j, so readers take the lease expiry from l.

/**
 * KEYS: job, all-jobs index, sequence counter, expiry index, owner sequences (a hash: owner index →
 * count), leases index.
 * ARGV: id, json, version, status, owner index key|'', idempotency key|'', expiresAtMs|'', safety TTL ms|'',
 * channel, message, job key prefix, lease expiry|'', lease holder|'', most jobs per owner|''.
 * Returns {1, seq} inserted, {0, json} an existing job with that idempotency key, {-1} id taken,
 * {-2, count} the owner has its most jobs.
 * An owner's index is scored by the owner's own count, so its page cursors say nothing of other owners.
 * A job that failed with a retryable problem gives its idempotency key up to the new one.
 */
export const INSERT_JOB = new LuaScript(`
local id, json, version, status = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ownerIndex, idem, expiresAt, ttl = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if idem ~= '' then
  local existing = redis.call('GET', idem)
  if existing then
    local current = redis.call('HMGET', ARGV[11] .. existing, 's', 'j')
    if current[2] then
      local released = false
      if current[1] == 'failed' then
        local ok, decoded = pcall(cjson.decode, current[2])
        released = ok and type(decoded) == 'table' and type(decoded.snapshot) == 'table'
          and type(decoded.snapshot.error) == 'table' and decoded.snapshot.error.retryable == true
      end
      if not released then return {0, current[2]} end
    end
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
if ownerIndex ~= '' and ARGV[14] ~= '' then
  local owned = redis.call('ZCARD', ownerIndex)
  if owned >= tonumber(ARGV[14]) then return {-2, owned} end
end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'v', version, 's', status, 'j', json, 'q', seq, 'o', ownerIndex, 'i', idem,
  'x', expiresAt, 'l', ARGV[12], 'h', ARGV[13])
redis.call('ZADD', KEYS[2], seq, id)
if ownerIndex ~= '' then redis.call('ZADD', ownerIndex, redis.call('HINCRBY', KEYS[5], ownerIndex, 1), id) end
if idem ~= '' then redis.call('SET', idem, id) end
if expiresAt ~= '' then redis.call('ZADD', KEYS[4], expiresAt, id) end
if ARGV[12] ~= '' then redis.call('ZADD', KEYS[6], ARGV[12], id) end
if ttl ~= '' then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if idem ~= '' then redis.call('PEXPIRE', idem, ttl) end
end
redis.call('PUBLISH', ARGV[9], ARGV[10])
return {1, seq}
`);

/**
 * Compare-and-set on the version and the lease expiry: the transition ran in JavaScript against that
 * version and lease, so neither a write nor a renewal may have come in between.
 * KEYS: job, expiry index, leases index.
 * ARGV: expected version, new version, status, json, expiresAtMs|'', safety TTL ms|'', id, channel,
 * message, expected lease expiry|'', new lease expiry|'', new lease holder|''.
 * Returns {1} written, {0, json, lease} someone else wrote or renewed first (here is their state), {-1}
 * no such job.
 */
export const UPDATE_JOB = new LuaScript(`
local current = redis.call('HMGET', KEYS[1], 'v', 'j', 'x', 'i', 'l')
if not current[1] then return {-1} end
local lease = current[5] or ''
if current[1] ~= ARGV[1] or lease ~= ARGV[10] then return {0, current[2], lease} end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3], 'j', ARGV[4], 'x', ARGV[5], 'l', ARGV[11], 'h', ARGV[12])
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[7])
elseif current[3] and current[3] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[7])
end
if ARGV[11] ~= '' then redis.call('ZADD', KEYS[3], ARGV[11], ARGV[7]) else redis.call('ZREM', KEYS[3], ARGV[7]) end
-- The idempotency key may belong to a newer job by now; only its holder's TTL moves it.
local idem = current[4]
local ownsKey = idem and idem ~= '' and redis.call('GET', idem) == ARGV[7]
if ARGV[6] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  if ownsKey then redis.call('PEXPIRE', idem, ARGV[6]) end
else
  redis.call('PERSIST', KEYS[1])
  if ownsKey then redis.call('PERSIST', idem) end
end
redis.call('PUBLISH', ARGV[8], ARGV[9])
return {1}
`);

/**
 * Extends the leases that ARGV[1] still holds on unfinished jobs; no version, no notice.
 * KEYS: leases index. ARGV: holder, new expiry, safety TTL ms, job key prefix, ids….
 * Returns the ids not renewed (gone, finished, held by another).
 */
export const RENEW_LEASES = new LuaScript(`
local lost = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local key = ARGV[4] .. id
  local current = redis.call('HMGET', key, 'h', 's', 'i')
  if current[1] == ARGV[1] and (current[2] == 'queued' or current[2] == 'running') then
    redis.call('HSET', key, 'l', ARGV[2])
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('PEXPIRE', key, ARGV[3])
    if current[3] and current[3] ~= '' and redis.call('GET', current[3]) == id then redis.call('PEXPIRE', current[3], ARGV[3]) end
  else
    table.insert(lost, id)
  end
end
return lost
`);

/**
 * Unfinished jobs whose lease lapsed at or before ARGV[1], at most ARGV[2]; drops index entries of
 * jobs that are gone or finished.
 * KEYS: leases index. ARGV: now, limit, job key prefix.
 * Returns {{json, lease, ...}, next lease expiry or false}.
 */
export const EXPIRED_LEASES = new LuaScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, id in ipairs(ids) do
  local current = redis.call('HMGET', ARGV[3] .. id, 'j', 'l', 's')
  if current[1] and current[2] and current[2] ~= '' and (current[3] == 'queued' or current[3] == 'running') then
    table.insert(out, current[1])
    table.insert(out, current[2])
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
local nextLease = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return {out, nextLease[2] or false}
`);

/**
 * Removes a job if it is still at the version the caller's condition saw.
 * KEYS: job, all-jobs index, expiry index, leases index. ARGV: expected version, id, channel, message.
 * Returns {1} removed, {0, json} it changed meanwhile, {-1} no such job.
 */
export const DELETE_JOB = new LuaScript(`
local current = redis.call('HMGET', KEYS[1], 'v', 'j', 'o', 'i')
if not current[1] then return {-1} end
if current[1] ~= ARGV[1] then return {0, current[2]} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
if current[3] and current[3] ~= '' then redis.call('ZREM', current[3], ARGV[2]) end
if current[4] and current[4] ~= '' and redis.call('GET', current[4]) == ARGV[2] then redis.call('DEL', current[4]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {1}
`);

/**
 * Removes up to ARGV[2] jobs whose expiresAtMs <= ARGV[1], announcing each deletion.
 * KEYS: expiry index, all-jobs index. ARGV: now, limit, job key prefix, channel, origin.
 * Returns {{id, version, ...}, next expiry or false}.
 */
export const SWEEP_JOBS = new LuaScript(`
local now = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local removed = {}
for _, id in ipairs(ids) do
  local key = ARGV[3] .. id
  local current = redis.call('HMGET', key, 'v', 'o', 'i', 'x')
  redis.call('ZREM', KEYS[1], id)
  if current[1] then
    if current[4] and current[4] ~= '' and tonumber(current[4]) <= now then
      redis.call('DEL', key)
      redis.call('ZREM', KEYS[2], id)
      if current[2] and current[2] ~= '' then redis.call('ZREM', current[2], id) end
      if current[3] and current[3] ~= '' and redis.call('GET', current[3]) == id then redis.call('DEL', current[3]) end
      redis.call('PUBLISH', ARGV[4], cjson.encode({o = ARGV[5], k = 'j', id = id, v = tonumber(current[1]), d = 1}) .. '\\n')
      table.insert(removed, id)
      table.insert(removed, current[1])
    end
  else
    -- Redis expired the hash itself (its TTL is a safety net past expiresAtMs): drop the index entry.
    redis.call('ZREM', KEYS[2], id)
  end
end
local nextExpiry = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {removed, nextExpiry[2] or false}
`);

/**
 * One page of an index, newest first, filtered by status; examines at most ARGV[5] entries so a rare
 * status cannot turn one call into a scan of every job.
 * KEYS: the index (all jobs, or one owner's). ARGV: exclusive upper sequence|'', limit, status|'',
 * job key prefix, examine budget.
 * Returns {{json, ...}, cursor sequence or false}.
 */
export const LIST_JOBS = new LuaScript(`
local limit, status, budget = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[5])
local max = '+inf'
if ARGV[1] ~= '' then max = '(' .. ARGV[1] end
local out, last, examined = {}, false, 0
while true do
  local items = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'WITHSCORES', 'LIMIT', 0, 128)
  if #items == 0 then return {out, false} end
  for i = 1, #items, 2 do
    local id, seq = items[i], items[i + 1]
    local current = redis.call('HMGET', ARGV[4] .. id, 's', 'j')
    if not current[2] then
      redis.call('ZREM', KEYS[1], id)
    elseif status == '' or current[1] == status then
      if #out == limit then return {out, last} end
      table.insert(out, current[2])
      last = seq
    end
    max = '(' .. seq
    examined = examined + 1
    if examined >= budget and #out < limit then return {out, seq} end
  end
  if #items < 256 then return {out, false} end
end
`);

/** KEYS: idempotency key. ARGV: job key prefix. Returns the job's JSON or false. */
export const FIND_IDEMPOTENT = new LuaScript(`
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('HGET', ARGV[1] .. id, 'j') or false
`);

/** KEYS: job keys. Returns each one's version, or false when it is gone. */
export const JOB_VERSIONS = new LuaScript(`
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGET', key, 'v') or false end
return out
`);

// --- topics ----------------------------------------------------------------------------------------
// A topic is a stream whose entry ids are 0-<offset + 1> (explicit, gap-free, never time-based), with
// fields t (timestampMs), k (key, absent for null) and v (the value as JSON, '' for undefined), and a
// meta hash {e: epoch, hw: high watermark}. The earliest offset is the first entry's, or hw when empty.

const TOPIC_PRELUDE = `
local function ensure(meta, candidate)
  local m = redis.call('HMGET', meta, 'e', 'hw')
  if m[1] then return m[1], tonumber(m[2]) end
  redis.call('HSET', meta, 'e', candidate, 'hw', 0)
  return candidate, 0
end
local function offsetOf(id) return tonumber(string.sub(id, 3)) - 1 end
local function timestampOf(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do if fields[i] == 't' then return tonumber(fields[i + 1]) end end
  return 0
end
local function trim(log, maxRecords, minTimestamp)
  if maxRecords ~= '' then redis.call('XTRIM', log, 'MAXLEN', tonumber(maxRecords)) end
  if minTimestamp == '' then return end
  local limit, count = tonumber(minTimestamp), 1
  while true do
    local head = redis.call('XRANGE', log, '-', '+', 'COUNT', count)
    if #head == 0 then return end
    for _, entry in ipairs(head) do
      if timestampOf(entry) >= limit then
        redis.call('XTRIM', log, 'MINID', entry[1])
        return
      end
    end
    redis.call('XTRIM', log, 'MINID', '0-' .. (offsetOf(head[#head][1]) + 2))
    if #head < count then return end
    count = 256
  end
end
local function earliest(log, hw)
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  if #first == 0 then return hw end
  return offsetOf(first[1][1])
end
`;

/**
 * KEYS: log, meta. ARGV: epoch candidate, timestampMs, has key (1|0), key, value JSON, maxRecords|'',
 * minTimestampMs|'', channel, origin, topic. Returns {offset, epoch, earliest, hw}.
 */
export const APPEND_RECORD = new LuaScript(`${TOPIC_PRELUDE}
local epoch = ensure(KEYS[2], ARGV[1])
local hw = redis.call('HINCRBY', KEYS[2], 'hw', 1)
if ARGV[3] == '1' then
  redis.call('XADD', KEYS[1], '0-' .. hw, 't', ARGV[2], 'k', ARGV[4], 'v', ARGV[5])
else
  redis.call('XADD', KEYS[1], '0-' .. hw, 't', ARGV[2], 'v', ARGV[5])
end
trim(KEYS[1], ARGV[6], ARGV[7])
local first = earliest(KEYS[1], hw)
redis.call('PUBLISH', ARGV[8], cjson.encode({o = ARGV[9], k = 't', t = ARGV[10], e = epoch, ea = first, hw = hw}) .. '\\n')
return {hw - 1, epoch, first, hw}
`);

/**
 * KEYS: log, meta. ARGV: epoch candidate, offset, limit, maxRecords|'', minTimestampMs|''.
 * Returns {epoch, earliest, hw, entries} with entries empty when the offset is outside the log.
 */
export const READ_RECORDS = new LuaScript(`${TOPIC_PRELUDE}
local epoch, hw = ensure(KEYS[2], ARGV[1])
trim(KEYS[1], ARGV[4], ARGV[5])
local first = earliest(KEYS[1], hw)
local offset = tonumber(ARGV[2])
local entries = {}
if offset >= first and offset < hw then
  entries = redis.call('XRANGE', KEYS[1], '0-' .. (offset + 1), '+', 'COUNT', ARGV[3])
end
return {epoch, first, hw, entries}
`);

/** KEYS: log, meta. ARGV: epoch candidate, maxRecords|'', minTimestampMs|''. Returns {epoch, earliest, hw}. */
export const TOPIC_POSITION = new LuaScript(`${TOPIC_PRELUDE}
local epoch, hw = ensure(KEYS[2], ARGV[1])
trim(KEYS[1], ARGV[2], ARGV[3])
return {epoch, earliest(KEYS[1], hw), hw}
`);

/** KEYS: log, meta. ARGV: new epoch, channel, origin, topic. Returns {epoch, 0, 0}. */
export const RESET_TOPIC = new LuaScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'e', ARGV[1], 'hw', 0)
redis.call('PUBLISH', ARGV[2], cjson.encode({o = ARGV[3], k = 't', t = ARGV[4], e = ARGV[1], ea = 0, hw = 0}) .. '\\n')
return {ARGV[1], 0, 0}
`);

/**
 * KEYS: log, meta. ARGV: channel, origin, topic, epoch for the announcement. Returns 1 when the topic
 * existed. Other processes hear a notice with `d = 1` and drop the topic.
 */
export const DELETE_TOPIC = new LuaScript(`
local existed = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[1], cjson.encode({o = ARGV[2], k = 't', t = ARGV[3], e = ARGV[4], ea = 0, hw = 0, d = 1}) .. '\\n')
if existed > 0 then return 1 end
return 0
`);
