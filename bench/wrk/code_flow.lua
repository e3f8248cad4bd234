-- wrk script: the authorization code flow with PKCE and an existing session, end to end.
-- Each connection sends either an authorization request with the session cookie (answered with
-- a redirect carrying a code) or, when a code is waiting, the token request redeeming it. Codes
-- wait in a queue shared by the thread's connections (a connection's next request is not
-- necessarily sent right after its own response), so every code is redeemed once, by whichever
-- connection is free first. A completed flow is a token answer 200.
-- Environment: BENCH_AUTHORIZE (path and query of the authorization request), BENCH_COOKIE (the
-- session's Cookie header), BENCH_TOKEN_PATH, BENCH_TOKEN_BODY (the token request's form without
-- `code`: grant type, client_id, redirect_uri, code_verifier).
local authorize = os.getenv("BENCH_AUTHORIZE")
local cookie = os.getenv("BENCH_COOKIE")
local token_path = os.getenv("BENCH_TOKEN_PATH")
local token_body = os.getenv("BENCH_TOKEN_BODY")

local codes, head, tail = {}, 1, 0
flows, failures, last_failure = 0, 0, ""

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function request()
  if head <= tail then
    local code = codes[head]
    codes[head] = nil
    head = head + 1
    return wrk.format("POST", token_path,
      { ["Content-Type"] = "application/x-www-form-urlencoded" },
      token_body .. "&code=" .. code)
  end
  return wrk.format("GET", authorize, { ["Cookie"] = cookie })
end

function response(status, headers, body)
  if status == 302 or status == 303 then
    local location = headers["Location"] or headers["location"] or ""
    local code = location:match("[?&]code=([^&]+)")
    if code then
      tail = tail + 1
      codes[tail] = code
      return
    end
    last_failure = status .. " " .. location
  elseif status == 200 and body:find('"access_token"', 1, true) then
    flows = flows + 1
    return
  else
    last_failure = status .. " " .. body:sub(1, 200)
  end
  failures = failures + 1
end

function done(summary, latency, requests)
  local f, bad, why = 0, 0, ""
  for _, t in ipairs(threads) do
    f = f + t:get("flows")
    bad = bad + t:get("failures")
    why = t:get("last_failure")
  end
  io.write(string.format("flows: %d\nflow failures: %d\nlast failure: %s\n", f, bad, why))
end
