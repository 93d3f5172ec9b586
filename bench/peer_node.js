// A benchmark peer, not part of the service: the specification's contract in plain Node `http`, as the
// specification's own Next.js route does it: a Map of processed job ids (5 minutes, swept every 5 minutes),
// console.log emoji lines, the French answers; one process, nothing on disk (a restart forgets the window).
// `make bench` serves it with `node bench/peer_node.js PORT`; GET /healthz answers 200 for the start-up wait.
"use strict";
const http = require("http");

const PORT = Number(process.argv[2] || process.env.PORT || 3000);
const WINDOW_MS = 5 * 60 * 1000;
const SECRET = process.env.WEBHOOK_SECRET || "";
const PRODUCTION = (process.env.APP_ENV || process.env.NODE_ENV || "development") === "production";
const INTERMEDIATE = new Set(["pending", "initializing", "generating", "saving"]);
const STATUSES = new Set([...INTERMEDIATE, "completed", "failed"]);
const processed = new Map(); // job id: when it was processed

setInterval(() => {
  const now = Date.now();
  for (const [job, at] of processed) if (now - at > WINDOW_MS) processed.delete(job);
}, WINDOW_MS).unref();

function answer(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function handle(req, res, raw) {
  const started = process.hrtime.bigint();
  console.log("🎨 [Image Webhook] Réception d'un webhook de génération d'images...");
  if (PRODUCTION && req.headers["x-webhook-secret"] !== SECRET) {
    console.log("❌ [Image Webhook] Secret invalide");
    return answer(res, 401, { error: "Unauthorized" });
  }
  let payload;
  try {
    payload = JSON.parse(raw);
  } catch {
    return answer(res, 400, { error: "JSON invalide" });
  }
  if (!payload || typeof payload.job_id !== "string" || !STATUSES.has(payload.status)) {
    console.log("❌ [Image Webhook] Payload invalide");
    return answer(res, 400, { error: "Payload invalide" });
  }
  const images = payload.data && Array.isArray(payload.data.images) ? payload.data.images : [];
  console.log("📦 [Image Webhook] Payload reçu:", {
    job_id: payload.job_id,
    status: payload.status,
    has_data: Boolean(payload.data),
    images_count: images.length,
  });
  if (INTERMEDIATE.has(payload.status)) {
    console.log(`ℹ️ [Image Webhook] Statut intermédiaire: ${payload.status}`);
    return answer(res, 200, {
      success: true,
      message: `Statut intermédiaire reçu: ${payload.status}`,
      job_id: payload.job_id,
      status: payload.status,
    });
  }
  const at = processed.get(payload.job_id);
  if (at !== undefined && Date.now() - at <= WINDOW_MS) {
    console.log(`⚠️ [Image Webhook] Job déjà traité: ${payload.job_id}`);
    return answer(res, 200, { success: true, message: "Job déjà traité" });
  }
  let body;
  if (payload.status === "failed") {
    processed.set(payload.job_id, Date.now());
    console.log(`❌ [Image Webhook] Échec de la génération: ${payload.error_message || "inconnue"}`);
    body = { success: true, message: "Échec de la génération enregistré", job_id: payload.job_id };
  } else {
    if (!images.length || images.some((i) => !i || typeof i.url !== "string")) {
      console.log("❌ [Image Webhook] Données d'images manquantes");
      return answer(res, 400, { error: "Données d'images manquantes" });
    }
    processed.set(payload.job_id, Date.now());
    const metadata = payload.data.metadata || {};
    console.log("✅ [Image Webhook] Génération réussie:", {
      images_count: images.length,
      model: metadata.model_name,
      generation_time: metadata.generation_time_seconds,
    });
    console.log(
      "💾 [Image Webhook] Images générées:",
      images.map((i) => ({
        url: i.url,
        format: i.format,
        dimensions: i.dimensions,
        size_kb: i.size_bytes ? Math.round(i.size_bytes / 1024) : undefined,
      })),
    );
    body = {
      success: true,
      message: `${images.length} image(s) générée(s) avec succès`,
      job_id: payload.job_id,
      images_count: images.length,
    };
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(`⏱️ [Image Webhook] Traitement terminé en ${ms.toFixed(3)}ms`);
  body.processing_time_ms = ms;
  return answer(res, 200, body);
}

http
  .createServer((req, res) => {
    if (req.method === "GET" && req.url === "/healthz") return answer(res, 200, { status: "ok" });
    if (req.method !== "POST" || req.url !== "/api/webhooks/image-completion") return answer(res, 404, { error: "Not found" });
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      try {
        handle(req, res, Buffer.concat(chunks).toString("utf8"));
      } catch (err) {
        console.log(`❌ [Image Webhook] Erreur: ${err.message}`);
        answer(res, 500, { error: "Internal server error", message: err.message });
      }
    });
  })
  .listen(PORT, "127.0.0.1", () => console.log(`peer_node listening on 127.0.0.1:${PORT}`));
