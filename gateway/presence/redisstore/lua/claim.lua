-- claimScript: KEYS, ARGV, the reply and why it is correct are documented on claimScript in scripts.go.
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) > tonumber(ARGV[2]) then return false end
local inc = ARGV[1]
if string.sub(inc, 1, 5) == 'reap:' then inc = string.sub(inc, 6) end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[3], 'reap:' .. inc)
return inc
