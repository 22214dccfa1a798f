-- wrk script for scripts/bench. Usage: wrk ... -s requests.lua URL -- MODE [FILE] [ETAG] [LIMIT]
--   MODE hit|miss|plain-miss|not-modified|malformed|scanner|limited|floor|health|baseline|soak
--   (scanner: a scanner path; limited: the hot page from ONE address, so past the per-IP share
--   limit nearly every answer is a 429; floor: /__test/floor, the miss's floor; plain-miss: the
--   tokens in turn, each in both languages, again and again, for the plain JavaScript Worker,
--   which has no cache; miss: each (token, language) pair once, the thread stops when they run
--   out, and the result says so: wrk divides by the whole duration)
--   FILE a file of lines: share tokens (hit, miss), or "kind path cookie" lines (soak)
-- Every request carries its own CF-Connecting-IP (a header value, never dialled), so the
-- per-IP share limit does not shape the measurement (except in "limited", where it is the
-- point). done() prints one JSON line.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local function lines(path)
  local t = {}
  if path == nil or path == "" then return t end
  for line in io.lines(path) do
    if line ~= "" then table.insert(t, line) end
  end
  return t
end

function init(args)
  mode = args[1]
  items = lines(args[2])
  etag = args[3]
  limit = tonumber(args[4] or "0")
  n_threads = tonumber(os.getenv("WRK_THREADS") or "2")
  counter = 0
  responses = 0
  s5xx = 0
  other = 0
  refused = 0
  exhausted = 0
  math.randomseed(os.time() + id * 7919)
end

local function ip()
  return string.format("198.%d.%d.%d", 18 + math.random(0, 1), math.random(0, 255), math.random(1, 254))
end

function request()
  counter = counter + 1
  local headers = { ["cf-connecting-ip"] = ip() }
  local path = "/health"
  if mode == "hit" or mode == "baseline" then
    path = "/s/" .. items[1]
  elseif mode == "not-modified" then
    path = "/s/" .. items[1]
    headers["if-none-match"] = etag
  elseif mode == "malformed" then
    path = "/s/not-a-share-token"
  elseif mode == "scanner" then
    path = "/wp-login.php"
  elseif mode == "limited" then
    path = "/s/" .. items[1]
    headers["cf-connecting-ip"] = "198.51.100.7"
  elseif mode == "floor" then
    path = "/__test/floor"
  elseif mode == "miss" then
    -- a (token, language) pair no request has asked for: every one is a cache miss
    local k = id + (counter - 1) * n_threads
    local token = items[(k % #items) + 1]
    if k >= 2 * #items then
      exhausted = 1
      wrk.thread:stop()
    end
    if k % (2 * #items) >= #items then headers["accept-language"] = "en" end
    path = "/s/" .. token
  elseif mode == "plain-miss" then
    local k = id + (counter - 1) * n_threads
    if k % (2 * #items) >= #items then headers["accept-language"] = "en" end
    path = "/s/" .. items[(k % #items) + 1]
  elseif mode == "soak" then
    local line = items[math.random(1, #items)]
    local kind, p, cookie = line:match("^(%S+) (%S+) ?(%S*)$")
    path = p
    if cookie ~= nil and cookie ~= "" then headers["cookie"] = "__Host-session=" .. cookie end
  end
  return wrk.format("GET", path, headers)
end

function response(status, headers, body)
  responses = responses + 1
  if status >= 500 then
    s5xx = s5xx + 1
  elseif status >= 400 and (mode == "malformed" or mode == "scanner" or mode == "limited") then
    refused = refused + 1
  elseif status >= 400 then
    other = other + 1
  end
  if limit > 0 and responses >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local total5xx, totalother, totalrefused, totalexhausted = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    totalexhausted = totalexhausted + (t:get("exhausted") or 0)
    total5xx = total5xx + (t:get("s5xx") or 0)
    totalother = totalother + (t:get("other") or 0)
    totalrefused = totalrefused + (t:get("refused") or 0)
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"socket_errors":%d,"status_5xx":%d,"status_4xx_unexpected":%d,"status_4xx_expected":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    total5xx, totalother, totalrefused, totalexhausted))
end
