// Queue and jobs: submit, filter, follow live, and look at one job: its attempts, why it waits,
// its task and its result as what it is (image, audio, video, chat text, transcript).
import {
  badge, formatAgo, formatBytes, formatClock, formatTime, h, markRead, morph, replace, updateList
} from './dom.js';

const STATUSES = ['queued', 'claimed', 'done', 'failed', 'cancelled'];
const KINDS = ['image', 'llm', 'audio_tts', 'audio_stt', 'video'];
const PAGE = 50;
const KEEP_EVENTS = 1000;  // far more than can cross one read

// "job-…85674fcbffe3": the random tail of a studio id (the full id is the cell's title).
function shortId(id) {
  if (!id) return '—';
  const dash = id.indexOf('-');
  return id.length > 20 && dash > 0 ? `${id.slice(0, dash)}-…${id.slice(-12)}` : id;
}

// The scheduler's words without their own "waiting: " prefix (the page says "Waiting").
function waitingText(text) {
  return String(text).replace(/^waiting:\s*/i, '');
}

// The text of an llm result (OpenAI's chat.completion shape) or a transcript ({text}).
function resultText(kind, value) {
  if (kind === 'llm') {
    const message = value?.choices?.[0]?.message;
    if (typeof message?.content === 'string') return message.content;
  }
  if (typeof value?.text === 'string') return value.text;
  return null;
}

export function createJobsView({api, notify, go}) {
  // ---- the new-job form ----
  const modelSelect = h('select', {id: 'job-model', name: 'model', required: true});
  const fields = h('div', {class: 'fields'});
  const formError = h('p', {class: 'error', role: 'alert'});
  const form =
      h('form', {class: 'card', id: 'new-job', onsubmit: submit}, h('h2', {}, 'New job'),
        h('div', {class: 'field'},
          h('label',
            {for: 'job-model'
            },
            'Model'),
          modelSelect),
        fields, h('button', {type: 'submit', class: 'primary'}, 'Submit'), formError);
  modelSelect.addEventListener('change', () => {
    formError.textContent = '';
    renderFields();
  });
  // On a phone the form is below the list: this takes a keyboard or a thumb to it.
  const toForm = h('button', {type: 'button', onclick: () => {
    form.scrollIntoView({block: 'start'});
    modelSelect.focus({preventScroll: true});
  }}, 'New job');

  // ---- filters and list ----
  const option = (value, label = value) => h('option', {value}, label);
  const statusFilter =
      h('select', {id: 'filter-status', 'aria-label': 'Status'}, option('', 'any status'),
        STATUSES.map((s) => option(s)));
  const kindFilter =
      h('select', {id: 'filter-kind', 'aria-label': 'Kind'}, option('', 'any kind'),
        KINDS.map((k) => option(k)));
  const modelFilter =
      h('select', {id: 'filter-model', 'aria-label': 'Model'}, option('', 'any model'));
  for (const select of [statusFilter, kindFilter, modelFilter]) {
    select.addEventListener('change', () => load());
  }
  const listStatus = h('p', {class: 'muted'});
  const rows = h('tbody');
  const tableWrap = h('div', {class: 'table-wrap'},
              h('table', {class: 'table', 'aria-label': 'Jobs'},
                h('thead', {},
                  h('tr', {},
                    ['Job', 'Kind', 'Model', 'Status', 'Attempts']
                        .map((t) => h('th', {scope: 'col'}, t)),
                    ['Created', 'Worker'].map(
                        (t) => h('th', {scope: 'col', class: 'hide-narrow'}, t)))),
                rows));
  const more = h('button', {type: 'button', hidden: true, onclick: () => load(true)}, 'Older jobs');
  // Not a live region whole (it would be read out in full at each change): its status line is.
  const detail = h('section', {class: 'card detail', id: 'job-detail', hidden: true});

  const el =
      h('section', {class: 'view', onkeydown: closeOnEscape},
        h('div', {class: 'view-head'}, h('h1', {}, 'Queue and jobs'), toForm),
        h('div', {class: 'split'},
          h('div', {class: 'split-main'},
            h('div', {class: 'filters'}, statusFilter, kindFilter, modelFilter,
              h('button', {type: 'button', onclick: () => refresh()}, 'Refresh')),
            listStatus, tableWrap, more),
          h('div', {class: 'split-side'}, detail, form)));

  let models = [];
  let jobs = [];
  let olderShown = false;  // pages past the first were read: the periodic read leaves them be
  let listError = null;    // why the last list read failed; null once one succeeds
  let readAt = null;       // when the list shown was read
  let queuedInAll = null;  // GET /api/v1/stats: every queued job, not only those shown
  let shown = null;        // the job id whose detail is open
  let shownStale = false;  // a job event named it since it was last read
  let objectUrl = null;    // the blob: URL of the preview shown
  let timer = null;
  let fieldsKind = null;   // the kind the form's fields are for (undefined: no model)
  // Reads and events cross: a read answers with what the studio had when it was asked, and the
  // job events that came meanwhile are newer. Each event gets a number; a read keeps the number
  // it started at and lays the events that came after it over its answer. Of reads that overlap,
  // only the latest started is shown.
  let eventCount = 0;
  const lastEvent = new Map();  // job id -> {n, data}: its latest event (the last KEEP_EVENTS jobs)
  let listRead = 0;
  let detailRead = 0;
  // Escape closes an open job (outside the form, where it belongs to the field).
  function closeOnEscape(e) {
    if (e.key === 'Escape' && shown && !e.target.closest('form')) go('#jobs');
  }

  // What a job event says, put on a job as read.
  function applyEvent(job, data) {
    Object.assign(job, {status: data.status, attempts: data.attempts, workerId: data.workerId});
    if ('error' in data) job.error = data.error;
    if (data.status !== 'queued') delete job.waiting;
  }

  // `job` as read by a read that started at event number `since`, with the events since.
  function newest(job, since) {
    const event = lastEvent.get(job.id);
    if (event && event.n > since) applyEvent(job, event.data);
    return job;
  }

  const pendingNew = new Set();  // ids of jobs created since the list was read

  // Whether a job (event or view) passes the filters shown.
  function matches(job) {
    return (!statusFilter.value || job.status === statusFilter.value) &&
      (!kindFilter.value || job.kind === kindFilter.value) &&
      (!modelFilter.value || job.model === modelFilter.value);
  }

  // The models to choose from, read again with the list (a model added or disabled elsewhere
  // sends no event). Options are kept by id, so a choice being made stays.
  async function loadModels() {
    try {
      ({models} = await api.get('/api/v1/models'));
    } catch (error) {
      formError.textContent = `Could not read the models: ${error.message}`;
      return;
    }
    const enabled = models.filter((m) => m.enabled);
    updateList(modelSelect, enabled, (m) => m.id,
               (m) => option(m.id, `${m.displayName || m.id} (${m.kind})`));
    const filtered = modelFilter.value;
    updateList(modelFilter, [{id: ''}, ...models], (m) => m.id,
               (m) => (m.id ? option(m.id) : option('', 'any model')));
    modelFilter.value = filtered;
    renderFields();
  }

  function currentKind() { return models.find((m) => m.id === modelSelect.value)?.kind; }

  function input(name, label, attrs = {}) {
    const id = `job-${name}`;
    const control = attrs.multiline ? h('textarea', {id, name, rows: 3, required: attrs.required}) :
                                      h('input', {
                                        id,
                                        name,
                                        type: attrs.type || 'text',
                                        value: attrs.value,
                                        min: attrs.min,
                                        max: attrs.max,
                                        required: attrs.required,
                                        accept: attrs.accept
                                      });
    return h('div', {class: 'field'}, h('label', {for: id
             }, label), control);
  }

  // The fields for the chosen model's kind; what was typed stays while the kind does.
  function renderFields() {
    const kind = currentKind();
    if (kind === fieldsKind) return;
    fieldsKind = kind;
    const parts = [];
    if (kind === 'image' || kind === 'video') {
      parts.push(input('prompt', 'Prompt', {multiline: true, required: true}));
      if (kind === 'image') {
        parts.push(
            h('div', {class: 'row'},
              input('width', 'Width', {type: 'number', value: 512, min: 64, max: 2048}),
              input('height', 'Height', {type: 'number', value: 512, min: 64, max: 2048}),
              input('steps', 'Steps', {type: 'number', value: 20, min: 1, max: 150})));
      }
    } else if (kind === 'llm') {
      parts.push(input('prompt', 'Message', {multiline: true, required: true}));
      parts.push(
          input('maxTokens', 'Max tokens', {type: 'number', value: 256, min: 1, max: 32768}));
    } else if (kind === 'audio_tts') {
      parts.push(input('text', 'Text to speak', {multiline: true, required: true}));
    } else if (kind === 'audio_stt') {
      parts.push(input('file', 'Audio file', {type: 'file', accept: 'audio/*', required: true}));
    } else {
      parts.push(h('p', {class: 'muted'}, 'Add and enable a model first (Models).'));
    }
    replace(fields, parts);
  }

  async function taskFromForm(kind) {
    const value = (name) => form.elements[name]?.value;
    // An empty or unreadable number field is an error, not 0 (a number input reads '' then).
    const number = (name) => {
      const text = value(name);
      if (text === '' || !Number.isFinite(Number(text))) {
        throw new Error(`${form.elements[name].labels[0].textContent}: enter a number`);
      }
      return Number(text);
    };
    // Text that is only spaces is no prompt.
    const text = (name) => {
      const typed = value(name);
      if (!typed || !typed.trim()) {
        throw new Error(`${form.elements[name].labels[0].textContent}: write something`);
      }
      return typed;
    };
    switch (kind) {
      case 'image':
        return {
          kind,
          prompt: text('prompt'),
          width: number('width'),
          height: number('height'),
          steps: number('steps')
        };
      case 'video': return {kind, prompt: text('prompt')};
      case 'llm':
        return {
          kind,
          messages: [{role: 'user', content: text('prompt')}],
          maxTokens: number('maxTokens')
        };
      case 'audio_tts': return {kind, text: text('text')};
      case 'audio_stt': {
        const file = form.elements.file.files[0];
        const target = `/api/v1/uploads?filename=${encodeURIComponent(file.name)}`;
        const response = await fetch(target, {
          method: 'POST',
          headers: api.headers({'Content-Type': file.type || 'application/octet-stream'}),
          body: file
        });
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) throw new Error(`upload: ${answer.message || response.status}`);
        return {kind, inputUrl: answer.url};
      }
      default: throw new Error('model: choose a model');
    }
  }

  async function submit(event) {
    event.preventDefault();
    formError.textContent = '';
    try {
      const task = await taskFromForm(currentKind());
      const job = await api.post('/api/v1/jobs', {model: modelSelect.value, task});
      notify(`Job ${job.id} submitted.`);
      go(`#jobs/${job.id}`);
      load();
    } catch (error) {
      formError.textContent = error.message;
    }
  }

  async function load(older = false) {
    const query = new URLSearchParams({limit: String(PAGE)});
    if (statusFilter.value) query.set('status', statusFilter.value);
    if (kindFilter.value) query.set('kind', kindFilter.value);
    if (modelFilter.value) query.set('model', modelFilter.value);
    if (older && jobs.length) query.set('before', jobs[jobs.length - 1].id);
    const mine = ++listRead;
    const since = eventCount;
    try {
      const [answer] = await Promise.all([api.get(`/api/v1/jobs?${query}`), loadQueued()]);
      if (mine !== listRead) return;  // a later read (another filter, say) is what counts
      const read = answer.jobs.map((job) => newest(job, since)).filter(matches);
      jobs = older ? jobs.concat(read) : read;
      olderShown = older;
      more.hidden = answer.jobs.length < PAGE;
      listError = null;
      readAt = new Date().toISOString();
      renderList();
      markRead(el);
    } catch (error) {
      if (mine !== listRead) return;
      listError = error.message;
      renderList();
    }
  }

  // How many jobs are queued in all (the list shows one page of them).
  async function loadQueued() {
    try {
      queuedInAll = (await api.get('/api/v1/stats')).jobs.queued;
    } catch {
      queuedInAll = null;  // the list says what it shows, without the total
    }
  }

  function renderList() {
    if (listError) {
      listStatus.className = 'error';
      listStatus.textContent = `Could not read the jobs: ${listError}` +
          (readAt ? ` The rows below are as read at ${formatClock(readAt)}, with the live ` +
                        'changes since.' : '');
    } else {
      listStatus.className = 'muted';
      listStatus.textContent = `${jobs.length} job(s) shown` +
          (queuedInAll === null ? '.' : `; ${queuedInAll} queued in all.`);
    }
    tableWrap.classList.toggle('stale', Boolean(listError));
    updateList(rows, jobs, (job) => job.id, jobRow);
    if (jobs.length === 0) {
      replace(rows, h('tr', {}, h('td', {colspan: 7, class: 'muted'}, 'No job matches.')));
    }
  }

  function jobRow(job) {
    const open = () => go(`#jobs/${job.id}`);
    return h('tr', {
      class: job.id === shown ? 'selected' : '',
      dataset: {job: job.id},
      onclick: (e) => { if (!e.target.closest('a')) open(); },
    },
    // The link is the row's one keyboard stop (Enter opens it); the whole row takes a click.
    h('td', {class: 'mono'}, h('a', {href: `#jobs/${encodeURIComponent(job.id)}`, title: job.id,
      'aria-label': `Job ${job.id}, ${job.status}`}, shortId(job.id))),
    h('td', {}, job.kind),
    h('td', {}, job.model),
    h('td', {}, badge(job.status),
      job.waiting ? h('div', {class: 'muted small'}, waitingText(job.waiting)) : null),
    h('td', {}, `${job.attempts}/${job.maxAttempts}`),
    h('td', {class: 'hide-narrow', title: formatTime(job.createdAt)}, formatAgo(job.createdAt)),
    h('td', {class: 'mono hide-narrow', title: job.workerId || ''}, shortId(job.workerId)));
  }

  async function refresh() {
    await Promise.all([loadModels(), load()]);
    if (shown) showJob(shown);
  }

  async function showJob(id, reveal = false) {
    shown = id;
    shownStale = false;
    detail.hidden = false;
    const mine = ++detailRead;
    const since = eventCount;
    let job;
    try {
      job = await api.get(`/api/v1/jobs/${encodeURIComponent(id)}`);
    } catch (error) {
      if (mine !== detailRead) return;
      replace(detail, h('p', {class: 'error'}, `Job ${id}: ${error.message}`));
      return;
    }
    // Only the latest read of the open job is shown: an earlier one may answer last.
    if (shown !== id || mine !== detailRead) return;
    for (const row of rows.querySelectorAll('tr')) {
      row.classList.toggle('selected', row.dataset.job === id);
    }
    const active = job.status === 'queued' || job.status === 'claimed';
    const ended = job.status === 'failed' || job.status === 'cancelled';
    // data-keep: a result already shown for this job is not fetched and drawn again.
    const preview = h('div', {class: 'preview', id: 'job-preview', dataset: {keep: job.id}});
    const fresh = h(
        'section', {class: 'card detail', id: 'job-detail'},
        h('div', {class: 'view-head'}, h('h2', {class: 'mono', tabindex: -1}, job.id),
          h('button', {type: 'button', 'aria-label': 'Close the job', onclick: () => go('#jobs')},
            '×')),
        h('p', {role: 'status', 'aria-live': 'polite'}, badge(job.status),
          ` ${job.kind} · ${job.model} · priority ${job.priority}`),
        job.waiting ? h('p', {class: 'waiting'}, h('strong', {}, 'Waiting: '), waitingText(job.waiting))
        : null,
        // The error is the job's own only once it ended; before, it is an earlier attempt's.
        job.error && ended ? h('p', {class: 'error'}, job.error) : null,
        job.error && !ended ?
            h('p', {class: 'muted'}, h('strong', {}, 'Earlier attempt: '), job.error) : null,
        h('dl', {class: 'facts'}, h('dt', {}, 'Created'), h('dd', {}, formatTime(job.createdAt)),
          h('dt', {}, 'Claimed'), h('dd', {}, formatTime(job.claimedAt)), h('dt', {}, 'Finished'),
          h('dd', {}, formatTime(job.finishedAt)), h('dt', {}, 'Worker'),
          h('dd', {class: 'mono'}, job.workerId || '—'), h('dt', {}, 'Attempts'),
          h('dd', {}, `${job.attempts} of ${job.maxAttempts}`)),
        active ?
            h('button',
              {type: 'button', class: 'danger', id: 'cancel-job', onclick: () => cancel(job.id)},
              'Cancel job') :
            null,
        h('h3', {}, 'Attempts'),
        job.attemptHistory.length ?
            h('div', {class: 'table-wrap'},
              h('table', {class: 'table'},
                h('thead', {},
                  h('tr', {},
                    ['Worker', 'Outcome', 'Offered', 'Ended', 'Reason'].map(
                        (t) => h('th', {scope: 'col'}, t)))),
                h('tbody', {},
                  job.attemptHistory.map(
                      (a) =>
                          h('tr', {},
                            h('td', {class: 'mono', title: a.workerId}, shortId(a.workerId)),
                            h('td', {}, badge(a.outcome)),
                            h('td', {title: formatTime(a.offeredAt)}, formatClock(a.offeredAt)),
                            h('td', {title: formatTime(a.endedAt)}, formatClock(a.endedAt)),
                            h('td', {}, a.reason || '—')))))) :
            h('p', {class: 'muted'}, 'Not offered yet.'),
        job.status === 'done' ? [h('h3', {}, 'Result'), preview] : null,
        h('details', {}, h('summary', {}, 'Task'),
          h('pre', {class: 'code'}, JSON.stringify(job.task, null, 2))));
    const hadResult = detail.querySelector('#job-preview')?.dataset.keep === job.id;
    // Updated in place: focus (Cancel, ×) and an open Task stay.
    const detailsOpen = detail.querySelector('details')?.open;
    morph(detail, fresh);
    if (detailsOpen) detail.querySelector('details')?.setAttribute('open', '');
    if (job.status === 'done' && !hadResult) {
      renderResult(job, detail.querySelector('#job-preview'));
    }
    if (reveal && mine === detailRead) {
      // Opened from a row far down the list (or on a phone, below it): bring it into view.
      const box = detail.getBoundingClientRect();
      if (box.top < 0 || box.top > window.innerHeight - 80) {
        detail.scrollIntoView({block: 'start'});
      }
      detail.querySelector('h2')?.focus({preventScroll: true});
    }
    // An event for it came while it was read: what is shown may be older than that.
    const event = lastEvent.get(id);
    if (event && event.n > since) showJob(id);
  }

  async function renderResult(job, preview) {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = null;
    const result = job.result || {};
    if ('json' in result) {
      const text = resultText(job.kind, result.json);
      replace(
          preview,
          text !== null ? h('div', {class: job.kind === 'llm' ? 'chat' : 'transcript'}, text) :
                          h('pre', {class: 'code'}, JSON.stringify(result.json, null, 2)));
      return;
    }
    const type = result.contentType || '';
    replace(preview, h('p', {class: 'muted'}, `Loading ${formatBytes(result.bytes)}…`));
    let blob;
    try {
      blob = await api.blob(result.url);
    } catch (error) {
      replace(preview, h('p', {class: 'error'}, `Could not fetch the result: ${error.message}`));
      return;
    }
    if (shown !== job.id) return;
    objectUrl = URL.createObjectURL(blob);
    const caption =
        h('p', {class: 'muted small'}, `${type}, ${formatBytes(result.bytes)}, sha256 `,
          h('span', {class: 'mono'}, String(result.sha256 || '').slice(0, 16)), '…');
    const save =
        h('a', {href: objectUrl, download: `${job.id}.${result.ext || 'bin'}`}, 'Download');
    let media;
    if (type.startsWith('image/')) {
      media = h('img', {src: objectUrl, alt: `Result of ${job.id}`, class: 'result-image'});
    } else if (type.startsWith('audio/')) {
      media = h('audio', {src: objectUrl, controls: true});
    } else if (type.startsWith('video/')) {
      media =
          h('video', {src: objectUrl, controls: true, loop: true, muted: true, playsinline: true});
    } else {
      media = h('p', {}, 'No preview for this type.');
    }
    replace(preview, media, caption, save);
  }

  async function cancel(id) {
    try {
      const job = await api.post(`/api/v1/jobs/${encodeURIComponent(id)}/cancel`, {});
      notify(`Job ${id} is ${job.status}.`);
    } catch (error) {
      notify(`Could not cancel ${id}: ${error.message}`, 'error');
    }
    refresh();
  }

  return {
    el,
    refresh,
    show([id]) {
      if (id) {
        showJob(id, true);
      } else {
        const closed = shown;
        // Closed from inside (Escape, ×): focus goes back to the job's row, not to the page.
        const focusWasHere = detail.contains(document.activeElement) ||
            document.activeElement === document.body;
        shown = null;
        ++detailRead;  // a read still in flight is not shown
        detail.hidden = true;
        replace(detail);
        if (objectUrl) URL.revokeObjectURL(objectUrl);
        objectUrl = null;
        for (const row of rows.querySelectorAll('tr.selected')) row.classList.remove('selected');
        if (closed && focusWasHere) {
          const row = [...rows.children].find((r) => r.dataset.job === closed);
          row?.querySelector('a')?.focus();
        }
      }
    },
    // Read again every 5 s while shown: the waiting reasons, the queue's size and the models
    // change without an event. Older pages, once read, are only kept current by events.
    tick: () => {
      if (el.hidden) return;
      loadModels();
      if (olderShown)
        renderList();
      else
        load();
    },
    onEvent(name, data) {
      if (name !== 'job') return;
      // Numbered even while hidden: a read in flight must know what came after it.
      lastEvent.delete(data.id);  // re-inserted last: the map is oldest first
      lastEvent.set(data.id, {n: ++eventCount, data});
      if (lastEvent.size > KEEP_EVENTS) lastEvent.delete(lastEvent.keys().next().value);
      if (data.id === shown) shownStale = true;
      if (el.hidden) return;
      const row = jobs.find((j) => j.id === data.id);
      if (row) applyEvent(row, data);
      if (row) {
        // A job shown that stops matching the status filter leaves the list.
        if (statusFilter.value && row.status !== statusFilter.value) {
          jobs = jobs.filter((j) => j !== row);
        }
      } else if (matches(data)) {
        pendingNew.add(data.id);
      }
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const fresh = [...pendingNew];
        pendingNew.clear();
        // New jobs go on top; the older pages already read stay where they are.
        for (const id of fresh) {  // oldest first: the newest ends on top
          if (jobs.some((j) => j.id === id)) continue;
          const since = eventCount;
          try {
            const job = newest(await api.get(`/api/v1/jobs/${encodeURIComponent(id)}`), since);
            if (matches(job) && !jobs.some((j) => j.id === id)) jobs.unshift(job);
          } catch {
            // Gone meanwhile: nothing to show.
          }
        }
        await loadQueued();
        renderList();
        // Whichever event of the burst named the open job, not only the last one.
        if (shown && shownStale) showJob(shown);
      }, 150);
    },
    dispose() {
      clearTimeout(timer);
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    },
  };
}
