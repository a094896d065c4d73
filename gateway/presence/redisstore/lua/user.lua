-- userScript: KEYS, ARGV, the reply and why it is correct are documented on userScript in scripts.go.
local op = ARGV[1]
local now = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local keyttl = tonumber(ARGV[4])
local conns, hash = KEYS[1], KEYS[2]

local h = redis.call('HMGET', hash, 'on', 'n', 'st', 'tx', 'ls', 'v', 'gu', 'iv')
local wasOn = h[1] == '1'
local pubN = tonumber(h[2]) or 0
local st = h[3] or 'online'
local tx = h[4] or ''
local ls = tonumber(h[5]) or 0
local v = tonumber(h[6]) or 0
local gu = tonumber(h[7]) or 0
-- iv: when the user went invisible (ms), 0 while visible. 'on' and 'n' are
-- the user's real state; watchers were shown it only while iv was 0.
local iv = tonumber(h[8]) or 0
local wasShown = wasOn and iv == 0

local prefix = nil
if op == 'reap' then prefix = ARGV[5] end
-- A connection re-added under a new incarnation replaces its entries under
-- older ones (a replica that was reaped while alive restores its
-- connections under a new incarnation; see the package doc).
local ids, exact = nil, {}
if op == 'connect' or op == 'restore' then
  ids = {}
  for i = 5, #ARGV do
    exact[ARGV[i]] = true
    local id = string.match(ARGV[i], '|(.*)$')
    if id then ids[id] = true end
  end
end
if op == 'status' then
  local sc = redis.call('ZSCORE', conns, ARGV[7])
  if not sc or tonumber(sc) <= now then
    return redis.error_reply('NOCONN connection is not connected')
  end
end
local entries = redis.call('ZRANGE', conns, 0, -1, 'WITHSCORES')
local drop = {}
local live = 0
local seen = 0
local reaped = 0
for i = 1, #entries, 2 do
  local m, sc = entries[i], tonumber(entries[i + 1])
  local stale = false
  if ids and not exact[m] then
    local id = string.match(m, '|(.*)$')
    stale = id ~= nil and ids[id] == true
  end
  local dead = prefix ~= nil and string.sub(m, 1, #prefix) == prefix
  if dead then reaped = reaped + 1 end
  if sc <= now or stale or dead then
    drop[#drop + 1] = m
    -- last refresh of that connection: the user was online then
    local last = math.min(sc - ttl, now)
    if last > seen then seen = last end
  else
    live = live + 1
  end
end
for i = 1, #drop, 500 do
  redis.call('ZREM', conns, unpack(drop, i, math.min(i + 499, #drop)))
end
local removed = #drop
if op == 'reap' then removed = reaped end
-- The user went offline (its connections expired, no grace pending) before
-- this op: its invisibility ended with that session, like its status.
if live == 0 and gu <= now then iv = 0 end

local statusChanged = false
if op == 'connect' then
  if redis.call('ZADD', conns, now + ttl, ARGV[5]) == 1 then live = live + 1 end
  gu = 0
elseif op == 'restore' then
  for i = 5, #ARGV do
    if redis.call('ZADD', conns, now + ttl, ARGV[i]) == 1 then live = live + 1 end
  end
  gu = 0
elseif op == 'disconnect' then
  local grace = tonumber(ARGV[6])
  if redis.call('ZREM', conns, ARGV[5]) == 1 then
    live = live - 1
    removed = removed + 1
    seen = now
    if live == 0 and wasOn and grace > 0 and gu <= now then
      gu = now + grace
      -- an invisible user's lastSeen stays the moment it hid
      if iv == 0 then ls = now end
    end
  end
elseif op == 'drop' then
  for i = 5, #ARGV do
    if redis.call('ZREM', conns, ARGV[i]) == 1 then
      live = live - 1
      removed = removed + 1
      seen = now
    end
  end
  gu = 0
elseif op == 'status' then
  if ARGV[5] == 'invisible' then
    if iv == 0 then
      iv = now
      statusChanged = true
    end
  else
    if iv > 0 then
      iv = 0
      statusChanged = true
    end
    if ARGV[5] ~= st or ARGV[6] ~= tx then
      st = ARGV[5]
      tx = ARGV[6]
      statusChanged = true
    end
  end
end

local grace = live == 0 and gu > now
if not grace then gu = 0 end
local on = live > 0 or grace
local n = live
if grace then n = pubN end
if not on then n = 0 end

-- What watchers see: offline while invisible, as if the last connection
-- had closed when the user hid.
local shown = on and iv == 0
local to = ''
if shown ~= wasShown then
  if shown then to = 'online' else to = 'offline' end
elseif shown and statusChanged then
  to = 'status'
elseif shown and n ~= pubN then
  to = 'count'
end
if to ~= '' then
  v = math.max(v + 1, now)
  if shown then ls = now elseif on then ls = iv else ls = math.max(ls, seen) end
  if ls == 0 then ls = now end
end
if not on then
  -- a new session starts as "online" with no text, and visible
  st = 'online'
  tx = ''
  iv = 0
end

if live == 0 then
  redis.call('DEL', conns)
else
  redis.call('PEXPIRE', conns, keyttl)
end
local onStr = '0'
if on then onStr = '1' end
if to ~= '' or statusChanged or removed > 0 or op == 'connect' or op == 'restore' or op == 'disconnect' and gu > 0 then
  redis.call('HSET', hash, 'on', onStr, 'n', n, 'st', st, 'tx', tx,
    'ls', string.format('%.0f', ls), 'v', string.format('%.0f', v), 'gu', string.format('%.0f', gu),
    'iv', string.format('%.0f', iv))
  redis.call('PEXPIRE', hash, keyttl)
end
-- the user as watchers see it
local shownStr, shownSt, shownTx, shownN = '0', 'offline', '', 0
if shown then shownStr, shownSt, shownTx, shownN = '1', st, tx, n end
if to ~= '' then
  redis.call('SPUBLISH', KEYS[3], string.format('%.0f', v) .. '\n' .. shownStr .. '\n' .. shownSt .. '\n' ..
    shownN .. '\n' .. string.format('%.0f', ls) .. '\n' .. shownTx)
end
local changed = 0
if to ~= '' then changed = 1 end
return {string.format('%.0f', v), shownStr, shownSt, shownTx, shownN, string.format('%.0f', ls), changed, to, removed,
  live, string.format('%.0f', gu)}
