-- wrk script: GET one path again and again. TARGET (environment): the path; HEADERS: "Name: value" lines
-- separated by "|" (an If-None-Match, an Authorization). Prints the same RESULT line as load.lua.
local target = os.getenv("TARGET") or "/"
local headers = os.getenv("HEADERS") or ""

function init(args)
  for line in string.gmatch(headers, "[^|]+") do
    local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
    if name then wrk.headers[name] = value end
  end
end

function request()
  return wrk.format("GET", target)
end

function done(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
