// Small DOM helpers: the dashboard builds its views with these, never with innerHTML, so text from
// the studio (worker names, prompts, errors) can never become markup.

// h('button', {class: 'x', onclick: f}, 'text', child, ...): an element. Attribute values of
// `false`, null or undefined are left out; `true` sets an empty attribute; `on*` functions become
// listeners; children may be strings, numbers, nodes, arrays or null.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name === 'style') {
      // Through the CSSOM: the Content-Security-Policy refuses style attributes.
      Object.assign(el.style, value);
    } else if (name === 'value' && 'value' in el) {
      el.value = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child))
      append(el, child);
    else
      el.append(child instanceof Node ? child : String(child));
  }
}

// Replaces every child of `el`.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// Makes `parent`'s children one element per item, built by build(item) and keyed by key(item).
// The element already shown for a key is kept and only what changed in it is updated (morph), so
// a refresh leaves focus, a text selection and what was typed where they were. Rows keep their
// order relative to each other: none is moved, only new ones inserted. Listeners stay the ones a
// kept element was built with: they must look up what they act on by id when they run.
export function updateList(parent, items, key, build) {
  const keys = new Set(items.map((item) => String(key(item))));
  const shown = new Map();
  for (const child of [...parent.children]) {
    if (child.dataset.key !== undefined && keys.has(child.dataset.key))
      shown.set(child.dataset.key, child);
    else
      child.remove();
  }
  let next = parent.firstElementChild;
  for (const item of items) {
    const k = String(key(item));
    const fresh = build(item);
    fresh.dataset.key = k;
    const old = shown.get(k);
    const node = old ? morph(old, fresh) : fresh;
    if (node === next)
      next = next.nextElementSibling;
    else
      parent.insertBefore(node, next);
  }
}

// Makes `old` look like `fresh` (a new build of the same thing) and returns what stands in its
// place: `old` itself whenever the tag is the same. Attributes and text are copied; a checkbox's
// state is the studio's; typed values are left alone. A child of another tag is replaced; an
// element whose data-keep equals the fresh one's keeps its children (a preview already loaded).
export function morph(old, fresh) {
  if (old.nodeType !== fresh.nodeType || old.nodeName !== fresh.nodeName) {
    old.replaceWith(fresh);
    return fresh;
  }
  if (old.nodeType !== Node.ELEMENT_NODE) {
    if (old.nodeValue !== fresh.nodeValue) old.nodeValue = fresh.nodeValue;
    return old;
  }
  for (const {name} of [...old.attributes]) {
    if (!fresh.hasAttribute(name)) old.removeAttribute(name);
  }
  for (const {name, value} of fresh.attributes) {
    if (old.getAttribute(name) === value) continue;
    // Through the CSSOM: the Content-Security-Policy refuses style attributes.
    if (name === 'style')
      old.style.cssText = fresh.style.cssText;
    else
      old.setAttribute(name, value);
  }
  if (old.type === 'checkbox' || old.type === 'radio') old.checked = fresh.checked;
  if (old.dataset.keep && old.dataset.keep === fresh.dataset.keep) return old;
  const before = [...old.childNodes];
  const after = [...fresh.childNodes];
  for (let i = 0; i < after.length; i++) {
    if (i < before.length)
      morph(before[i], after[i]);
    else
      old.append(after[i]);
  }
  for (const extra of before.slice(after.length)) extra.remove();
  return old;
}

// Counts a successful read of a view in its data-reads (what the browser test waits for).
export function markRead(view) {
  view.dataset.reads = String(Number(view.dataset.reads || 0) + 1);
}

// "2026-12-02 10:04:05" in the browser's time zone; '—' for nothing.
export function formatTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// "10:04:05" for a time today, else formatTime's date and time.
export function formatClock(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toDateString() === new Date().toDateString() ? formatTime(iso).slice(11) :
                                                          formatTime(iso);
}

// "5 s ago", "3 min ago", "2 h ago".
export function formatAgo(iso, now = Date.now()) {
  if (!iso) return '—';
  const seconds = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export function formatBytes(bytes) {
  if (bytes === undefined || bytes === null) return '—';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

// A status word as a coloured badge (app.css: .badge-<word>).
export function badge(word) {
  // nowrap (app.css): "connected" never breaks mid-word in a narrow column.
  return h('span', {class: `badge badge-${String(word).replace(/[^a-z_]/g, '')}`}, word);
}
