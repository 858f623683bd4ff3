# ruff: noqa: E501
"""``/docs``: a self-contained interactive page over ``/openapi.json`` (no CDN, works offline)."""

DOCS_HTML = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modelgate API docs</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;gap:16px;align-items:center;flex-wrap:wrap}
header h1{font-size:18px;margin:0 16px 0 0}
header input{padding:5px 8px;border-radius:4px;border:0}
main{max-width:1000px;margin:0 auto;padding:16px}
h2{margin:24px 0 8px;text-transform:capitalize}
details{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:6px 0}
summary{cursor:pointer;padding:8px 12px;display:flex;gap:12px;align-items:center}
.m{font-weight:700;width:64px;text-align:center;border-radius:4px;color:#fff;padding:2px 0;font-size:12px}
.GET{background:#2f7dd1}.POST{background:#2e9d5b}.PUT{background:#c58a12}.PATCH{background:#8a5cd1}.DELETE{background:#cf3c3c}
.path{font-family:ui-monospace,monospace}.sum{color:#5b6475}
.body{padding:8px 14px 14px;border-top:1px solid #eef0f4}
label{display:block;margin:6px 0 2px;font-weight:600}
input.p,textarea{width:100%;box-sizing:border-box;font-family:ui-monospace,monospace;font-size:13px;padding:5px}
textarea{min-height:110px}
button{margin-top:8px;padding:6px 14px;border:0;border-radius:4px;background:#1d2330;color:#fff;cursor:pointer}
pre{background:#1d2330;color:#e6e8ee;padding:10px;border-radius:4px;overflow:auto;max-height:420px}
.lock{font-size:12px;color:#8a5cd1}
#who{font-size:13px}
</style></head>
<body>
<header><h1>modelgate management API</h1>
<form id="login"><input id="u" placeholder="username" autocomplete="username">
<input id="pw" type="password" placeholder="password" autocomplete="current-password">
<button>Log in</button></form><span id="who">not logged in</span>
<a href="/openapi.json" style="color:#9cc3ff;margin-left:auto">openapi.json</a></header>
<main id="ops">Loading…</main>
<script>
"use strict";
let token = sessionStorage.getItem("mg_token") || "";
let spec = null;
const $ = (t, a = {}, ...kids) => { const e = document.createElement(t);
  for (const [k, v] of Object.entries(a)) { if (k === "text") e.textContent = v; else e.setAttribute(k, v); }
  for (const k of kids) e.append(k); return e; };
function who(text) { document.getElementById("who").textContent = text; }
if (token) who("token stored for this tab");
function resolve(s) { while (s && s.$ref) s = spec.components.schemas[s.$ref.split("/").pop()]; return s || {}; }
function example(s, depth = 0) {
  s = resolve(s); if (depth > 5) return null;
  if (s.default !== undefined) return s.default;
  if (s.examples) return s.examples[0];
  if (s.enum) return s.enum[0];
  if (s.const !== undefined) return s.const;
  if (s.anyOf) return example(s.anyOf.find(x => x.type !== "null") || s.anyOf[0], depth + 1);
  if (s.allOf) return example(s.allOf[0], depth + 1);
  switch (s.type) {
    case "object": { const o = {}; const req = new Set(s.required || []);
      for (const [k, v] of Object.entries(s.properties || {})) if (req.has(k)) o[k] = example(v, depth + 1);
      return o; }
    case "array": return [];
    case "integer": return s.minimum || 0;
    case "number": return s.minimum || 0;
    case "boolean": return false;
    default: return "";
  }
}
async function send(method, path, op, inputs, bodyEl, fileEl, out) {
  let url = path;
  const qs = new URLSearchParams();
  for (const p of op.parameters || []) {
    const v = inputs[p.in + ":" + p.name].value;
    if (p.in === "path") url = url.replace("{" + p.name + "}", encodeURIComponent(v));
    else if (v !== "") qs.set(p.name, v);
  }
  if ([...qs].length) url += "?" + qs;
  const headers = {}; let body;
  if (token) headers.Authorization = "Bearer " + token;
  if (fileEl && fileEl.files.length) {
    body = new FormData(); const fields = JSON.parse(bodyEl.value || "{}");
    for (const [k, v] of Object.entries(fields)) body.append(k, typeof v === "string" ? v : JSON.stringify(v));
    body.append("file", fileEl.files[0]);
  } else if (bodyEl) { headers["Content-Type"] = "application/json"; body = bodyEl.value; }
  out.textContent = method + " " + url + " …";
  try {
    const r = await fetch(url, { method, headers, body });
    const text = await r.text(); let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {}
    out.textContent = r.status + " " + r.statusText + "\n\n" + shown;
  } catch (e) { out.textContent = "request failed: " + e; }
}
function render() {
  const root = document.getElementById("ops"); root.textContent = "";
  const intro = $("p", { text: spec.info.description }); root.append(intro);
  const byTag = {};
  for (const [path, item] of Object.entries(spec.paths))
    for (const [method, op] of Object.entries(item)) (byTag[op.tags[0]] ||= []).push([method.toUpperCase(), path, op]);
  for (const [tag, ops] of Object.entries(byTag)) {
    root.append($("h2", { text: tag }));
    for (const [method, path, op] of ops) {
      const d = $("details");
      const sum = $("summary", {}, $("span", { class: "m " + method, text: method }), $("span", { class: "path", text: path }),
        $("span", { class: "sum", text: op.summary }));
      if (op.security) sum.append($("span", { class: "lock", text: "needs token" }));
      d.append(sum);
      const body = $("div", { class: "body" });
      if (op.description) body.append($("p", { text: op.description }));
      const inputs = {};
      for (const p of op.parameters || []) {
        const inp = $("input", { class: "p", placeholder: p.description || p.name });
        const s = resolve(p.schema); if (s.default !== undefined && s.default !== null) inp.value = s.default;
        inputs[p.in + ":" + p.name] = inp;
        body.append($("label", { text: p.name + " (" + p.in + (p.required ? ", required" : "") + ")" }), inp);
      }
      let bodyEl = null, fileEl = null;
      const content = op.requestBody ? op.requestBody.content : null;
      if (content) {
        const json = content["application/json"], form = content["multipart/form-data"];
        bodyEl = $("textarea");
        const fields = json ? example(json.schema) : example(form.schema);
        if (!json) delete fields.file;
        bodyEl.value = JSON.stringify(fields, null, 2);
        body.append($("label", { text: json ? "JSON body" : "form fields (JSON)" }), bodyEl);
        if (form) { fileEl = $("input", { type: "file" });
          body.append($("label", { text: "file (multipart; fields above are sent as form fields)" }), fileEl); }
      }
      const out = $("pre", { text: "" });
      const btn = $("button", { text: "Send" });
      btn.onclick = () => send(method, path, op, inputs, bodyEl, fileEl, out);
      body.append(btn, out); d.append(body); root.append(d);
    }
  }
}
document.getElementById("login").onsubmit = async (ev) => {
  ev.preventDefault();
  const r = await fetch("/api/auth/token", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: document.getElementById("u").value, password: document.getElementById("pw").value }) });
  const data = await r.json();
  if (r.ok) { token = data.access_token; sessionStorage.setItem("mg_token", token); who("logged in as " + data.user.username + " (" + data.user.role + ")"); }
  else who(data.error ? data.error.message : "login failed");
};
fetch("/openapi.json").then(r => r.json()).then(s => { spec = s; render(); })
  .catch(e => { document.getElementById("ops").textContent = "cannot load /openapi.json: " + e; });
</script></body></html>
"""
