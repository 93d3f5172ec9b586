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

if ! curl -s -o /dev/null "$URL/healthz"; then
  echo "No service answers at $URL: start it with 'make run' in another terminal." >&2
  exit 1
fi

# The backend serves its images at http://localhost:9006 (the specification's address, IMAGE_SOURCES's default
# in development): this demo plays that part while it runs, with two small real PNGs the service copies.
IMAGES_DIR="$(mktemp -d)"
IMAGES_PID=""
cleanup() { [ -n "$IMAGES_PID" ] && kill "$IMAGES_PID" 2>/dev/null; rm -rf "$IMAGES_DIR"; }
trap cleanup EXIT
python3 - "$IMAGES_DIR" <<'PY'
import struct, sys, zlib
def png(path, size, tint):
    rows = b"".join(b"\0" + bytes(v for x in range(size) for v in ((x * 255 // size), (y * 255 // size), tint))
                    for y in range(size))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
                  + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
png(sys.argv[1] + "/cat-1.png", 512, 200)
png(sys.argv[1] + "/cat-2.png", 384, 60)
PY
SIZE_1=$(wc -c < "$IMAGES_DIR/cat-1.png"); SIZE_2=$(wc -c < "$IMAGES_DIR/cat-2.png")
if curl -s -o /dev/null "http://localhost:9006/"; then
  echo "(something already answers on localhost:9006: the demo's images are served by it, or not at all)"
else
  python3 -m http.server 9006 --bind 127.0.0.1 --directory "$IMAGES_DIR" >/dev/null 2>&1 &
  IMAGES_PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:9006/" && break; sleep 0.1; done
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
    "images": [{"file_path": "./cat-1.png", "url": "http://localhost:9006/cat-1.png", "description": "Image de test",
                "format": "PNG", "size_bytes": '"$SIZE_1"', "dimensions": "512x512"},
               {"file_path": "./cat-2.png", "url": "http://localhost:9006/cat-2.png", "description": "Variante",
                "format": "PNG", "size_bytes": '"$SIZE_2"', "dimensions": "384x384"}],
    "metadata": {"model_name": "gemini-2.0-flash-exp", "version": "latest", "generation_time_seconds": 10.5,
                 "input_tokens": 30, "output_size_bytes": 1024000, "timestamp": "'"$NOW"'"},
    "status": "COMPLETED", "generated_at": "'"$NOW"'"
  }
}'

# the application registers the job when it asks the backend for a generation (the read API, with a database)
api "201:pending" "0. the application registers the job: 201, pending until notified (PUT /api/jobs/$JOB)" "/api/jobs/$JOB" -X PUT \
  -H "Content-Type: application/json" --data-binary '{"user_id": "demo-user", "prompt": "Image de test"}'
STATELESS=""
if [[ "$ANSWER" == *"Pas de base de données"* ]]; then
  STATELESS=1; FAILED=()
  echo "(the service runs without a database, DATABASE_URL empty: no read API, the webhook alone)"; echo
fi
post "200:image(s) générée(s) avec succès" "1. completed: 200, processed and recorded, its images queued for copying" "$COMPLETED"
post "200:Job déjà traité" "2. the same job again: 200 Job déjà traité (a terminal notification is processed once)" "$COMPLETED"
post "200:Statut intermédiaire reçu" "3. progress of another job: 200, its status moves forward" '{"job_id": "'"$JOB-next"'", "status": "generating", "timestamp": "'"$NOW"'", "progress": 50, "message": "Génération en cours..."}'
post "200:Échec de la génération enregistré" "4. failed: 200, the failure is recorded" '{"job_id": "'"$JOB-failed"'", "status": "failed", "timestamp": "'"$NOW"'", "error_message": "Clé API Google invalide", "message": "Échec de la génération d'"'"'images"}'
post "400:Données d'images manquantes" "5. completed without images: 400 (the schema requires at least one)" '{"job_id": "'"$JOB-empty"'", "status": "completed", "timestamp": "'"$NOW"'", "data": {"images": []}}'
post "400:JSON invalide" "6. bad JSON: 400 with where the parser stopped" '{"job_id": "broken",'
# a wrong secret is a 401 whenever the service checks a WEBHOOK_SECRET (the one this script read from the
# environment or .env); in development without one, any header passes
if [ -n "$SECRET" ]; then
  SECRET="wrong-secret" SIGNING="" post 401 "7. wrong secret: refused (401), WEBHOOK_SECRET is set" \
    "${COMPLETED//$JOB/$JOB-secret}"
else
  SECRET="wrong-secret" SIGNING="" post 200 \
    "7. wrong secret: accepted (200) by design, development without WEBHOOK_SECRET checks none (production refuses)" \
    "${COMPLETED//$JOB/$JOB-secret}"
fi
if [ -n "$SIGNING" ]; then
  echo "(requests 1-6 were signed with WEBHOOK_SIGNING_SECRET, Standard Webhooks style)"
fi

if [ -z "$STATELESS" ]; then
  api '200:"status":"completed"' "8. the application reads its job back (GET /api/jobs/$JOB)" "/api/jobs/$JOB"
  api "200:$JOB-next" "9. and lists the jobs, newest first (GET /api/jobs?limit=5)" "/api/jobs?limit=5"
  api "200:$JOB" "10. a user's jobs (GET /api/jobs?user_id=demo-user)" "/api/jobs?user_id=demo-user&limit=5"
  echo "── 11. the service copies the job's images into its own store (GET /api/jobs/$JOB, copies)"
  auth=(); [ -n "$TOKEN" ] && auth=(-H "Authorization: Bearer $TOKEN")
  states=""
  for _ in $(seq 100); do
    states="$(curl -s "${auth[@]}" "$URL/api/jobs/$JOB" | python3 -c 'import json, sys
print(" ".join(copy["state"] for copy in json.load(sys.stdin).get("copies", [])))' 2>/dev/null)"
    [[ "$states" == "stored stored" || "$states" == *failed* || "$states" == *refused* ]] && break
    sleep 0.2
  done
  echo "copies: ${states:-none}"
  if [ "$states" != "stored stored" ]; then
    echo "!! expected both images stored (IMAGE_SOURCES must allow http://localhost:9006: the development default)"
    FAILED+=("11. the copies")
  else
    api "200" "12. the first image, served by the service itself (GET /api/jobs/$JOB/images/0)" \
      "/api/jobs/$JOB/images/0" -o /dev/null
  fi
  echo
  echo "Watch the jobs, their thumbnails and the monitoring: $URL/jobs"
fi

if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'curl-demo: unexpected answer to: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
echo "curl-demo: every answer was the expected one."
