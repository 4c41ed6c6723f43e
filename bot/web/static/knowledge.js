// The knowledge page: while a re-ingest runs, show its progress (as text) and reload the page when it ends.
"use strict";
(function () {
  const shown = document.querySelectorAll(".progress[data-persona]");
  let running = Array.from(shown).some(function (p) { return p.textContent.startsWith("re-ingesting"); });
  if (!running) return;
  async function poll() {
    try {
      const res = await fetch("/api/knowledge", { headers: { "Accept": "application/json" } });
      if (!res.ok) return;
      const jobs = await res.json();
      running = false;
      shown.forEach(function (p) {
        const job = jobs[p.dataset.persona];
        if (!job) return;
        p.textContent = job.said;
        if (job.state === "running") running = true;
      });
      if (!running) { location.reload(); return; }
    } catch (e) { /* the bot is restarting: try again */ }
    setTimeout(poll, 700);
  }
  setTimeout(poll, 300);
})();
