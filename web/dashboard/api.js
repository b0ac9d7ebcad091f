// The studio's HTTP API as the dashboard uses it. The key lives in sessionStorage (gone when the
// tab closes) and travels only as an Authorization header: the studio sets no cookie, so no
// cross-site request can act with it.

const KEY_STORAGE = 'studio.dashboard.key';

// An API error: HTTP status, the studio's error code and message; `field` is the request field the
// message names ("vramGbEstimate: must be between 0 and 4096" names vramGbEstimate).
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    const named = /^([A-Za-z_][\w.[\]]*):\s/.exec(this.message);
    this.field = named ? named[1] : null;
  }
}

export class Api {
  constructor() { this.key = sessionStorage.getItem(KEY_STORAGE); }

  signIn(key) {
    this.key = key;
    sessionStorage.setItem(KEY_STORAGE, key);
  }

  signOut() {
    this.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
  }

  headers(extra = {}) { return {...extra, Authorization: `Bearer ${this.key}`}; }

  // The JSON answer of `method path`, or an ApiError.
  async json(method, path, body) {
    const init = {method, headers: this.headers(), cache: 'no-store'};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let value;
    try {
      value = text ? JSON.parse(text) : null;
    } catch {
      value = undefined;  // not JSON: a proxy's HTML page, say
    }
    if (!response.ok) {
      if (response.status === 401) this.onUnauthorized?.();
      // The studio's own errors are JSON; anything else is named by its status, never shown raw.
      const studio = value && typeof value === 'object' ? value : {};
      throw new ApiError(response.status, studio.error,
                         studio.message || `HTTP ${response.status} ${response.statusText}`.trim());
    }
    if (text && (value === null || typeof value !== 'object')) {
      throw new ApiError(response.status, 'bad_answer',
                         `the answer to ${method} ${path.split('?')[0]} is not the studio's JSON ` +
                             `(${response.headers.get('Content-Type') || 'no content type'})`);
    }
    return value;
  }

  get(path) { return this.json('GET', path); }
  post(path, body = {}) { return this.json('POST', path, body); }

  // A result's bytes as a Blob (for an object URL: images, audio and video are fetched with the
  // bearer, since an <img src> cannot send one).
  async blob(path) {
    const response = await fetch(path, {headers: this.headers(), cache: 'no-store'});
    if (response.status === 401) this.onUnauthorized?.();
    if (!response.ok) throw new ApiError(response.status, 'http', `HTTP ${response.status}`);
    return response.blob();
  }

  // Prometheus text from /metrics.
  async metricsText() {
    const response = await fetch('/metrics', {cache: 'no-store'});
    if (!response.ok) throw new ApiError(response.status, 'http', `HTTP ${response.status}`);
    return response.text();
  }

  // Follows GET /api/v1/events until `signal` aborts: calls onEvent(name, data) for each event
  // and onState('live' | 'reconnecting' | 'refused', detail). EventSource cannot send a bearer
  // header, so this reads the stream with fetch, resuming with Last-Event-ID after a drop.
  async follow(onEvent, onState, signal) {
    let lastId = null;
    let delay = 1000;
    while (!signal.aborted) {
      try {
        const headers = this.headers({Accept: 'text/event-stream'});
        if (lastId) headers['Last-Event-ID'] = lastId;
        const response = await fetch('/api/v1/events', {headers, signal, cache: 'no-store'});
        if (response.status === 401 || response.status === 403) {
          onState('refused', `the event stream answered ${response.status}`);
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        onState('live');
        delay = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = parseEvent(block);
            if (event.id) lastId = event.id;
            if (event.data !== null) onEvent(event.name, event.data);
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        onState('reconnecting', String(error.message || error));
      }
      if (signal.aborted) return;
      onState('reconnecting', `retrying in ${delay / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }
}

// One SSE block (WHATWG HTML "event stream interpretation"): event name, data lines joined by
// "\n" and parsed as JSON where they are JSON; comments (": keep-alive") give data null.
function parseEvent(block) {
  let name = 'message';
  let id = null;
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event')
      name = value;
    else if (field === 'data')
      data.push(value);
    else if (field === 'id')
      id = value;
  }
  if (data.length === 0) return {name, id, data: null};
  const text = data.join('\n');
  try {
    return {name, id, data: JSON.parse(text)};
  } catch {
    return {name, id, data: text};
  }
}
