-- wrk script: POST an urlencoded form with HTTP Basic client authentication.
-- Environment: BENCH_PATH, BENCH_BODY, BENCH_BASIC (base64 of id:secret).
wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH")
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")

local non2xx = 0
response = function(status, headers, body)
  if status < 200 or status >= 300 then
    non2xx = non2xx + 1
  end
end
