// Cairn's UI: actions go to the JSON API with fetch; parts of a page marked
// data-live are re-read every few seconds. No framework, no build step.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="cairn-csrf"]').content;
  const LIVE_MS = 2000;

  // api calls the JSON API as the logged-in user (the session cookie goes
  // along; writes carry the CSRF token) and returns the parsed answer.
  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json", "X-Cairn-Actor": "ui" };
    if (csrf) headers["X-Cairn-CSRF"] = csrf;
    const res = await fetch(path, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let out = {};
    try { out = text ? JSON.parse(text) : {}; } catch (e) { out = { error: text }; }
    if (!res.ok) throw new Error(out.error || out.message || res.status + " " + res.statusText);
    return out;
  }

  function toast(msg) {
    const t = document.getElementById("toast");
    t.textContent = msg;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.textContent = ""; }, 6000);
  }

  // Buttons with data-post: POST to the API, then follow data-then.
  document.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-post]");
    if (!b) return;
    if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
    b.disabled = true;
    try {
      const out = await api("POST", b.dataset.post, b.dataset.body ? JSON.parse(b.dataset.body) : undefined);
      const d = out.data || {};
      switch (b.dataset.then) {
        case "run": location.href = "/runs/" + d.run_id; return;
        case "event": location.href = "/events/" + d.id; return;
        default: location.reload();
      }
    } catch (e) {
      toast(e.message);
      b.disabled = false;
    }
  });

  document.addEventListener("submit", async (ev) => {
    const f = ev.target;
    if (f.matches("[data-send]")) {
      ev.preventDefault();
      let data;
      try { data = JSON.parse(f.data.value || "{}"); } catch (e) { toast("Data is not valid JSON: " + e.message); return; }
      try {
        const out = await api("POST", "/v1/events", { name: f.name.value, data });
        location.href = "/events/" + out.ids[0];
      } catch (e) { toast(e.message); }
    } else if (f.matches("[data-replay]")) {
      ev.preventDefault();
      const utc = (v) => v ? new Date(v + "Z").toISOString() : undefined;
      const statuses = [...f.querySelectorAll("input[name=statuses]:checked")].map((i) => i.value);
      try {
        const out = await api("POST", "/v1/replays", { function_id: f.function_id.value, from: utc(f.from.value),
          to: utc(f.to.value) || new Date().toISOString(), statuses });
        followReplay(out.data.replay_id, f.dataset.running);
      } catch (e) { toast(e.message); }
    } else if (f.matches("[data-sync-url]")) {
      ev.preventDefault();
      try { await api("POST", "/v1/apps/sync", { url: f.url.value }); location.reload(); } catch (e) { toast(e.message); }
    }
  });

  async function followReplay(id, running) {
    const box = document.getElementById("replay-progress");
    box.hidden = false;
    const pre = box.querySelector("pre");
    for (;;) {
      const out = await api("GET", "/v1/replays/" + id);
      pre.textContent = JSON.stringify(out.data, null, 2);
      if (out.data.status !== running) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  // Live parts: re-read the page and swap each data-live element by id;
  // stop once the fresh page has none (a run that ended).
  async function refresh() {
    const live = document.getElementById("live");
    if (document.hidden || (live && !live.checked) || document.querySelector("details[open] [data-live], [data-live] details[open]")) return true;
    const res = await fetch(location.href, { credentials: "same-origin" });
    if (!res.ok) return true;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    // An element that lost data-live (a run that ended) is swapped in too,
    // in its final state.
    const fresh = doc.querySelectorAll("[data-live]");
    document.querySelectorAll("[data-live]").forEach((el) => {
      const n = doc.getElementById(el.id);
      if (n) el.replaceWith(n);
    });
    clusterHealth();
    return fresh.length > 0;
  }
  if (document.querySelector("[data-live]")) {
    const tick = async () => { if (await refresh().catch(() => true)) setTimeout(tick, LIVE_MS); };
    setTimeout(tick, LIVE_MS);
  }

  async function clusterHealth() {
    const el = document.querySelector("[data-cluster-health]");
    if (!el) return;
    try {
      const c = await api("GET", "/v1/cluster");
      const n = (c.members || []).length;
      el.textContent = (c.leader_id ? "leader " + c.leader_id : "no leader") + " · " + n + (n === 1 ? " member" : " members") + " · applied index " + c.applied;
      el.className = c.leader_id ? "" : "error";
    } catch (e) { el.textContent = e.message; el.className = "error"; }
  }
  clusterHealth();

  const dg = document.querySelector("[data-digest]");
  if (dg) dg.addEventListener("click", async () => {
    dg.disabled = true;
    try { const c = await api("GET", "/v1/cluster?digest=true"); document.getElementById("digest").textContent = c.state_digest; }
    catch (e) { toast(e.message); }
    dg.disabled = false;
  });
})();
