// The /jobs page kept current: polls its JSON view (ETag, 304 while nothing changed) and rebuilds the rows that
// changed; ticks every age; writes the times the server gave in UTC in the browser's own time zone (both pages).
// Every value from the feed goes in as text (textContent, setAttribute), never as HTML.
"use strict";

(function () {
  const POLL_MS = 1500;
  const LOCAL = new Intl.DateTimeFormat("fr-FR", {
    day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });

  function age(iso) {
    const moment = Date.parse(iso);
    if (Number.isNaN(moment)) return "";
    const seconds = Math.max(0, Math.floor((Date.now() - moment) / 1000));
    for (const [unit, size] of [["j", 86400], ["h", 3600], ["min", 60]]) {
      if (seconds >= size) return Math.floor(seconds / size) + " " + unit;
    }
    return seconds + " s";
  }

  function tickAges() {
    for (const time of document.querySelectorAll("time[data-age]")) {
      time.textContent = age(time.getAttribute("datetime"));
    }
  }

  function localTime(iso) {
    const moment = Date.parse(iso);
    return Number.isNaN(moment) ? "" : LOCAL.format(moment);
  }

  // the server wrote times in UTC ("7 déc. 2026 14:03:12 UTC", kept in the title): here, in local time; an age's
  // title says its time, local too
  function localTimes() {
    for (const time of document.querySelectorAll("time[data-local]")) {
      const text = localTime(time.getAttribute("datetime"));
      if (text) time.textContent = text;
    }
    for (const time of document.querySelectorAll("time[data-age]")) {
      const text = localTime(time.getAttribute("datetime"));
      if (text) time.title = text;
    }
  }

  function decimal(value) {
    return value.toLocaleString("fr-FR", { minimumFractionDigits: 0, maximumFractionDigits: 1 });
  }

  // the service's own thumbnails only: a path on this origin, as the server writes it (a second lock, with the CSP)
  function ownPath(text) {
    return typeof text === "string" && text.startsWith("/jobs/") && !text.startsWith("//");
  }

  // an element with a class and, optionally, text; children appended
  function element(tag, className, text, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null && text !== "") node.textContent = String(text);
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // the same row as templates/_job.html
  function row(job) {
    const tr = element("tr", "job status-" + job.status);
    tr.dataset.jobId = job.job_id;

    const link = element("a", null, null, element("code", null, job.job_id));
    link.setAttribute("href", job.href);
    const owner = element("td", "owner", job.user_id || "—");
    if (job.organization_id) owner.append(element("small", null, job.organization_id));

    const state = element("td", "state", null, element("span", "badge", job.status));
    if (job.running) {
      const bar = element("progress");
      bar.max = 100;
      if (job.progress !== null) bar.value = job.progress;
      state.append(bar);
    }

    const message = element("td", "message");
    if (job.prompt) {
      const prompt = element("q", "prompt", job.prompt);
      prompt.title = "Prompt";
      message.append(prompt);
    } else if (job.description) {
      const description = element("span", "description", job.description);
      description.title = "Description de la première image";
      message.append(description);
    }
    if (job.message) message.append(element("span", "text", job.message));
    if (job.error_message) message.append(element("span", "error", job.error_message));

    const images = element("td", "images");
    for (const image of job.thumbnails) {
      if (ownPath(image.url)) {
        const img = element("img", "thumb");
        img.setAttribute("src", image.url);
        img.setAttribute("alt", image.alt || "");
        images.append(img);
      } else {
        const state = element("span", "thumb copy-" + (image.state || "none"), image.label);
        state.title = image.error || image.label;
        images.append(state);
      }
    }
    if (job.more_images) images.append(element("span", "more", "+" + job.more_images));

    const model = element("td", "model", job.model || "—");
    if (job.generation_seconds !== null) model.append(element("small", null, decimal(job.generation_seconds) + " s"));

    const time = element("time", null, age(job.created_at));
    time.setAttribute("datetime", job.created_at);
    time.title = localTime(job.created_at);
    time.dataset.age = "";

    tr.append(element("td", "id", null, link), owner, state, message, images, model, element("td", "age", null, time));
    return tr;
  }

  function empty() {
    const td = element("td", null, "Aucun job pour l'instant.");
    td.colSpan = 7;
    return element("tr", "empty", null, td);
  }

  const section = document.getElementById("jobs");
  localTimes();
  tickAges();
  setInterval(tickAges, 1000);
  if (!section || !section.dataset.feed) return;

  const body = document.getElementById("job-rows");
  const live = document.getElementById("live");
  const next = document.getElementById("next-page");
  let etag = section.dataset.etag || null;

  function render(feed) {
    const current = new Map();
    for (const tr of body.querySelectorAll("tr[data-job-id]")) current.set(tr.dataset.jobId, tr);
    const rows = feed.jobs.map((job) => {
      const text = JSON.stringify(job);
      const kept = current.get(job.job_id);
      if (kept && kept.dataset.json === text) return kept; // unchanged: the row (and its images) is kept
      const built = row(job);
      built.dataset.json = text; // only the rows on screen hold it: nothing grows while the page stays open
      return built;
    });
    body.replaceChildren(...(rows.length ? rows : [empty()]));
    if (feed.next_url) next.setAttribute("href", feed.next_url);
    next.hidden = !feed.next_url;
  }

  // the indicator's state is a class too: "hors ligne" and errors must not look like "en direct"
  function say(text, state) {
    live.textContent = text;
    live.dataset.state = state;
  }

  async function poll() {
    try {
      if (document.hidden) return; // a tab in the background asks nothing; it catches up when shown again
      const headers = etag ? { "If-None-Match": etag } : {};
      const answer = await fetch(section.dataset.feed, { headers, cache: "no-store", credentials: "same-origin" });
      if (answer.status === 200) {
        etag = answer.headers.get("ETag");
        render(await answer.json());
        say("en direct · " + new Date().toLocaleTimeString("fr-FR"), "live");
      } else if (answer.status === 304) {
        say("en direct · " + new Date().toLocaleTimeString("fr-FR"), "live");
      } else {
        say("erreur " + answer.status, "error");
      }
    } catch (error) {
      say("hors ligne", "offline");
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  // the server rendered the rows with the feed's ETag: the first poll answers 304 unless something changed
  setTimeout(poll, POLL_MS);
})();
