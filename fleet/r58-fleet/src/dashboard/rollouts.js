// The updates page: every rollout with a progress bar per wave, its devices' phases, and
// pause / resume / abort buttons; the published bundles. Polls the API every 2 s.
'use strict';
function bar(done, total) {
  const pct = total ? Math.round((100 * done) / total) : 100;
  return el('div', { class: 'bar', title: done + ' of ' + total }, [el('div', { class: 'fill', style: 'width:' + pct + '%' }, [])]);
}
async function steer(id, action) {
  try { await api('/api/v1/rollouts/' + encodeURIComponent(id) + '/' + action, { method: 'POST' }); }
  catch (e) { alert(action + ': ' + e.message); }
  refresh();
}
function rolloutCard(v) {
  const r = v.rollout;
  const card = el('section', { class: 'rollout', 'data-id': r.id, 'data-state': r.state }, [
    el('h3', {}, [r.id + ' → ' + r.version + ' ', el('span', { class: 'state ' + r.state }, [r.state])]),
    el('p', { class: 'muted' }, [r.message || ('wave ' + (r.wave + 1) + ' of ' + r.waves.length + ' (' + r.waves.join(', ') + ')')]),
  ]);
  const waves = Math.max(0, ...v.jobs.map((j) => j.wave + 1));
  for (let w = 0; w < waves; w++) {
    const jobs = v.jobs.filter((j) => j.wave === w);
    const done = jobs.filter((j) => ['succeeded', 'failed', 'skipped'].includes(j.phase)).length;
    const ok = jobs.filter((j) => j.phase === 'succeeded').length;
    card.append(el('div', { class: 'wave' }, ['wave ' + (w + 1), bar(done, jobs.length), done + '/' + jobs.length + ', ' + ok + ' succeeded']));
  }
  const rows = v.jobs.map((j) => el('tr', { class: 'phase-' + j.phase }, [
    el('td', {}, [el('a', { href: '/device/' + encodeURIComponent(j.device) }, [j.device])]),
    el('td', {}, [j.wave + 1]), el('td', {}, [j.phase]), el('td', {}, [j.progress + ' %']),
    el('td', {}, [j.reason]), el('td', {}, [j.details]), el('td', {}, [ago(j.updated_at)]),
  ]));
  card.append(el('table', { class: 'jobs' }, [
    el('thead', {}, [el('tr', {}, ['Device', 'Wave', 'Phase', 'Progress', 'Reason', 'Details', 'Updated'].map((h) => el('th', {}, [h])))]),
    el('tbody', {}, rows),
  ]));
  const actions = el('p', {}, []);
  for (const [action, states] of [['pause', ['running']], ['resume', ['paused', 'halted']], ['abort', ['running', 'paused', 'halted']]]) {
    if (states.includes(r.state)) {
      const b = el('button', { 'data-action': action }, [action]);
      b.onclick = () => steer(r.id, action);
      actions.append(b);
    }
  }
  card.append(actions);
  return card;
}
async function refresh() {
  try {
    const [ro, bu] = await Promise.all([api('/api/v1/rollouts'), api('/api/v1/bundles')]);
    const box = document.getElementById('rollouts');
    box.replaceChildren(...ro.rollouts.map(rolloutCard));
    document.getElementById('empty').hidden = ro.rollouts.length > 0;
    document.querySelector('#bundles tbody').replaceChildren(...bu.bundles.map((b) => el('tr', {}, [
      el('td', {}, [b.version]), el('td', {}, [b.compatible]), el('td', {}, [(b.size / 1048576).toFixed(1) + ' MiB']),
      el('td', {}, [b.signature_checked ? 'yes' : 'NO']), el('td', { class: 'mono' }, [b.sha256]),
    ])));
    document.getElementById('live').textContent = 'updated ' + new Date().toLocaleTimeString();
    document.getElementById('live').className = 'live';
  } catch (e) {
    document.getElementById('live').textContent = e.message;
    document.getElementById('live').className = 'live off';
  }
}
refresh();
setInterval(refresh, 2000);
