// Fleet: every approved worker, connected or not, with what it can run and what it holds now.
import {badge, formatAgo, formatClock, formatTime, h, markRead, replace, updateList} from './dom.js';

// Engines as the worker's supported models name them: "sd-cpp:*" is the sd-cpp engine, the
// synthetic ids the synthetic one (reference-worker.md §1.5).
function enginesOf(capabilities) {
  const engines = new Set();
  for (const id of capabilities?.supportedModels || []) {
    if (id.endsWith(':*'))
      engines.add(id.slice(0, -2));
    else if (id === 'synthetic' || id.startsWith('synthetic-'))
      engines.add('synthetic');
  }
  return [...engines].sort();
}

function gb(value) {
  return typeof value === 'number' ? `${value.toFixed(value >= 10 ? 0 : 1)} GB` : '—';
}

const ARMED_MS = 10000;  // a pressed Delete waits this long for its confirmation

export function createFleetView({api, notify}) {
  const status = h('p', {class: 'muted'}, 'Loading…');
  const body = h('tbody');
  const tableWrap = h('div', {class: 'table-wrap'},
          h('table', {class: 'table', 'aria-label': 'Workers'},
            h('thead', {},
              h('tr', {},
                [
                  'Worker', 'State', 'Since', 'Runs', 'VRAM total / per job', 'Paused',
                  'Current job', 'Last heartbeat', 'Outbox', ''
                ].map((t) => h('th', {scope: 'col'}, t)))),
            body));
  const el =
      h('section', {class: 'view'},
        h('div', {class: 'view-head'}, h('h1', {}, 'Fleet'),
          h('button', {type: 'button', onclick: () => refresh()}, 'Refresh')),
        status, tableWrap);
  let workers = [];
  let error = null;   // why the last read failed; null once one succeeds
  let readAt = null;  // when the rows shown were read
  let armed = null;   // the worker whose Delete was pressed once
  let disarm = null;  // its timer
  let timer = null;
  let reading = 0;    // the latest read: an older one answering late is dropped

  async function refresh() {
    const mine = ++reading;
    try {
      const answer = await api.get('/api/v1/workers');
      if (mine !== reading) return;
      workers = answer.workers;
      error = null;
      readAt = new Date().toISOString();
      render();
      markRead(el);
    } catch (failure) {
      if (mine !== reading) return;
      // Kept until a read succeeds; the rows stay, marked as old.
      error = failure.message;
      render();
    }
  }

  function render() {
    if (error) {
      status.className = 'error';
      status.textContent = `Could not read the workers: ${error}` +
          (readAt ? ` The rows below are as read at ${formatClock(readAt)}.` : '');
    } else {
      status.className = 'muted';
      const connected = workers.filter((w) => w.connected).length;
      status.textContent = `${workers.length} worker(s), ${connected} connected.`;
    }
    tableWrap.classList.toggle('stale', Boolean(error));
    updateList(body, workers, (w) => w.id, row);
    if (workers.length === 0 && !error) {
      replace(
          body,
          h('tr', {},
            h('td', {colspan: 10, class: 'muted'},
              'No approved worker yet. Start one with `studio-worker register --api-base-url <this ' +
                  'studio>`; it appears under Approvals.')));
    }
  }

  function row(w) {
    const c = w.capabilities || {};
    const name = c.machineName || w.id;
    const kinds = (c.taskKinds || []).join(', ') || '—';
    const engines = enginesOf(c).join(', ') || '—';
    const jobs = w.jobIds && w.jobIds.length ? w.jobIds : (w.currentJobId ? [w.currentJobId] : []);
    const id = w.id;
    // The row is kept across reads (focus stays on it): its listeners use the id alone.
    const deleteButton =
        h('button', {
          type: 'button',
          class: armed === id ? 'danger' : '',
          'aria-label': armed === id ? `Confirm delete worker ${name} (${id})` :
                                       `Delete worker ${name} (${id})`,
          onkeydown: (e) => {
            if (e.key === 'Escape' && armed === id) setArmed(null);
          },
          onclick: async () => {
            if (armed !== id) {
              setArmed(id);
              return;
            }
            setArmed(null);
            try {
              await api.json('DELETE', `/api/v1/workers/${encodeURIComponent(id)}`);
              notify(`Worker ${name} (${id}) deleted; it must register again to return.`);
            } catch (failure) {
              notify(`Could not delete ${name} (${id}): ${failure.message}`, 'error');
            }
            refresh();
          },
        },
          armed === id ? 'Confirm delete' : 'Delete');
    return h(
        'tr', {dataset: {worker: w.id}},
        h('td', {}, h('strong', {class: 'name'}, name), h('div', {class: 'muted small'}, w.id),
          c.agentVersion ? h('div', {class: 'muted small'}, `v${c.agentVersion}`) : null),
        h('td', {}, badge(w.connected ? 'connected' : 'offline')),
        h('td', {title: formatTime(w.connected ? w.connectedAt : w.lastSeenAt)},
          w.connected ? formatAgo(w.connectedAt) :
                        (w.lastSeenAt ? `seen ${formatAgo(w.lastSeenAt)}` : '—')),
        h('td', {}, h('div', {}, kinds), h('div', {class: 'muted small'}, engines)),
        h('td', {}, `${gb(c.vramTotalGb)} / ${gb(c.vramThresholdGb)}`),
        h('td', {}, c.autoEnabled === false ? badge('paused') : 'no'),
        h('td', {},
          jobs.length ? jobs.map(
                            (id) =>
                                h('div', {},
                                  // A plain link: a kept row's listener would name an old job.
                                  h('a', {href: `#jobs/${encodeURIComponent(id)}`}, id))) :
                        '—'),
        h('td', {title: formatTime(w.lastHeartbeatAt)},
          w.connected ? formatAgo(w.lastHeartbeatAt) : '—'),
        // The wire protocol carries no outbox size: shown when a worker reports one.
        h('td', {title: 'results waiting in the worker\'s outbox, when it reports them'},
          c.outboxBacklog ?? '—'),
        h('td', {}, deleteButton));
  }

  // One Delete armed at a time, for ARMED_MS.
  function setArmed(id) {
    armed = id;
    clearTimeout(disarm);
    if (id) disarm = setTimeout(() => setArmed(null), ARMED_MS);
    render();
  }

  return {
    el,
    refresh,
    // Heartbeats and pause/resume send no event: the view reads the fleet again every 5 s.
    tick: () => {
      if (!el.hidden) refresh();
    },
    onEvent(name) {
      if (el.hidden || (name !== 'worker' && name !== 'job')) return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    },
    dispose: () => {
      clearTimeout(timer);
      clearTimeout(disarm);
    },
  };
}
