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

// Shown at the top of the main area for a moment: the answer to an action. The area is in the
// page from the start (index.html): a live region added with its first message is not read out.
export function notify(message, kind = 'info') {
  const bar = $('notice');
  bar.className = `notice notice-${kind}`;
  bar.textContent = message;
  clearTimeout(notify.timer);
  // An error stays until the next message; an answer that all went well goes after a while.
  if (kind !== 'error') notify.timer = setTimeout(notify.clear, 6000);
}
notify.clear = () => {
  clearTimeout(notify.timer);
  $('notice').textContent = '';
  $('notice').className = 'notice';
};

// Why `key` cannot be a key, or null. A bearer header takes only Latin-1, and a key pasted with
// a zero-width space or a non-breaking space fails in fetch with a message that names neither.
function keyProblem(key) {
  if (!key) return 'Enter the key.';
  for (let i = 0; i < key.length; i++) {
    const code = key.codePointAt(i);
    if (code < 0x21 || code > 0x7e) {
      const hex = code.toString(16).toUpperCase().padStart(4, '0');
      return `The key has a character no key has at position ${i + 1} (U+${hex}: invisible ` +
          'or not plain ASCII). Paste or type the key again.';
    }
  }
  return null;
}

function allowed(scope) { return state.who && SCOPE_RANK[state.who.scope] >= SCOPE_RANK[scope]; }

async function signIn(key) {
  const problem = keyProblem(key);
  if (problem) throw new Error(problem);
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
  const context = {api, notify, allowed, go, who: state.who};
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
    checkScope();
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

function onAuthLost(message = 'The studio no longer accepts this key. Sign in again.') {
  api.signOut();
  state.who = null;
  showSignIn(message);
}

// A key narrowed or widened meanwhile: the page follows at once, not at the next event (only
// then does the studio end a narrowed key's stream).
async function checkScope() {
  const before = state.who;
  let who;
  try {
    who = await api.get('/api/v1/whoami');
  } catch {
    return;  // a 401 signs out (api.onUnauthorized); anything else is told by the views
  }
  if (state.who !== before || !before || who.scope === before.scope) return;
  if (SCOPE_RANK[who.scope] < SCOPE_RANK.client) {
    onAuthLost(`This key's scope is now ${who.scope}: the dashboard needs a client key or the ` +
        'admin token.');
  } else {
    stop();  // the views this scope may see
    state.who = who;
    start();
  }
}

function onStreamState(kind, detail) {
  const live = $('live');
  if (kind === 'live') {
    live.textContent = '● live';
    live.className = 'live live-on';
    live.title = '';
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
  const [name, ...parts] = location.hash.replace(/^#/, '').split('/');
  let rest;
  try {
    rest = parts.map(decodeURIComponent);
  } catch {
    rest = [];  // "%E0%A4%A": not an address the page made
    notify(`The address ${location.hash} cannot be read (a broken %-escape).`, 'error');
  }
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
    if (rest.length === parts.length) notify.clear();  // an answer belongs to its view
    view.refresh?.();
  }
  view.show?.(rest);
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
