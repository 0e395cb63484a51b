// Shared by the dashboard pages: API calls with the session cookie, formatting, and the
// live event stream (reconnects by itself; shows its state in the header).
'use strict';
async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: 'same-origin' }, opts || {}));
  if (r.status === 401) { location.href = '/login'; throw new Error('not signed in'); }
  const body = r.status === 204 ? {} : await r.json();
  if (!r.ok) throw new Error(body.reason || ('HTTP ' + r.status));
  return body;
}
function ago(ms) {
  if (ms == null) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  return Math.round(s / 3600) + ' h ago';
}
function text(v) { return v == null ? '—' : String(v); }
function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children || []) e.append(c instanceof Node ? c : document.createTextNode(text(c)));
  return e;
}
function live(query, handlers) {
  const badge = document.getElementById('live');
  const es = new EventSource('/api/v1/events' + (query || ''));
  es.onopen = () => { badge.textContent = 'live'; badge.className = 'live'; if (handlers.open) handlers.open(); };
  es.onerror = () => { badge.textContent = 'reconnecting…'; badge.className = 'live off'; };
  for (const [type, fn] of Object.entries(handlers)) {
    if (type !== 'open') es.addEventListener(type, (e) => fn(JSON.parse(e.data)));
  }
  return es;
}
