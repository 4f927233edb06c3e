-- Applies a whole batch of token-bucket and sliding-window operations in one round trip.
--
-- This is the state transition of ratekeeper.core.token_bucket (refill, take, debit) and
-- ratekeeper.core.sliding_window (roll, count, debit), nothing more: the outcome maths
-- (remaining, reset, retry-after) stays in the core. The script returns each counter's state as
-- it was *before* the operation, and the caller replays the core on it. tests/conformance
-- compares the answers with the core's, and tests/backends/test_redis_store.py the state stored
-- here with the core's state, after every step of random sequences.
--
-- Redis Lua numbers are doubles (53-bit mantissa), but the core's quantities are not: a
-- timestamp in ns is ~2^61, and a token-bucket level is tokens x period_ns (a one-year period is
-- already 3.2e16 > 2^53). So every such quantity travels and is stored as a decimal string and
-- is computed on here as an exact signed big integer (little-endian limbs in base 10^7, so that
-- a limb product plus carries stays far below 2^53). Only a sliding window's counts and whole
-- seconds are plain numbers, exact while below 2^53 (9e15 hits in one window; 285 million years).
--
-- ARGV[1] is "1" to decide (the core's take/count) or "0" to debit past the limit, ARGV[2] the
-- caller's clock (ns); then, for each KEYS[i] in turn, an operation and its arguments:
--   "tb", amount, top, cost                                                     token bucket
--   "sw", start_s, period_s, to_end_ns, period_ns, hits, limit_units, ttl_s     sliding window
-- Returns, per key, the stored state before the operation: {level, updated_at} for a token
-- bucket, {start_s, current, previous} for a sliding window; nils when the key did not exist.

local BASE = 10000000
local DIGITS = 7
-- Extra life for a token bucket's key beyond the time it takes to refill: servers sharing this
-- Redis do not share a clock, and expiring a bucket that is not yet full would hand quota back.
local EXPIRY_MARGIN_MS = 1000
-- Redis rejects expiry times that overflow; a state kept longer than this (~2000 years) is
-- forgotten.
local MAX_TTL_MS = 2 ^ 46

-- Big integers: {neg = boolean, limb1, limb2, ...}; no high zero limbs; zero is {neg = false}.
local function trim(a)
  while #a > 0 and a[#a] == 0 do
    a[#a] = nil
  end
  if #a == 0 then
    a.neg = false
  end
  return a
end

local function big(text)
  local a = { neg = false }
  local first = 1
  if string.sub(text, 1, 1) == "-" then
    a.neg = true
    first = 2
  end
  local i = #text
  while i >= first do
    local j = math.max(first, i - DIGITS + 1)
    a[#a + 1] = tonumber(string.sub(text, j, i))
    i = j - 1
  end
  return trim(a)
end

-- A batch repeats the same few numbers (the clock, each limit's amount and cost): parse each once.
local parsed = {}
local function arg(text)
  local a = parsed[text]
  if a == nil then
    a = big(text)
    parsed[text] = a
  end
  return a
end

local function count(n)
  return big(string.format("%d", n))
end

local function text(a)
  if #a == 0 then
    return "0"
  end
  local parts = { a.neg and "-" or "", string.format("%d", a[#a]) }
  for i = #a - 1, 1, -1 do
    parts[#parts + 1] = string.format("%07d", a[i])
  end
  return table.concat(parts)
end

local function cmpmag(a, b)
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  for i = #a, 1, -1 do
    if a[i] ~= b[i] then
      return a[i] < b[i] and -1 or 1
    end
  end
  return 0
end

local function cmp(a, b)
  if a.neg ~= b.neg then
    return a.neg and -1 or 1
  end
  local c = cmpmag(a, b)
  return a.neg and -c or c
end

local function addmag(a, b)
  local r = { neg = false }
  local carry = 0
  for i = 1, math.max(#a, #b) do
    local t = (a[i] or 0) + (b[i] or 0) + carry
    carry = t >= BASE and 1 or 0
    r[i] = t - carry * BASE
  end
  if carry > 0 then
    r[#r + 1] = carry
  end
  return r
end

-- |a| - |b| for |a| >= |b|.
local function submag(a, b)
  local r = { neg = false }
  local borrow = 0
  for i = 1, #a do
    local t = a[i] - (b[i] or 0) - borrow
    borrow = t < 0 and 1 or 0
    r[i] = t + borrow * BASE
  end
  return trim(r)
end

local function add(a, b)
  local r
  local sign
  if a.neg == b.neg then
    r, sign = addmag(a, b), a.neg
  elseif cmpmag(a, b) >= 0 then
    r, sign = submag(a, b), a.neg
  else
    r, sign = submag(b, a), b.neg
  end
  r.neg = sign
  return trim(r)
end

local function sub(a, b)
  local negated = { neg = (#b > 0) and not b.neg }
  for i = 1, #b do
    negated[i] = b[i]
  end
  return add(a, negated)
end

local function mul(a, b)
  local r = { neg = a.neg ~= b.neg }
  for i = 1, #a + #b do
    r[i] = 0
  end
  for i = 1, #a do
    local carry = 0
    for j = 1, #b do
      local t = r[i + j - 1] + a[i] * b[j] + carry
      carry = math.floor(t / BASE)
      r[i + j - 1] = t - carry * BASE
    end
    r[i + #b] = r[i + #b] + carry
  end
  return trim(r)
end

-- An upper-bound-ish double for expiry times only (never for decisions).
local function approx(a)
  local x = 0
  for i = #a, 1, -1 do
    x = x * BASE + a[i]
  end
  return a.neg and -x or x
end

local ZERO = big("0")

-- Keep a bucket until it would be full again (a missing key reads as a full bucket); keep one
-- that never refills (amount 0: a lifetime quota) for the longest expiry. Every key expires.
local function expire_bucket(key, level, top, amount)
  local deficit = sub(top, level)
  if #deficit == 0 then
    redis.call("PEXPIRE", key, EXPIRY_MARGIN_MS)
  elseif #amount == 0 then
    redis.call("PEXPIRE", key, string.format("%d", MAX_TTL_MS))
  else
    local ms = math.ceil(approx(deficit) / approx(amount) / 1e6) + EXPIRY_MARGIN_MS
    redis.call("PEXPIRE", key, string.format("%d", math.min(ms, MAX_TTL_MS)))
  end
end

local function token_bucket(key, take, now, args)
  local amount, top, cost, floor = arg(args[1]), arg(args[2]), arg(args[3]), arg(args[4])
  local old = redis.call("HMGET", key, "l", "t")
  local level, updated, updated_text = top, now, ARGV[2]
  if old[1] then
    level, updated, updated_text = big(old[1]), arg(old[2]), old[2]
  end
  -- refill: a clock that steps backwards refills nothing
  local elapsed = sub(now, updated)
  if cmp(elapsed, ZERO) > 0 then
    if cmp(level, top) < 0 then
      level = add(level, mul(elapsed, amount))
      if cmp(level, top) > 0 then
        level = top
      end
    end
    updated_text = ARGV[2]
  end
  if not take or cmp(level, cost) >= 0 then
    level = sub(level, cost)
    -- a debit's debt is capped at the core's horizon (DEBT_HORIZON_PERIODS): so is the TTL
    if cmp(level, floor) < 0 then
      level = floor
    end
  end
  redis.call("HSET", key, "l", text(level), "t", updated_text)
  expire_bucket(key, level, top, amount)
  return old
end

local function sliding_window(key, take, _, args)
  local start, period_s = tonumber(args[1]), tonumber(args[2])
  local to_end, period, hits = arg(args[3]), arg(args[4]), tonumber(args[5])
  local limit_units, ttl = arg(args[6]), args[7]
  local old = redis.call("HMGET", key, "s", "c", "p")
  local s, current, previous = start, 0, 0
  if old[1] then
    s, current, previous = tonumber(old[1]), tonumber(old[2]), tonumber(old[3])
  end
  if s ~= start then
    previous = (start - s == period_s) and current or 0
    current = 0
  end
  local admit = true
  if take then
    local used = add(mul(count(previous), to_end), mul(count(current + hits), period))
    admit = cmp(used, limit_units) <= 0
  end
  if admit then
    current = current + hits
  end
  redis.call(
    "HSET", key, "s", string.format("%d", start),
    "c", string.format("%d", current), "p", string.format("%d", previous)
  )
  redis.call("EXPIRE", key, ttl)
  return old
end

-- operation -> its function and how many arguments follow its name
local OPERATIONS = { tb = { token_bucket, 4 }, sw = { sliding_window, 7 } }

local take, now = ARGV[1] == "1", arg(ARGV[2])
local replies = {}
local at = 3
for i, key in ipairs(KEYS) do
  local operation = OPERATIONS[ARGV[at]]
  local args = {}
  for j = 1, operation[2] do
    args[j] = ARGV[at + j]
  end
  replies[i] = operation[1](key, take, now, args)
  at = at + 1 + operation[2]
end
return replies
