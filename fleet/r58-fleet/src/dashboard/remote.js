// The remote-access page: the fleet-wide switch (admins turn it on or off), the boxes with
// a tunnel open (a link to each box's UI), and the audit of sessions with a close button
// for open ones. Polls the API every 2 s.
'use strict';
function bytes(n) {
  if (n < 1024) return n + ' B';
  if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1048576).toFixed(1) + ' MiB';
}
async function act(what, path, opts) {
  try { await api(path, opts); } catch (e) { alert(what + ': ' + e.message); }
  refresh();
}
function showSwitch(sw) {
  const state = document.getElementById('switch-state');
  state.textContent = sw.enabled ? 'on' : 'off';
  state.dataset.enabled = String(sw.enabled);
  state.title = sw.changed_by ? 'set by ' + sw.changed_by + ', ' + ago(sw.changed_at_ms) : 'never switched';
  const b = document.getElementById('switch');
  b.hidden = false;
  b.textContent = sw.enabled ? 'Turn off' : 'Turn on';
  b.onclick = () => act('switch', '/api/v1/remote-access', {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ enabled: !sw.enabled }),
  });
}
function showTunnels(list) {
  document.querySelector('#tunnels tbody').replaceChildren(...list.devices.map((d) => el('tr', { 'data-device': d }, [
    el('td', {}, [el('a', { href: '/device/' + encodeURIComponent(d) }, [d])]),
    el('td', {}, [el('a', { href: '/api/v1/devices/' + encodeURIComponent(d) + '/ui/', target: '_blank', rel: 'noopener' }, ['open'])]),
  ])));
}
function showSessions(list) {
  document.querySelector('#sessions tbody').replaceChildren(...list.sessions.map((s) => {
    const open = s.closed_at == null;
    const close = el('td', {}, []);
    if (open) {
      const b = el('button', { 'data-action': 'close' }, ['close']);
      b.onclick = () => act('close', '/api/v1/tunnel-sessions/' + encodeURIComponent(s.id), { method: 'DELETE' });
      close.append(b);
    }
    return el('tr', { 'data-id': s.id, 'data-open': String(open), 'data-reason': s.end_reason || '' }, [
      el('td', {}, [ago(s.opened_at)]), el('td', {}, [s.device]), el('td', {}, [s.kind]), el('td', {}, [s.opened_by]),
      el('td', { class: 'mono' }, [s.target]), el('td', {}, [bytes(s.bytes_to_device)]), el('td', {}, [bytes(s.bytes_from_device)]),
      el('td', {}, [open ? 'open' : s.end_reason + ', ' + ago(s.closed_at)]), close,
    ]);
  }));
}
async function refresh() {
  const badge = document.getElementById('live');
  try {
    const [sw, sessions] = await Promise.all([api('/api/v1/remote-access'), api('/api/v1/tunnel-sessions')]);
    showSwitch(sw);
    showSessions(sessions);
    const noRelay = document.getElementById('no-relay');
    try {
      showTunnels(await api('/api/v1/tunnels'));
      noRelay.hidden = true;
    } catch (e) {
      noRelay.textContent = e.message;
      noRelay.hidden = false;
    }
    badge.textContent = 'updated ' + new Date().toLocaleTimeString();
    badge.className = 'live';
  } catch (e) {
    badge.textContent = e.message;
    badge.className = 'live off';
  }
}
api('/api/v1/whoami').then((w) => { document.getElementById('who').textContent = w.operator; });
refresh();
setInterval(refresh, 2000);
