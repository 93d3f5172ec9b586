#!/usr/bin/env bash
# Posts the spec's sample payloads to a running service and prints each status and JSON answer;
# exits 0 when every answer is the expected one, 1 naming those that were not.
# Usage: make run (in another terminal), then make curl-demo [URL=http://127.0.0.1:3000]
set -u
URL="${URL:-http://127.0.0.1:3000}"
ENDPOINT="$URL/api/webhooks/image-completion"
from_env_file() {  # the first value of a variable in .env, if there is one
  [ -f .env ] || return 0
  sed -n "s/^$1=//p" .env | tr -d "\"'" | tr ',' ' ' | awk '{print $1}'
}
SECRET="${WEBHOOK_SECRET:-$(from_env_file WEBHOOK_SECRET)}"
SECRET="${SECRET%%[ ,]*}"                      # the first value, when several are configured
SIGNING="${WEBHOOK_SIGNING_SECRET:-$(from_env_file WEBHOOK_SIGNING_SECRET)}"
SIGNING="${SIGNING%%[ ,]*}"
TOKEN="${JOBS_API_TOKENS:-$(from_env_file JOBS_API_TOKENS)}"
TOKEN="${TOKEN%%[ ,]*}"
JOB="demo-$(date +%s)-$$"
NOW="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

if ! curl -s -o /dev/null "$URL/"; then
  echo "No service answers at $URL: start it with 'make run' in another terminal." >&2
  exit 1
fi

pretty() { python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), ensure_ascii=False, indent=2))' 2>/dev/null || cat; }

# Standard Webhooks signature: base64 HMAC-SHA256, keyed by the decoded whsec_ secret, of "id.timestamp.body"
sign() {  # sign ID TIMESTAMP BODY
  printf '%s.%s.%s' "$1" "$2" "$3" | python3 -c 'import base64, hashlib, hmac, sys
key = base64.b64decode(sys.argv[1].removeprefix("whsec_"))
print("v1," + base64.b64encode(hmac.new(key, sys.stdin.buffer.read(), hashlib.sha256).digest()).decode())' "$SIGNING"
}

FAILED=()
ANSWER=""
call() {  # call EXPECTED TITLE curl-args...: EXPECTED is "status" or "status:text in the answer"
  local expected="$1" title="$2"; shift 2
  echo "── $title"
  local out status
  out="$(curl -s -w '\n%{http_code}' "$@")"
  status="${out##*$'\n'}"
  ANSWER="${out%$'\n'*}"
  echo "HTTP $status"
  printf '%s' "$ANSWER" | pretty
  local want_status="${expected%%:*}" want_text=""
  [ "$expected" != "$want_status" ] && want_text="${expected#*:}"
  if [ "$status" != "$want_status" ] || [[ "$ANSWER" != *"$want_text"* ]]; then
    echo "!! expected HTTP $want_status${want_text:+ with \"$want_text\"}"
    FAILED+=("$title")
  fi
  echo
}

post() {  # post EXPECTED TITLE BODY: a notification, with the credentials the service is configured with
  local expected="$1" title="$2" body="$3"
  local auth=()
  [ -n "$SECRET" ] && auth=(-H "X-Webhook-Secret: $SECRET")
  if [ -n "$SIGNING" ]; then
    local id="msg_$(date +%s%N)" ts="$(date +%s)"
    auth+=(-H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: $(sign "$id" "$ts" "$body")")
  fi
  call "$expected" "$title" -X POST "$ENDPOINT" -H "Content-Type: application/json" "${auth[@]}" --data-binary "$body"
}

api() {  # api EXPECTED TITLE PATH [curl args...]: the read API, with the first JOBS_API_TOKENS value if any
  local expected="$1" title="$2" path="$3"; shift 3
  local auth=()
  [ -n "$TOKEN" ] && auth=(-H "Authorization: Bearer $TOKEN")
  call "$expected" "$title" "${auth[@]}" "$URL$path" "$@"
}

COMPLETED='{
  "job_id": "'"$JOB"'", "status": "completed", "timestamp": "'"$NOW"'", "environment": "development",
  "data": {
    "job_id": "'"$JOB"'",
    "images": [{"file_path": "./test.png", "url": "http://localhost:9006/test.png", "description": "Image de test",
                "format": "PNG", "size_bytes": 1024000, "dimensions": "1024x1024"}],
    "metadata": {"model_name": "gemini-2.0-flash-exp", "version": "latest", "generation_time_seconds": 10.5,
                 "input_tokens": 30, "output_size_bytes": 1024000, "timestamp": "'"$NOW"'"},
    "status": "COMPLETED", "generated_at": "'"$NOW"'"
  }
}'

# the application registers the job when it asks the backend for a generation (the read API, with a database)
api "201:pending" "0. the application registers the job (PUT /api/jobs/$JOB)" "/api/jobs/$JOB" -X PUT \
  -H "Content-Type: application/json" --data-binary '{"user_id": "demo-user", "prompt": "Image de test"}'
STATELESS=""
if [[ "$ANSWER" == *"Pas de base de données"* ]]; then
  STATELESS=1; FAILED=()
  echo "(the service runs without a database, DATABASE_URL empty: no read API, the webhook alone)"; echo
fi
post "200:image(s) générée(s) avec succès" "1. completed (processed)" "$COMPLETED"
post "200:Job déjà traité" "2. the same job again (duplicate)" "$COMPLETED"
post "200:Statut intermédiaire reçu" "3. progress (intermediate status)" '{"job_id": "'"$JOB-next"'", "status": "generating", "timestamp": "'"$NOW"'", "progress": 50, "message": "Génération en cours..."}'
post "200:Échec de la génération enregistré" "4. failed" '{"job_id": "'"$JOB-failed"'", "status": "failed", "timestamp": "'"$NOW"'", "error_message": "Clé API Google invalide", "message": "Échec de la génération d'"'"'images"}'
post "400:Données d'images manquantes" "5. completed without images" '{"job_id": "'"$JOB-empty"'", "status": "completed", "timestamp": "'"$NOW"'", "data": {"images": []}}'
post "400:JSON invalide" "6. bad JSON" '{"job_id": "broken",'
# a wrong secret is a 401 whenever the service checks a WEBHOOK_SECRET (the one this script read from the
# environment or .env); in development without one, any header passes
WRONG_EXPECTED=200; [ -n "$SECRET" ] && WRONG_EXPECTED=401
SECRET="wrong-secret" SIGNING="" post "$WRONG_EXPECTED" "7. wrong secret" "${COMPLETED//$JOB/$JOB-secret}"
if [ -n "$SIGNING" ]; then
  echo "(requests 1-6 were signed with WEBHOOK_SIGNING_SECRET, Standard Webhooks style)"
fi

if [ -z "$STATELESS" ]; then
  api '200:"status":"completed"' "8. the application reads its job back (GET /api/jobs/$JOB)" "/api/jobs/$JOB"
  api "200:$JOB-next" "9. and lists the jobs, newest first (GET /api/jobs?limit=5)" "/api/jobs?limit=5"
  api "200:$JOB" "10. a user's jobs (GET /api/jobs?user_id=demo-user)" "/api/jobs?user_id=demo-user&limit=5"
  echo "Watch the jobs: $URL/jobs"
fi

if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'curl-demo: unexpected answer to: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
echo "curl-demo: every answer was the expected one."
