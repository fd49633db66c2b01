package ratelimit

// takeScript decides every rule of one decision atomically, with the Redis server's clock.
//
// KEYS[i]: the rule's key. ARGV: per rule 6 values: algorithm, count, period (µs), burst, cost,
// up-to (1: grant up to cost). Reply: {all, then per rule: allowed, granted, remaining,
// reset (µs), retry (µs)}. State is written only when every rule admits.
const takeScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local out = {1}
local writes = {}
local all = true
local function ms(us) return math.max(1, math.ceil(us / 1000)) end
local function f(x) return string.format('%.0f', x) end
for i = 1, n do
  local b = (i - 1) * 6
  local alg, count, period, burst, cost = tonumber(ARGV[b+1]), tonumber(ARGV[b+2]), tonumber(ARGV[b+3]), tonumber(ARGV[b+4]), tonumber(ARGV[b+5])
  local upto = ARGV[b+6] == '1'
  local key = KEYS[i]
  local ok, rem, reset, retry = false, 0, 0, 0
  local T = math.max(1, math.floor(period / count))
  if alg == 0 or alg == 1 then -- GCRA and token bucket (same admissions; different state)
    local cap = burst * T
    local credit
    local lag = 0 -- token bucket: the clock went back; no refill until it passes the last update
    if alg == 0 then
      local tat = tonumber(redis.call('GET', key) or '0')
      if tat < now then tat = now end
      credit = cap - (tat - now)
    else
      local s = redis.call('HMGET', key, 'c', 'l')
      if s[1] then
        lag = math.max(0, tonumber(s[2]) - now)
        credit = math.min(cap, tonumber(s[1]) + math.max(0, now - tonumber(s[2])))
      else credit = cap end
    end
    if upto then cost = math.max(1, math.min(cost, math.floor(credit / T))) end
    local need = cost * T
    if credit >= need then
      ok = true
      credit = credit - need
      rem, reset = math.floor(credit / T), lag + cap - credit
      if alg == 0 then writes[i] = {'SET', key, f(now + cap - credit), 'PX', ms(cap - credit)}
      else writes[i] = {'HSET', key, 'c', f(credit), 'l', f(now + lag)} end
    else
      rem, reset, retry = math.floor(credit / T), lag + cap - credit, lag + need - credit
    end
  elseif alg == 2 then -- fixed window
    local ws = now - (now % period)
    local s = redis.call('HMGET', key, 'w', 'c')
    local c = 0
    if s[1] and tonumber(s[1]) == ws then c = tonumber(s[2]) end
    if upto then cost = math.max(1, math.min(cost, count - c)) end
    reset = ws + period - now
    if c + cost <= count then
      ok, rem = true, count - c - cost
      writes[i] = {'HSET', key, 'w', f(ws), 'c', f(c + cost)}
    else
      rem, retry = math.max(0, count - c), reset
    end
  elseif alg == 3 then -- sliding window counter
    local ws = now - (now % period)
    local s = redis.call('HMGET', key, 'w', 'c', 'p')
    local curr, prev = 0, 0
    if s[1] then
      local w = tonumber(s[1])
      if w == ws then curr, prev = tonumber(s[2]), tonumber(s[3])
      elseif w == ws - period then prev = tonumber(s[2]) end
    end
    local e = now - ws
    local est = prev * ((period - e) / period) + curr
    if upto then cost = math.max(1, math.min(cost, math.floor(count - est))) end
    local room = count - curr - cost
    reset = ws + period - now
    if curr > 0 then reset = reset + period end
    if room >= 0 and prev * (period - e) <= room * period then
      ok, rem, reset = true, math.max(0, math.floor(count - est - cost)), ws + 2 * period - now
      writes[i] = {'HSET', key, 'w', f(ws), 'c', f(curr + cost), 'p', f(prev)}
    else
      rem = math.max(0, math.floor(count - est))
      if room >= 0 and prev > room then retry = math.max(1, period - math.floor(room * period / prev) - e)
      elseif curr <= count - cost then retry = period - e
      else retry = period - e + period - math.floor((count - cost) * period / curr) end
    end
  else -- sliding log
    local cutoff = now - period
    while true do
      local h = redis.call('LINDEX', key, 0)
      if not h or tonumber(h) > cutoff then break end
      redis.call('LPOP', key)
    end
    local c = redis.call('LLEN', key)
    if upto then cost = math.max(1, math.min(cost, count - c)) end
    if c > 0 then reset = tonumber(redis.call('LINDEX', key, -1)) + period - now end
    if c + cost <= count then
      ok, rem, reset = true, count - c - cost, period
      local w = {'RPUSH', key}
      for _ = 1, cost do w[#w + 1] = f(now) end
      writes[i] = w
    else
      rem, retry = math.max(0, count - c), tonumber(redis.call('LINDEX', key, c + cost - count - 1)) + period - now
    end
  end
  if not ok then all = false end
  local g = 0
  if ok then g = cost end
  out[#out + 1] = ok and 1 or 0
  out[#out + 1] = g
  out[#out + 1] = rem
  out[#out + 1] = reset
  out[#out + 1] = retry
  writes[i] = writes[i] or false
  writes[n + i] = reset
end
if all then
  for i = 1, n do
    local w = writes[i]
    redis.call(unpack(w))
    local b = (i - 1) * 6
    local alg, period = tonumber(ARGV[b+1]), tonumber(ARGV[b+3])
    if alg == 1 then redis.call('PEXPIRE', KEYS[i], ms(writes[n + i]))
    elseif alg >= 2 then redis.call('PEXPIRE', KEYS[i], ms(2 * period)) end
  end
else
  out[1] = 0
end
return out
`

// refundScript gives back what takeScript counted, for the keys of one Cluster slot whose
// decision was admitted while another slot's was rejected. ARGV as for takeScript (cost = what
// was granted).
const refundScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function f(x) return string.format('%.0f', x) end
for i = 1, #KEYS do
  local b = (i - 1) * 6
  local alg, count, period, burst, cost = tonumber(ARGV[b+1]), tonumber(ARGV[b+2]), tonumber(ARGV[b+3]), tonumber(ARGV[b+4]), tonumber(ARGV[b+5])
  local key = KEYS[i]
  local T = math.max(1, math.floor(period / count))
  if alg == 0 then
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat > now then redis.call('SET', key, f(math.max(now, tat - cost * T)), 'KEEPTTL') end
  elseif alg == 1 then
    local c = redis.call('HGET', key, 'c')
    if c then redis.call('HSET', key, 'c', f(math.min(burst * T, tonumber(c) + cost * T))) end
  elseif alg == 2 or alg == 3 then
    local ws = now - (now % period)
    local w = redis.call('HGET', key, 'w')
    if w and tonumber(w) == ws then
      local c = tonumber(redis.call('HGET', key, 'c'))
      redis.call('HSET', key, 'c', f(math.max(0, c - cost)))
    end
  else
    redis.call('RPOP', key, cost)
  end
end
return 1
`
