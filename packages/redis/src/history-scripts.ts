import { LuaScript } from './lua-script.js';

/*
 * A room's history is two keys sharing one hash tag (so one slot on a Cluster):
 *
 * - KEYS[1], the meta hash: `e` epoch, `o` newest offset, `t` time of the newest entry (ms), `r`
 *   the run id of the Redis process that opened the epoch.
 * - KEYS[2], the log stream: one entry per message, id `<offset>-<ms>`, field `p` the payload.
 *
 * Ids carry the offset first, so `XRANGE log <n+1> +` reads from offset n+1 directly and
 * `XTRIM log MINID <n>` drops every offset below n; the time in the id's second half lets the age
 * trim find the first fresh entry by binary search. The meta hash is the authority on epoch and
 * offset: when it is missing, the room restarts in a new epoch and any leftover log is dropped.
 *
 * So it is when another Redis process holds it: a restart from a snapshot, or a replica promoted by
 * a failover, may lack the newest appends the last process took (snapshots lag, replication is
 * asynchronous), and going on in the same epoch would number new messages with offsets clients
 * already hold for others. A new epoch tells them instead (`epoch-changed`, `resync`).
 */
const PRELUDE = `
if redis.replicate_commands then redis.replicate_commands() end
local meta, log = KEYS[1], KEYS[2]

local function int(n) return string.format('%d', n) end

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The run id of this Redis process: the caller's (read when its connection opened), else read
-- here; nil when this user may not run INFO (the process is then not checked).
local function process(given)
  if given ~= '' then return given end
  local info = redis.pcall('INFO', 'server')
  if type(info) == 'string' then return string.match(info, 'run_id:(%x+)') end
  return nil
end

-- epoch, newest offset and newest entry time; starts the room over when its meta is gone or was
-- written by another Redis process (a room that names none, written by an earlier version, is
-- taken as this process's).
local function open(candidate, ttl, given)
  local m = redis.call('HMGET', meta, 'e', 'o', 't', 'r')
  local run = process(given)
  if m[1] and (not run or not m[4] or m[4] == run) then
    if run and not m[4] then redis.call('HSET', meta, 'r', run) end
    return m[1], tonumber(m[2]), tonumber(m[3])
  end
  redis.call('DEL', log)
  redis.call('HSET', meta, 'e', candidate, 'o', 0, 't', 0)
  if run then redis.call('HSET', meta, 'r', run) end
  if ttl > 0 then redis.call('PEXPIRE', meta, ttl) end
  return candidate, 0, 0
end

local function split(id)
  local offset, ms = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(offset), tonumber(ms)
end

-- Drops entries older than cutoff (ms). Entry times never decrease along the log.
local function trimByAge(cutoff)
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
  if not first then return end
  local lo, loMs = split(first[1])
  if loMs >= cutoff then return end
  local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)[1]
  local hi, hiMs = split(last[1])
  if hiMs < cutoff then
    redis.call('DEL', log)
    return
  end
  -- Every offset <= lo is expired, every offset >= hi is fresh.
  while hi - lo > 1 do
    local mid = math.floor((lo + hi) / 2)
    local offset, ms = split(redis.call('XRANGE', log, int(mid), '+', 'COUNT', 1)[1][1])
    if ms < cutoff then lo = offset else hi = mid end
  end
  redis.call('XTRIM', log, 'MINID', int(hi))
end
`;

/**
 * Appends, trims, and optionally publishes the framed message, all in one step.
 *
 * ARGV: payload, candidate epoch, maxEntries, maxAgeMs, roomTtlMs (0: never), publish command
 * (`''`, `PUBLISH` or `SPUBLISH`), channel for `PUBLISH` (`SPUBLISH` takes it as KEYS[3], so a
 * Cluster checks before running that it lives in the room's slot), Redis run id (`''`: unknown),
 * deadline (ms of Redis's clock; `''`: none).
 * Returns `{offset, epoch}`.
 */
export const APPEND = new LuaScript(`${PRELUDE}
-- Past its deadline the caller has given up on it (its command timed out): appended now, it would
-- be delivered though the caller was told it failed, and may retry it.
if ARGV[9] ~= '' and now() > tonumber(ARGV[9]) then
  return redis.error_reply('EXPIRED the append came after its deadline: nothing appended')
end
-- A publish this user may not make fails before anything is written: a Lua error undoes nothing,
-- and a message kept unpublished would reach a resume later as if it had been sent. (Redis 7+.)
if ARGV[6] ~= '' and redis.acl_check_cmd ~= nil
  and not redis.acl_check_cmd(ARGV[6], KEYS[3] or ARGV[7], 'x') then
  return redis.error_reply('NOPERM this user may not ' .. ARGV[6] .. ' to its channel: nothing appended')
end
local ttl = tonumber(ARGV[5])
local epoch, offset, last = open(ARGV[2], ttl, ARGV[8])
offset = offset + 1
local t = math.max(now(), last)
redis.call('XADD', log, 'MAXLEN', ARGV[3], int(offset) .. '-' .. int(t), 'p', ARGV[1])
redis.call('HSET', meta, 'o', int(offset), 't', int(t))
trimByAge(t - tonumber(ARGV[4]))
if ttl > 0 then
  redis.call('PEXPIRE', meta, ttl)
  redis.call('PEXPIRE', log, ttl)
end
if ARGV[6] ~= '' then
  -- Wire format version 1: 0x01, offset as u64 big-endian, epoch length, epoch, payload.
  local bytes, n = {}, offset
  for i = 8, 1, -1 do
    bytes[i] = n % 256
    n = math.floor(n / 256)
  end
  local frame = string.char(1) .. string.char(unpack(bytes)) .. string.char(#epoch) .. epoch .. ARGV[1]
  redis.call(ARGV[6], KEYS[3] or ARGV[7], frame)
end
return {offset, epoch}
`);

/**
 * Reads entries after an offset, or says why it cannot: all in one step, so a reply is never a
 * partial replay.
 *
 * ARGV: candidate epoch, maxAgeMs, roomTtlMs, the reader's epoch, the reader's offset, limit
 * (0: no limit; -1: no entries), Redis run id (`''`: unknown).
 * Returns `{status, offset, epoch, [offset, payload]...}` with status `ok`, `too-old` or
 * `epoch-changed`.
 */
export const READ = new LuaScript(`${PRELUDE}
local epoch, offset, last = open(ARGV[1], tonumber(ARGV[3]), ARGV[7])
if epoch ~= ARGV[4] then return {'epoch-changed', offset, epoch} end
trimByAge(math.max(now(), last) - tonumber(ARGV[2]))
local after = tonumber(ARGV[5])
local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
local firstOffset = offset + 1
if first then firstOffset = split(first[1]) end
if after + 1 < firstOffset then return {'too-old', offset, epoch} end
local reply = {'ok', offset, epoch}
local limit = tonumber(ARGV[6])
if after >= offset or limit < 0 then return reply end
local entries
if limit > 0 then
  entries = redis.call('XRANGE', log, int(after + 1), '+', 'COUNT', limit)
else
  entries = redis.call('XRANGE', log, int(after + 1), '+')
end
for _, entry in ipairs(entries) do
  reply[#reply + 1] = split(entry[1])
  reply[#reply + 1] = entry[2][2]
end
return reply
`);

/**
 * ARGV: candidate epoch, roomTtlMs, Redis run id (`''`: unknown). Returns `{offset, epoch}`,
 * creating the room if needed.
 */
export const POSITION = new LuaScript(`${PRELUDE}
local epoch, offset = open(ARGV[1], tonumber(ARGV[2]), ARGV[3])
return {offset, epoch}
`);
