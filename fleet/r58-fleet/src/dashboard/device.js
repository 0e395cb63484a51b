// One device: summary, command buttons with their progress, telemetry charts, config.
'use strict';
const id = decodeURIComponent(location.pathname.split('/').pop());
document.getElementById('device-id').textContent = id;
document.title = 'R58 ' + id;
const cmdRows = new Map();
let lastTs = null;
const series = { cpu: [], temp: [] };

function summary(d) {
  const s = document.getElementById('summary');
  s.replaceChildren(...[
    ['Status', d.status], ['Version', d.firmware_version], ['Slot', d.booted_slot],
    ['Recording', d.recording == null ? null : (d.recording ? 'yes' : 'no')],
    ['Disk free', d.disk_free_mib == null ? null : (d.disk_free_mib / 1024).toFixed(1) + ' / ' + (d.disk_total_mib / 1024).toFixed(1) + ' GiB'],
    ['Temperature', d.temperature_c == null ? null : d.temperature_c.toFixed(1) + ' °C'],
    ['IP', (d.ip_addresses || []).join(', ')], ['Last seen', ago(d.last_seen)], ['Tags', (d.tags || []).join(', ')],
    ['Remote access', d.remote_access == null ? 'off'
      : (d.remote_access.tunnel ? 'tunnel up' : 'tunnel down') + ', ' + d.remote_access.open_streams + ' open'],
  ].map(([k, v]) => el('div', { id: 'card-' + k.toLowerCase().replace(/ /g, '-') }, [el('b', {}, [k]), text(v)])));
  s.querySelector('#card-status').classList.add('status-' + d.status);
  document.getElementById('config').textContent = JSON.stringify(
    { desired_version: d.desired_version, desired: d.desired, reported_version: d.reported_version, reported: d.reported, errors: d.reported_errors }, null, 2);
}
function command(c) {
  const progress = c.state === 'succeeded' ? '100 %' : c.progress + ' %';
  const tr = el('tr', { id: 'cmd-' + c.id, 'data-name': c.name, 'data-state': c.state }, [
    el('td', {}, [new Date(c.created_at).toLocaleTimeString()]), el('td', {}, [c.name]), el('td', {}, [c.created_by]),
    el('td', { class: 'state' }, [c.state]), el('td', {}, [progress]), el('td', {}, [c.message]),
  ]);
  const old = cmdRows.get(c.id);
  if (old) old.replaceWith(tr); else document.querySelector('#commands tbody').prepend(tr);
  cmdRows.set(c.id, tr);
}
function sample(t) {
  if (t.stream !== 'system') return;
  series.cpu.push([t.ts, t.data.cpu_percent]);
  const temps = Object.values(t.data.temperatures_c || {});
  if (temps.length) series.temp.push([t.ts, Math.max(...temps)]);
  for (const k of Object.keys(series)) if (series[k].length > 300) series[k].splice(0, series[k].length - 300);
}
function chart(canvas, points) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const pts = points.filter((p) => typeof p[1] === 'number');
  if (pts.length < 2) { ctx.fillStyle = '#57606a'; ctx.fillText('no data yet', 10, 20); return; }
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  const lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[1]));
  const span = hi - lo || 1;
  ctx.strokeStyle = '#0969da'; ctx.beginPath();
  pts.forEach(([t, v], i) => {
    const x = 30 + (canvas.width - 40) * (t - t0) / ((t1 - t0) || 1);
    const y = canvas.height - 15 - (canvas.height - 30) * (v - lo) / span;
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = '#57606a'; ctx.fillText(hi.toFixed(1), 2, 12); ctx.fillText(lo.toFixed(1), 2, canvas.height - 4);
}
async function pollTelemetry() {
  try {
    const body = await api('/api/v1/devices/' + encodeURIComponent(id) + '/telemetry?stream=system' + (lastTs ? '&since=' + lastTs : ''));
    for (const t of body.telemetry) { sample(t); lastTs = t.ts; }
    chart(document.getElementById('chart-cpu'), series.cpu);
    chart(document.getElementById('chart-temp'), series.temp);
  } catch (e) { /* shown by the live badge and the next poll */ }
}
async function load() {
  const body = await api('/api/v1/devices/' + encodeURIComponent(id));
  summary(body.device);
  for (const c of body.commands.slice().reverse()) command(c);
}
document.querySelectorAll('#buttons button').forEach((b) => b.addEventListener('click', async () => {
  if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
  try {
    const body = await api('/api/v1/devices/' + encodeURIComponent(id) + '/commands', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: b.dataset.cmd }) });
    command(body.command);
  } catch (e) { alert(e.message); }
}));
load().then(pollTelemetry);
setInterval(pollTelemetry, 2000);
live('?device=' + encodeURIComponent(id), { device: (c) => summary(c.device), command: (c) => command(c.command), resync: load, open: load });
