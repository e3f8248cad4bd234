-- wrk script: GET (headers from -H) with a pause before each request on every connection, for a
-- moderate, bounded request rate: at most connections * 1000 / BENCH_DELAY_MS requests/s.
-- wrk times each request from send to answer, not the pause. Environment: BENCH_DELAY_MS (1).
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "1")

function delay()
  return pause
end
