// The monitoring plots of /jobs, drawn with Chart.js (static/vendor/) from /monitoring.json, refreshed every
// 15 s. Chart.js draws on a canvas: model names and labels are painted as text, never parsed as HTML.
"use strict";

(function () {
  const REFRESH_MS = 15000;
  const section = document.getElementById("monitoring");
  if (!section || !section.dataset.stats || typeof Chart === "undefined") return;

  const GREEN = "#2e9d5b";
  const RED = "#d64545";
  const BLUE = "#2f5fd0";
  const AMBER = "#e0a020";
  const GREY = "#8a94a6";
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;
  Chart.defaults.plugins.legend.labels.boxWidth = 10;

  const charts = {};
  let etag = null;

  function timeLabels(stats) {
    const week = stats.period === "week";
    const format = new Intl.DateTimeFormat("fr-FR", week
      ? { weekday: "short", hour: "2-digit", minute: "2-digit" }
      : { hour: "2-digit", minute: "2-digit" });
    return stats.buckets.map((iso) => format.format(new Date(iso)));
  }

  // one chart per canvas, created once, its data replaced on each refresh
  function draw(id, type, labels, datasets, options) {
    if (charts[id]) {
      charts[id].data.labels = labels;
      charts[id].data.datasets = datasets;
      charts[id].update("none");
      return;
    }
    const canvas = document.getElementById(id);
    charts[id] = new Chart(canvas, { type, data: { labels, datasets }, options: options || {} });
  }

  function bars(label, data, color) {
    return { label, data, backgroundColor: color, borderColor: color, borderWidth: 0 };
  }

  function line(label, data, color) {
    return { label, data, borderColor: color, backgroundColor: color, pointRadius: 2, spanGaps: true, borderWidth: 1.5 };
  }

  function number(value, unit) {
    if (value === null || value === undefined) return "—";
    return value.toLocaleString("fr-FR", { maximumFractionDigits: 2 }) + (unit ? " " + unit : "");
  }

  // a size as the job page writes it (formats.size): octets, then ko, Mo, Go, To of 1000, one decimal under 10
  function size(bytes) {
    if (bytes === null || bytes === undefined) return "—";
    if (bytes < 1000) return bytes + (bytes > 1 ? " octets" : " octet");
    const units = ["ko", "Mo", "Go", "To"];
    let amount = bytes / 1000;
    while (Math.round(amount) >= 1000 && units.length > 1) {
      amount /= 1000;
      units.shift();
    }
    const text = amount < 9.95 ? amount.toFixed(1) : amount.toFixed(0);
    return text.replace(".", ",") + " " + units[0];
  }

  function show(stats) {
    const times = timeLabels(stats);
    const stacked = { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } };
    const counts = { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }, plugins: { legend: { display: false } } };
    draw("chart-processing", "line", times, [
      line("médiane", stats.processing_ms.median, BLUE),
      line("p99", stats.processing_ms.p99, AMBER),
    ], { scales: { y: { beginAtZero: true } } });
    draw("chart-outcomes", "bar", times, [
      bars("réussis", stats.jobs.completed, GREEN),
      bars("échoués", stats.jobs.failed, RED),
    ], stacked);
    draw("chart-duplicates", "bar", times, [bars("doublons", stats.duplicates.deliveries, GREY)], counts);
    draw("chart-sizes", "bar", stats.image_sizes.bins, [bars("images", stats.image_sizes.images, BLUE)], counts);
    const models = stats.generation_seconds;
    draw("chart-models", "bar", models.map((m) => (m.model === null ? "(inconnu)" : m.model)), [
      bars("moyenne", models.map((m) => m.average), BLUE),
      bars("max", models.map((m) => m.max), AMBER),
    ], { indexAxis: "y", scales: { x: { beginAtZero: true } } });

    const totals = {
      completed: number(stats.jobs.total_completed),
      failed: number(stats.jobs.total_failed),
      duplicates: number(stats.duplicates.total),
      median: number(stats.processing_ms.overall_median, "ms"),
      p99: number(stats.processing_ms.overall_p99, "ms"),
      images: number(stats.image_sizes.images_total),
      bytes: size(stats.image_sizes.bytes_total),
      copies_queued: number(stats.copies.counts.queued),
      copies_copying: number(stats.copies.counts.copying),
      copies_stored: number(stats.copies.counts.stored),
      copies_failed: number(stats.copies.counts.failed),
      copies_refused: number(stats.copies.counts.refused),
      copies_oldest: stats.copies.oldest_queued_seconds === null ? "—" : number(stats.copies.oldest_queued_seconds, "s"),
    };
    for (const [name, text] of Object.entries(totals)) {
      section.querySelector('[data-stat="' + name + '"]').textContent = text;
    }
    section.querySelector('[data-stat="bytes"]').title = number(stats.image_sizes.bytes_total, "octets");
    const note = document.getElementById("stats-note");
    note.textContent = stats.processing_ms.sampled
      ? "percentiles sur les " + number(stats.processing_ms.jobs) + " jobs les plus récents de la période"
      : "depuis " + new Date(stats.since).toLocaleString("fr-FR");
  }

  async function refresh() {
    try {
      const headers = etag ? { "If-None-Match": etag } : {};
      const answer = await fetch(section.dataset.stats, { headers, cache: "no-store", credentials: "same-origin" });
      if (answer.status === 200) {
        etag = answer.headers.get("ETag");
        show(await answer.json());
        section.dataset.loaded = "true";
      }
    } catch (error) {
      document.getElementById("stats-note").textContent = "hors ligne";
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  refresh();
})();
