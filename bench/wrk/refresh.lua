-- wrk script: refresh-token grants with rotation. Every grant presents a refresh token from a
-- pool shared by the thread's connections and puts the successor the answer carries back into
-- it, so no token is ever presented twice (that would be reuse and revoke its family). The pool
-- must hold at least as many tokens as there are connections.
-- Environment: BENCH_TOKEN_PATH, BENCH_TOKEN_BODY (the form without `refresh_token`:
-- grant_type=refresh_token&client_id=...), BENCH_TOKENS (the pool, comma-separated).
local token_path = os.getenv("BENCH_TOKEN_PATH")
local token_body = os.getenv("BENCH_TOKEN_BODY")

local pool, head, tail = {}, 1, 0
for token in string.gmatch(os.getenv("BENCH_TOKENS"), "[^,]+") do
  tail = tail + 1
  pool[tail] = token
end
grants, failures, last_failure = 0, 0, ""

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function request()
  local token = "empty-pool"
  if head <= tail then
    token = pool[head]
    pool[head] = nil
    head = head + 1
  end
  return wrk.format("POST", token_path,
    { ["Content-Type"] = "application/x-www-form-urlencoded" },
    token_body .. "&refresh_token=" .. escape(token))
end

function response(status, headers, body)
  local successor = status == 200 and body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if successor then
    tail = tail + 1
    pool[tail] = successor
    grants = grants + 1
  else
    failures = failures + 1
    last_failure = status .. " " .. body:sub(1, 200)
  end
end

function done(summary, latency, requests)
  local g, bad, why = 0, 0, ""
  for _, t in ipairs(threads) do
    g = g + t:get("grants")
    bad = bad + t:get("failures")
    why = t:get("last_failure")
  end
  io.write(string.format("grants: %d\ngrant failures: %d\nlast failure: %s\n", g, bad, why))
end
