// The dashboard's shell: sign-in, the views, and the one event stream that keeps them live.
import {Api, ApiError} from './api.js';
import {createApprovalsView} from './approvals.js';
import {h} from './dom.js';
import {createFleetView} from './fleet.js';
import {createJobsView} from './jobs.js';
import {createMetricsView} from './metrics.js';
import {createModelsView} from './models.js';

const SCOPE_RANK = {
  inference: 0,
  client: 1,
  admin: 2
};
const VIEWS = {
  fleet: {create: createFleetView, scope: 'admin'},
  approvals: {create: createApprovalsView, scope: 'admin'},
  jobs: {create: createJobsView, scope: 'client'},
  models: {create: createModelsView, scope: 'client'},
  metrics: {create: createMetricsView, scope: 'client'},
};

const api = new Api();
const state = {
  who: null,
  views: {},
  current: null,
  stream: null,
  pending: 0
};
api.onUnauthorized = () => { if (state.who) onAuthLost(); };

function $(id) { return document.getElementById(id); }

// Shown at the top of the main area for a moment: the answer to an action.
export function notify(message, kind = 'info') {
  let bar = $('notice');
  if (!bar) {
    bar = h('div', {id: 'notice', role: 'status', 'aria-live': 'polite'});
    $('main').prepend(bar);
  }
  bar.className = `notice notice-${kind}`;
  bar.textContent = message;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => {
    bar.textContent = '';
    bar.className = 'notice';
  }, 6000);
}

function allowed(scope) { return state.who && SCOPE_RANK[state.who.scope] >= SCOPE_RANK[scope]; }

async function signIn(key) {
  api.signIn(key);
  let who;
  try {
    who = await api.get('/api/v1/whoami');
  } catch (error) {
    api.signOut();
    throw error instanceof ApiError && error.status === 401 ?
        new Error('The studio does not know this key.') :
        error;
  }
  if (SCOPE_RANK[who.scope] < SCOPE_RANK.client) {
    api.signOut();
    throw new Error(
        `This key's scope is ${who.scope}: the dashboard needs a client key or the ` +
        'admin token.');
  }
  state.who = who;
  start();
}

function showSignIn(message = '') {
  stop();
  $('sign-in').hidden = false;
  $('nav').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('live').textContent = '';
  $('sign-in-error').textContent = message;
  $('key').focus();
}

function start() {
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  $('sign-out').hidden = false;
  $('who').textContent = state.who.keyId ? `${state.who.name} (${state.who.scope})` : 'admin token';
  for (const link of document.querySelectorAll('#nav a')) {
    link.hidden = !allowed(link.dataset.scope);
  }
  const context = {api, notify, allowed, go, who: state.who, onAuthLost};
  for (const [name, view] of Object.entries(VIEWS)) {
    if (!allowed(view.scope)) continue;
    const instance = view.create(context);
    instance.el.hidden = true;
    instance.el.id = `view-${name}`;
    $('main').append(instance.el);
    state.views[name] = instance;
  }
  const controller = new AbortController();
  state.stream = controller;
  api.follow(onEvent, onStreamState, controller.signal);
  state.ticker = setInterval(() => {
    for (const view of Object.values(state.views)) view.tick?.();
    if (state.views.approvals) refreshPendingCount();
  }, 5000);
  if (state.views.approvals) refreshPendingCount();
  route();
  // Keyboard users start at the views.
  document.querySelector('#nav a:not([hidden])')?.focus();
}

function stop() {
  state.stream?.abort();
  state.stream = null;
  clearInterval(state.ticker);
  for (const view of Object.values(state.views)) {
    view.dispose?.();
    view.el.remove();
  }
  state.views = {};
  state.current = null;
}

function onAuthLost() {
  api.signOut();
  state.who = null;
  showSignIn('The studio no longer accepts this key. Sign in again.');
}

function onStreamState(kind, detail) {
  const live = $('live');
  if (kind === 'live') {
    live.textContent = '● live';
    live.className = 'live live-on';
    // Whatever happened while the stream was down: read again.
    for (const view of Object.values(state.views)) view.refresh?.();
  } else if (kind === 'refused') {
    live.textContent = 'not live';
    live.className = 'live live-off';
    live.title = detail || '';
    onAuthLost();
  } else {
    live.textContent = '○ reconnecting';
    live.className = 'live live-off';
    live.title = detail || '';
  }
}

function onEvent(name, data) {
  if (name === 'gap') {
    for (const view of Object.values(state.views)) view.refresh?.();
    return;
  }
  for (const view of Object.values(state.views)) view.onEvent?.(name, data);
  if (name === 'worker' && state.views.approvals) refreshPendingCount();
}

async function refreshPendingCount() {
  try {
    const {pending} = await api.get('/api/v1/workers/pending');
    const count = $('pending-count');
    count.hidden = pending.length === 0;
    count.textContent = String(pending.length);
  } catch {
    // The approvals view shows the error when it is opened.
  }
}

// #jobs, #jobs/<id>, #models/<id>: the view, then what it should show.
function route() {
  if (!state.who) return;
  const [name, ...rest] = location.hash.replace(/^#/, '').split('/');
  const fallback = allowed('admin') ? 'fleet' : 'jobs';
  // hasOwn: "#__proto__" or "#toString" name no view.
  const target = Object.hasOwn(state.views, name) ? name : fallback;
  for (const [viewName, view] of Object.entries(state.views)) {
    view.el.hidden = viewName !== target;
  }
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.view === target)
      link.setAttribute('aria-current', 'page');
    else
      link.removeAttribute('aria-current');
  }
  const view = state.views[target];
  if (state.current !== target) {
    state.current = target;
    const notice = $('notice');  // an action's answer belongs to the view it was taken in
    if (notice) { notice.textContent = ''; notice.className = 'notice'; }
    view.refresh?.();
  }
  view.show?.(rest.map(decodeURIComponent));
}

function go(hash) {
  if (location.hash === hash)
    route();
  else
    location.hash = hash;
}

window.addEventListener('hashchange', route);
window.addEventListener('unhandledrejection', (event) => {
  // An action's failure is told on the page, not left to the console.
  event.preventDefault();
  const error = event.reason;
  if (error instanceof ApiError && error.status === 401) {
    onAuthLost();
    return;
  }
  notify(String(error?.message || error), 'error');
});

document.addEventListener('DOMContentLoaded', () => {
  $('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = $('key').value.trim();
    $('sign-in-error').textContent = '';
    try {
      await signIn(key);
      $('key').value = '';
    } catch (error) {
      $('sign-in-error').textContent = String(error.message || error);
    }
  });
  $('sign-out').addEventListener('click', () => {
    api.signOut();
    state.who = null;
    showSignIn();
  });
  if (api.key) {
    signIn(api.key).catch((error) => showSignIn(String(error.message || error)));
  } else {
    showSignIn();
  }
});
