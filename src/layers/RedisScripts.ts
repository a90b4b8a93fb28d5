/**
 * The Lua scripts of the Redis cache (RedisMessageCache.ts), in a module that
 * imports nothing, so the pipeline bench's raw harness
 * (bench/pipeline/RawHarness.ts) runs exactly the same script without loading
 * the gateway's code. docs/redis-keys.md describes the keys and steps.
 */

/**
 * KEYS: dedup, msg, recent, last, the message's deletion msg key.
 * ARGV: dedupTtlMs, maxAgeMs, recentLimit, messageId, version (-1 for a deletion), json, eventKey.
 * Returns 1 for a new event, 0 for a duplicate.
 */
export const rememberLua = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[2])
local id = tonumber(ARGV[4])
local last = tonumber(redis.call('GET', KEYS[4]))
if last == nil or id > last then redis.call('SET', KEYS[4], ARGV[4]) end
local version = tonumber(ARGV[5])
if version < 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], id, id)
  return 1
end
if redis.call('EXISTS', KEYS[5]) == 1 then return 1 end
local indexed = redis.call('ZRANGEBYSCORE', KEYS[3], id, id)
for _, member in ipairs(indexed) do
  local v = tonumber(string.match(member, ':(%d+)$'))
  if v ~= nil and v >= version then return 1 end
end
if #indexed > 0 then redis.call('ZREM', KEYS[3], unpack(indexed)) end
redis.call('ZADD', KEYS[3], id, ARGV[7])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[3]) + 1))
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return 1
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
