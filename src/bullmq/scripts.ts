/**
 * The Lua scripts of the BullMQ job store. pollkit keeps, beside each BullMQ job, a small hash of its
 * own: the version clients see, the job as they last saw it (JSON), the BullMQ progress that state
 * reflects, and the indexes for owners, listing and retention. Reads take that hash and the BullMQ job
 * in one script, so a fold never mixes two moments; writes are compare-and-set on the version, so of
 * several processes folding the same BullMQ change exactly one stores it.
 *
 * Changes that BullMQ does not announce itself (a cancel, a job finished or forgotten through pollkit)
 * are announced on the queue's own event stream as a `pollkit:change` event, the way BullMQ's
 * `QueueEventsProducer` adds custom events, so one `QueueEvents` per process hears everything.
 *
 * @module
 */
import { LuaScript } from '../redis/scripts.js';

// The projection hash: v (version), s (status), j (the StoredJob as JSON), bp (the BullMQ progress JSON
// it reflects), q (insertion sequence), o (owner index key or ''), i (idempotency key or ''),
// x (expiresAtMs or '').

/** How many values {@link READ_JOBS} returns per job. */
export const READ_WIDTH = 12;

/**
 * KEYS: BullMQ's completed, failed, delayed, prioritized, active and waiting-children keys.
 * ARGV: projection key prefix, BullMQ job key prefix, then an id and the version this process already
 * has ('' for none) per job. Returns, per job, READ_WIDTH strings: v ('' when pollkit has no such job),
 * j ('' when v is the version already known), bp, BullMQ state, ats, atm, progress, returnvalue,
 * failedReason, processedOn, finishedOn, opts.
 */
export const READ_JOBS = new LuaScript(`
local out = {}
for n = 3, #ARGV, 2 do
  local id, known = ARGV[n], ARGV[n + 1]
  local p = redis.call('HMGET', ARGV[1] .. id, 'v', 'j', 'bp')
  if not p[1] then
    for _ = 1, ${READ_WIDTH} do table.insert(out, '') end
  else
    local j = p[2]
    if known ~= '' and known == p[1] then j = '' end
    local b = redis.call('HMGET', ARGV[2] .. id, 'name', 'ats', 'atm', 'progress', 'returnvalue', 'failedReason',
      'processedOn', 'finishedOn', 'opts')
    local state = 'missing'
    if b[1] then
      if redis.call('ZSCORE', KEYS[1], id) then state = 'completed'
      elseif redis.call('ZSCORE', KEYS[2], id) then state = 'failed'
      elseif redis.call('ZSCORE', KEYS[3], id) then state = 'delayed'
      elseif redis.call('ZSCORE', KEYS[4], id) then state = 'prioritized'
      elseif redis.call('LPOS', KEYS[5], id) then state = 'active'
      elseif redis.call('ZSCORE', KEYS[6], id) then state = 'waiting-children'
      else state = 'waiting' end
    end
    table.insert(out, p[1])
    table.insert(out, j)
    table.insert(out, p[3] or '')
    table.insert(out, state)
    for k = 2, 9 do table.insert(out, b[k] or '') end
  end
end
return out
`);

/**
 * KEYS: projection, all-jobs index, sequence counter, expiry index, owner sequences (a hash: owner
 * index → count).
 * ARGV: id, json, version, status, owner index key|'', idempotency key|'', expiresAtMs|'', safety TTL|'',
 * most jobs per owner|''.
 * Returns {1, seq} inserted, {0, id} the job already holding that idempotency key, {-1} id taken,
 * {-2, count} the owner has its most jobs. An owner's index is scored by the owner's own count, so its
 * page cursors say nothing of other owners.
 */
export const INSERT_JOB = new LuaScript(`
local id, idem = ARGV[1], ARGV[6]
if idem ~= '' then
  local existing = redis.call('GET', idem)
  if existing then return {0, existing} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
if ARGV[5] ~= '' and ARGV[9] ~= '' then
  local owned = redis.call('ZCARD', ARGV[5])
  if owned >= tonumber(ARGV[9]) then return {-2, owned} end
end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'v', ARGV[3], 's', ARGV[4], 'j', ARGV[2], 'bp', '', 'q', seq, 'o', ARGV[5], 'i', idem,
  'x', ARGV[7])
redis.call('ZADD', KEYS[2], seq, id)
if ARGV[5] ~= '' then redis.call('ZADD', ARGV[5], redis.call('HINCRBY', KEYS[5], ARGV[5], 1), id) end
if idem ~= '' then redis.call('SET', idem, id) end
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[7], id)
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
  if idem ~= '' then redis.call('PEXPIRE', idem, ARGV[8]) end
end
return {1, seq}
`);

// Adds a pollkit:change event to the queue's stream, trimmed like BullMQ trims its own.
const NOTIFY = `
local function notify(stream, meta, fields)
  local maxEvents = redis.call('HGET', meta, 'opts.maxLenEvents') or 10000
  redis.call('XADD', stream, 'MAXLEN', '~', maxEvents, '*', 'event', 'pollkit:change', unpack(fields))
end
`;

/**
 * KEYS: projection, expiry index, BullMQ job, BullMQ events stream, BullMQ meta, BullMQ completed,
 * BullMQ failed.
 * ARGV: expected version, version, status, json, bp, expiresAtMs|'', safety TTL|'', id, notify ('1' or
 * ''), withdraw reason ('' to leave BullMQ alone), origin (the writing store's token, so it skips its own events).
 * A withdraw reason marks an unfinished BullMQ job to fail at its next start without running (BullMQ's
 * own deferred failure, `defa`) and asks workers to abort the running attempt.
 * Returns {1} written, {-1} no such job, {0, v, j, bp} the current state when the version moved on.
 */
export const WRITE_JOB = new LuaScript(`${NOTIFY}
local current = redis.call('HMGET', KEYS[1], 'v', 'j', 'bp', 'i')
if not current[1] then return {-1} end
if current[1] ~= ARGV[1] then return {0, current[1], current[2], current[3] or ''} end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3], 'j', ARGV[4], 'bp', ARGV[5], 'x', ARGV[6])
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[8])
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  if current[4] and current[4] ~= '' then redis.call('PEXPIRE', current[4], ARGV[7]) end
end
local withdraw = ARGV[10]
if withdraw ~= '' and redis.call('EXISTS', KEYS[3]) == 1 and not redis.call('ZSCORE', KEYS[6], ARGV[8])
    and not redis.call('ZSCORE', KEYS[7], ARGV[8]) then
  redis.call('HSET', KEYS[3], 'defa', withdraw)
end
if ARGV[9] ~= '' then
  local fields = {'jobId', ARGV[8], 'version', ARGV[2], 'origin', ARGV[11]}
  if withdraw ~= '' then table.insert(fields, 'cancel'); table.insert(fields, '1') end
  notify(KEYS[4], KEYS[5], fields)
end
return {1}
`);

/**
 * KEYS: projection, all-jobs index, expiry index, BullMQ events stream, BullMQ meta.
 * ARGV: expected version, id, notify ('1' or ''), origin.
 * Returns {1} deleted, {-1} no such job, {0, v, j, bp} the current state when the version moved on.
 */
export const DELETE_JOB = new LuaScript(`${NOTIFY}
local current = redis.call('HMGET', KEYS[1], 'v', 'j', 'bp', 'o', 'i')
if not current[1] then return {-1} end
if current[1] ~= ARGV[1] then return {0, current[1], current[2], current[3] or ''} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if current[4] and current[4] ~= '' then redis.call('ZREM', current[4], ARGV[2]) end
if current[5] and current[5] ~= '' and redis.call('GET', current[5]) == ARGV[2] then redis.call('DEL', current[5]) end
if ARGV[3] ~= '' then notify(KEYS[4], KEYS[5], {'jobId', ARGV[2], 'version', ARGV[1], 'deleted', '1', 'origin', ARGV[4]}) end
return {1}
`);

/**
 * KEYS: expiry index, all-jobs index, BullMQ events stream, BullMQ meta.
 * ARGV: now (epoch ms), limit, projection key prefix, origin.
 * Returns {{id, version, ...}, next expiry or false}.
 */
export const SWEEP_JOBS = new LuaScript(`${NOTIFY}
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
      notify(KEYS[3], KEYS[4], {'jobId', id, 'version', current[1], 'deleted', '1', 'origin', ARGV[4]})
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
