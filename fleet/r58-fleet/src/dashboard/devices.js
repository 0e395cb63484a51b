// The device table: loaded once, then kept current from the event stream.
'use strict';
const rows = new Map();
const tbody = document.querySelector('#devices tbody');
function render(d) {
  const disk = d.disk_free_mib == null ? '—' : (d.disk_free_mib / 1024).toFixed(1) + ' GiB';
  const cfg = d.reported_version === d.desired_version ? 'in sync' : 'pending v' + d.desired_version;
  const tr = el('tr', { id: 'dev-' + d.id, 'data-status': d.status }, [
    el('td', {}, [el('a', { href: '/device/' + encodeURIComponent(d.id) }, [d.id])]),
    el('td', { class: 'status status-' + d.status }, [d.status]),
    el('td', {}, [d.firmware_version]), el('td', {}, [d.booted_slot]),
    el('td', { class: 'recording' }, [d.recording == null ? '—' : (d.recording ? '● recording' : 'idle')]),
    el('td', {}, [disk]), el('td', {}, [d.temperature_c == null ? '—' : d.temperature_c.toFixed(1) + ' °C']),
    el('td', {}, [cfg]), el('td', { 'data-ms': d.last_seen }, [ago(d.last_seen)]),
  ]);
  tr.dataset.search = [d.id, d.status, d.firmware_version, (d.tags || []).join(' ')].join(' ').toLowerCase();
  const old = rows.get(d.id);
  if (old) old.replaceWith(tr); else {
    const after = [...rows.keys()].sort().find((k) => k > d.id);
    tbody.insertBefore(tr, after ? rows.get(after) : null);
  }
  rows.set(d.id, tr);
  document.getElementById('empty').hidden = rows.size > 0;
  applyFilter();
}
function applyFilter() {
  const q = document.getElementById('q').value.trim().toLowerCase();
  for (const tr of rows.values()) tr.hidden = q !== '' && !tr.dataset.search.includes(q);
}
async function load() {
  const body = await api('/api/v1/devices');
  for (const d of body.devices) render(d);
}
document.getElementById('q').addEventListener('input', applyFilter);
document.getElementById('filter').addEventListener('submit', (e) => e.preventDefault());
setInterval(() => document.querySelectorAll('td[data-ms]').forEach((td) => { td.textContent = ago(Number(td.dataset.ms) || null); }), 5000);
api('/api/v1/whoami').then((w) => { document.getElementById('who').textContent = w.operator; });
load();
live('', { device: (c) => render(c.device), resync: load, open: load });
