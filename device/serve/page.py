"""The page at ``/``: the live preview and the numbers beside it, refreshed without reloads.

Static: the page has no server-side templating. Its script polls ``status`` and shows the
stream from ``stream`` (relative URLs, so it also works behind a reverse proxy's sub-path),
passing on the ``?token=`` it was opened with. Every value is written with ``textContent``:
a label from a model file is never parsed as HTML.
"""

from __future__ import annotations

#: How often the page asks for /status, in milliseconds.
POLL_MS = 400

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>edgecls live</title>
<style>
  body { margin: 0; font: 15px/1.4 system-ui, sans-serif; background: #111; color: #eee; }
  header { padding: 10px 16px; background: #1d1d1d; display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 17px; margin: 0; }
  .muted { color: #999; }
  main { display: flex; gap: 16px; padding: 16px; flex-wrap: wrap; }
  #view { flex: 1 1 480px; max-width: 960px; }
  #stream { width: 100%; background: #000; display: block; min-height: 120px; }
  aside { flex: 0 1 320px; }
  #label { font-size: 40px; font-weight: 700; margin: 0; word-break: break-word; }
  .bar { height: 8px; background: #333; border-radius: 4px; overflow: hidden; margin: 4px 0 14px; }
  #scorebar { height: 100%; width: 0; background: #3c9; transition: width .2s; }
  table { border-collapse: collapse; width: 100%; margin-bottom: 14px; }
  td { padding: 3px 0; border-bottom: 1px solid #2a2a2a; }
  td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
  h2 { font-size: 14px; text-transform: uppercase; color: #999; margin: 12px 0 4px; }
  #history { list-style: none; padding: 0; margin: 0; font-variant-numeric: tabular-nums; }
  #history li { padding: 2px 0; }
  #conn.down { color: #f66; }
</style>
</head>
<body>
<header>
  <h1>edgecls live</h1>
  <span class="muted">model <span id="model">-</span> on <span id="backend">-</span></span>
  <span class="muted">source <span id="source">-</span></span>
  <span id="conn" class="muted">connecting</span>
</header>
<main>
  <div id="view"><img id="stream" alt="live preview"></div>
  <aside>
    <p class="muted" style="margin:0">current label</p>
    <p id="label">-</p>
    <div>score <span id="score">-</span></div>
    <div class="bar"><div id="scorebar"></div></div>
    <table>
      <tr><td>frames/s</td><td id="fps">-</td></tr>
      <tr><td>frames</td><td id="frames">-</td></tr>
      <tr><td>dropped</td><td id="dropped">-</td></tr>
      <tr><td>reconnects</td><td id="reconnects">-</td></tr>
      <tr><td>stalls</td><td id="stalls">-</td></tr>
      <tr><td>latency</td><td id="latency">-</td></tr>
      <tr><td>invoke</td><td id="invoke">-</td></tr>
      <tr><td>viewers</td><td id="viewers">-</td></tr>
    </table>
    <h2>recent labels</h2>
    <ul id="history"></ul>
  </aside>
</main>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const q = token ? "?token=" + encodeURIComponent(token) : "";
const $ = (id) => document.getElementById(id);
const set = (id, text) => { $(id).textContent = text; };
const img = $("stream");
img.src = "stream" + q;
img.onerror = () => setTimeout(() => { img.src = "stream" + q + (q ? "&" : "?") + "t=" + Date.now(); }, 1000);

function show(s) {
  set("model", s.model.name);
  set("backend", s.backend);
  set("source", s.source);
  const p = s.prediction;
  if (p) {
    set("label", p.label);
    set("score", p.score.toFixed(3));
    $("scorebar").style.width = Math.round(p.score * 100) + "%";
  }
  const st = s.stats;
  if (st) {
    set("fps", st.fps.toFixed(1));
    set("frames", st.frames);
    set("dropped", st.dropped);
    set("reconnects", st.reconnects);
    set("stalls", st.stalls);
    set("latency", st.latency_ms.toFixed(1) + " ms");
    set("invoke", st.invoke_ms.toFixed(2) + " ms");
  }
  set("viewers", s.viewers);
  const ul = $("history");
  ul.replaceChildren(...s.history.slice().reverse().map((h) => {
    const li = document.createElement("li");
    li.textContent = new Date(h.ts * 1000).toLocaleTimeString() + "  " + h.label + "  " + h.score.toFixed(2);
    return li;
  }));
}

async function poll() {
  try {
    const r = await fetch("status" + q, { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    show(await r.json());
    set("conn", "live");
    $("conn").className = "muted";
  } catch (e) {
    set("conn", "disconnected (" + e.message + ")");
    $("conn").className = "down";
  }
  setTimeout(poll, __POLL_MS__);
}
poll();
</script>
</body>
</html>
""".replace("__POLL_MS__", str(POLL_MS))
