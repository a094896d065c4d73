-- leaseScript: KEYS, ARGV, the reply and why it is correct are documented on leaseScript in scripts.go.
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local now = tonumber(ARGV[3])
local renewed = 0
if s and tonumber(s) > now then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  renewed = 1
end
return {renewed, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)}
