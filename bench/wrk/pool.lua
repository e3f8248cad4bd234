-- wrk script: GETs whose credential headers come from a pool file, one line per request and
-- never the same line twice. A DPoP proof (RFC 9449) is single use (its `jti`) and wrk cannot
-- sign one, so the harness signs a pool of proofs before each round (each with its own `jti`,
-- the request's `htm`/`htu`, the token's `ath` and a fresh `iat`) and this script sends them
-- in order. The bearer baseline goes through the same script with a pool of the same size, so
-- both pay the same per-request Lua work.
--
-- Environment: BENCH_POOL, a file of lines `<Authorization value>\t<DPoP value or empty>`;
-- BENCH_PATH, the request path. When the pool runs out the script sends its last line again:
-- for a DPoP pool that is a replay, which the gateway refuses, and the harness stops on any
-- non-2xx answer (a pool too small for the round is reported, never measured).
local requests = {}
local next_request = 0

function init(args)
  local path = os.getenv("BENCH_PATH") or "/"
  for line in io.lines(os.getenv("BENCH_POOL")) do
    local auth, dpop = line:match("^([^\t]*)\t?(.*)$")
    local headers = { ["Authorization"] = auth }
    if dpop ~= nil and dpop ~= "" then
      headers["DPoP"] = dpop
    end
    requests[#requests + 1] = wrk.format("GET", path, headers)
  end
end

function request()
  if next_request < #requests then
    next_request = next_request + 1
  end
  return requests[next_request]
end
