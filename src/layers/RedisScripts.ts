/**
 * The Lua scripts of the Redis cache (RedisMessageCache.ts), in a module that
 * imports nothing, so the pipeline bench's raw harness
 * (bench/pipeline/RawHarness.ts) runs exactly the same script without loading
 * the gateway's code. docs/redis-keys.md describes the keys and steps.
 */

/**
 * Events handed to one call of the remember script, at most. A batch runs in
 * Redis as one script, atomically, so other clients wait while it runs; this
 * bounds that wait (and the call's size). A longer batch is sent as several
 * calls at once, which Redis runs one after another, in order.
 */
export const rememberChunk = 64

/**
 * The remember step for a batch of events, in order, in one call.
 * No KEYS: every key is built from the prefix, as in the `recent` script
 * (docs/redis-keys.md, "Limits": standalone Redis or Sentinel, not Cluster).
 * ARGV: prefix, dedupTtlMs, maxAgeMs, recentLimit, then five per event:
 * channelId, messageId, version (-1 for a deletion), eventKey, json.
 * Returns one verdict per event, in order: 1 for a new event, 0 for a
 * duplicate (of an earlier call, or of an earlier event of the same batch).
 */
export const rememberLua = `
local prefix = ARGV[1]
local dedupTtl = ARGV[2]
local maxAge = ARGV[3]
local keep = tonumber(ARGV[4])
local msgPrefix = prefix .. 'msg:'

local function remember(channel, messageId, versionArg, key, json)
  if not redis.call('SET', prefix .. 'dedup:' .. key, '1', 'NX', 'PX', dedupTtl) then return 0 end
  redis.call('SET', msgPrefix .. key, json, 'PX', maxAge)
  local id = tonumber(messageId)
  local lastKey = prefix .. 'last:' .. channel
  local last = tonumber(redis.call('GET', lastKey))
  if last == nil or id > last then redis.call('SET', lastKey, messageId) end
  local recentKey = prefix .. 'recent:' .. channel
  local version = tonumber(versionArg)
  if version < 0 then
    redis.call('ZREMRANGEBYSCORE', recentKey, id, id)
    return 1
  end
  if redis.call('EXISTS', msgPrefix .. channel .. ':' .. messageId .. ':deleted') == 1 then return 1 end
  local indexed = redis.call('ZRANGEBYSCORE', recentKey, id, id)
  for _, member in ipairs(indexed) do
    local v = tonumber(string.match(member, ':(%d+)$'))
    if v ~= nil and v >= version then return 1 end
  end
  if #indexed > 0 then redis.call('ZREM', recentKey, unpack(indexed)) end
  redis.call('ZADD', recentKey, id, key)
  redis.call('ZREMRANGEBYRANK', recentKey, 0, -(keep + 1))
  redis.call('PEXPIRE', recentKey, maxAge)
  return 1
end

local verdicts = {}
for i = 5, #ARGV, 5 do
  verdicts[#verdicts + 1] = remember(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
end
return verdicts
`

/**
 * KEYS: recent. ARGV: limit, the msg key prefix.
 * Returns [eventKey, json, ...] newest first, at most `limit` pairs; index
 * members whose body has expired are dropped from the index on the way.
 */
export const recentLua = `
local limit = tonumber(ARGV[1])
local chunk = math.min(limit, 200)
local out = {}
local start = 0
while #out < 2 * limit do
  local members = redis.call('ZREVRANGE', KEYS[1], start, start + chunk - 1)
  if #members == 0 then break end
  local keys = {}
  for i, member in ipairs(members) do keys[i] = ARGV[2] .. member end
  local bodies = redis.call('MGET', unpack(keys))
  local expired = {}
  for i, member in ipairs(members) do
    if not bodies[i] then
      expired[#expired + 1] = member
    elseif #out < 2 * limit then
      out[#out + 1] = member
      out[#out + 1] = bodies[i]
    end
  end
  if #expired > 0 then redis.call('ZREM', KEYS[1], unpack(expired)) end
  if #members < chunk then break end
  start = start + #members - #expired
end
return out
`
