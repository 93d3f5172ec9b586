-- wrk script: POST one notification per request, its job id unique per request unless MODE=duplicate.
-- MODE (environment): completed | duplicate | progress | invalid; SECRET: sent as X-Webhook-Secret;
-- JOB: the job id every duplicate carries (bench/run.py completes it once before wrk starts).
local mode = os.getenv("MODE") or "completed"
local secret = os.getenv("SECRET")
local duplicate = os.getenv("JOB") or "bench-duplicate"
local counter = 0
local prefix = ""

local completed = '{"job_id":"%s","status":"completed","timestamp":"2025-10-21T16:45:00Z",'
  .. '"environment":"development","data":{"job_id":"%s","images":[{"file_path":"./generated_images/image_1.png",'
  .. '"url":"http://localhost:9006/generated_images/image_1.png","description":"Un chat astronaute dans l\'espace",'
  .. '"format":"PNG","size_bytes":2048576,"dimensions":"1024x1024"}],"metadata":{"model_name":"gemini-2.0-flash-exp",'
  .. '"version":"latest","generation_time_seconds":12.5,"input_tokens":45,"output_size_bytes":2048576,'
  .. '"timestamp":"2025-10-21T16:45:00Z"},"status":"COMPLETED","generated_at":"2025-10-21T16:45:00Z"}}'
local progress = '{"job_id":"%s","status":"generating","timestamp":"2025-10-21T16:44:45Z","progress":50,'
  .. '"message":"Génération en cours..."}'
local invalid = '{"job_id":"%s","status":"completed","timestamp":"2025-10-21T16:45:00Z","data":{"images":[]}}'

local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  prefix = string.format("bench-%d-%d-%d", os.time(), math.random(1, 1e9), id)
  wrk.headers["Content-Type"] = "application/json"
  if secret and secret ~= "" then wrk.headers["X-Webhook-Secret"] = secret end
end

function request()
  counter = counter + 1
  local job = (mode == "duplicate") and duplicate or (prefix .. "-" .. counter)
  local body
  if mode == "progress" then body = string.format(progress, job)
  elseif mode == "invalid" then body = string.format(invalid, job)
  else body = string.format(completed, job, job) end
  return wrk.format("POST", "/api/webhooks/image-completion", nil, body)
end

function done(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
