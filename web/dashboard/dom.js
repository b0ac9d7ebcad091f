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
  return h('span', {class: `badge badge-${String(word).replace(/[^a-z_]/g, '')}`}, word);
}
