// Fleet: every approved worker, connected or not, with what it can run and what it holds now.
import {badge, formatAgo, formatTime, h, replace} from './dom.js';

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

export function createFleetView({api, notify, go}) {
  const status = h('p', {class: 'muted'}, 'Loading…');
  const body = h('tbody');
  const el =
      h('section', {class: 'view'},
        h('div', {class: 'view-head'}, h('h1', {}, 'Fleet'),
          h('button', {type: 'button', onclick: () => refresh()}, 'Refresh')),
        status,
        h('div', {class: 'table-wrap'},
          h('table', {class: 'table', 'aria-label': 'Workers'},
            h('thead', {},
              h('tr', {},
                [
                  'Worker', 'State', 'Since', 'Runs', 'VRAM total / per job', 'Paused',
                  'Current job', 'Last heartbeat', 'Outbox', ''
                ].map((t) => h('th', {scope: 'col'}, t)))),
            body)));
  let workers = [];
  let armed = null;  // the worker whose Delete was pressed once
  let timer = null;

  async function refresh() {
    try {
      ({workers} = await api.get('/api/v1/workers'));
      render();
    } catch (error) {
      status.textContent = `Could not read the workers: ${error.message}`;
      status.className = 'error';
    }
  }

  function render() {
    status.className = 'muted';
    const connected = workers.filter((w) => w.connected).length;
    status.textContent = `${workers.length} worker(s), ${connected} connected.`;
    replace(body, workers.map(row));
    if (workers.length === 0) {
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
    const deleteButton =
        h('button', {
          type: 'button',
          class: armed === w.id ? 'danger' : '',
          'aria-label': `Delete worker ${name}`,
          onclick: async () => {
            if (armed !== w.id) {
              armed = w.id;
              render();
              return;
            }
            armed = null;
            try {
              await api.json('DELETE', `/api/v1/workers/${encodeURIComponent(w.id)}`);
              notify(`Worker ${name} deleted; it must register again to return.`);
            } catch (error) {
              notify(`Could not delete ${name}: ${error.message}`, 'error');
            }
            refresh();
          },
        },
          armed === w.id ? 'Confirm delete' : 'Delete');
    return h(
        'tr', {dataset: {worker: w.id}},
        h('td', {}, h('strong', {}, name), h('div', {class: 'muted small'}, w.id),
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
                                  h('a', {
                                    href: `#jobs/${encodeURIComponent(id)}`,
                                    onclick: (e) => {
                                      e.preventDefault();
                                      go(`#jobs/${id}`);
                                    },
                                  },
                                    id))) :
                        '—'),
        h('td', {title: formatTime(w.lastHeartbeatAt)},
          w.connected ? formatAgo(w.lastHeartbeatAt) : '—'),
        // The wire protocol carries no outbox size: shown when a worker reports one.
        h('td', {title: 'results waiting in the worker\'s outbox, when it reports them'},
          c.outboxBacklog ?? '—'),
        h('td', {}, deleteButton));
  }

  return {
    el,
    refresh,
    tick: () => {
      if (!el.hidden) render();
    },
    onEvent(name) {
      if (el.hidden || (name !== 'worker' && name !== 'job')) return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    },
    dispose: () => clearTimeout(timer),
  };
}
