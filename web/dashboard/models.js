// Models: the studio's registry. List, add, edit, enable and disable. The studio validates every
// field (the same checks as the API, since the page only sends the API its request); an error
// that names a field marks that field.
import {formatClock, h, markRead, replace, updateList} from './dom.js';

const KINDS = ['image', 'llm', 'audio_tts', 'audio_stt', 'video'];
const ENGINES = ['synthetic', 'llama-cpp', 'sd-cpp', 'whisper-cpp', 'espeak-ng', 'onnx'];
const NEW_FILES = '[]';
const NEW_CLI = JSON.stringify({cfgScale: 0, steps: 0, width: 0, height: 0}, null, 2);

// An RFC 7386 merge patch that turns `before` into `after` (the studio's PATCH): only what the
// form changed is sent, so a field someone else changed meanwhile keeps their value.
function mergePatch(before, after) {
  const patch = {};
  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  for (const key of Object.keys(before)) {
    if (!(key in after)) patch[key] = null;
  }
  for (const [key, value] of Object.entries(after)) {
    if (isObject(value) && isObject(before[key])) {
      const inner = mergePatch(before[key], value);
      if (Object.keys(inner).length) patch[key] = inner;
    } else if (JSON.stringify(value) !== JSON.stringify(before[key])) {
      patch[key] = value;
    }
  }
  return patch;
}

export function createModelsView({api, notify, allowed}) {
  const editable = allowed('client');
  const rows = h('tbody');
  const status = h('p', {class: 'muted'}, 'Loading…');
  const control = (name, label, element) => {
    element.id = `model-${name}`;
    element.name = name;
    return h(
        'div', {class: 'field', dataset: {field: name}},
        h('label',
          {for: element.id
          },
          label),
        element, h('p', {class: 'field-error', id: `model-${name}-error`, role: 'alert'}));
  };
  const form =
      h('form', {class: 'card', id: 'model-form', novalidate: true, onsubmit: save},
        h('h2', {id: 'model-form-title'}, 'Add a model'),
        control('id', 'Id', h('input', {type: 'text', required: true, spellcheck: 'false'})),
        h('div', {class: 'row'},
          control('kind', 'Kind', h('select', {}, KINDS.map((k) => h('option', {value: k}, k)))),
          control(
              'engine', 'Engine', h('select', {}, ENGINES.map((e) => h('option', {value: e}, e))))),
        control('displayName', 'Display name', h('input', {type: 'text'})),
        control('vramGbEstimate', 'VRAM estimate (GB)', h('input', {type: 'number', step: 'any'})),
        control(
            'files', 'Files (JSON: role, url, filename, sha256, approxBytes)',
            h('textarea', {rows: 5, spellcheck: 'false', class: 'code'})),
        control(
            'cliDefaults', 'Engine defaults (JSON)',
            h('textarea', {rows: 4, spellcheck: 'false', class: 'code'})),
        h('label', {class: 'check'},
          h('input', {type: 'checkbox', name: 'enabled', id: 'model-enabled', checked: true}),
          ' Enabled'),
        h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Save'),
          h('button', {type: 'button', onclick: () => edit(null)}, 'New')),
        h('p', {class: 'error', id: 'model-form-error', role: 'alert'}));
  const tableWrap = h('div', {class: 'table-wrap'},
              h('table', {class: 'table', 'aria-label': 'Models'},
                h('thead', {},
                  h('tr', {},
                    ['Id', 'Kind'].map((t) => h('th', {scope: 'col'}, t)),
                    ['Engine', 'Files'].map((t) => h('th', {scope: 'col', class: 'hide-narrow'}, t)),
                    ['VRAM', 'Enabled', ''].map((t) => h('th', {scope: 'col'}, t)))),
                rows));
  const el =
      h('section', {class: 'view'},
        h('div', {class: 'view-head'}, h('h1', {}, 'Models'),
          h('button', {type: 'button', onclick: () => refresh()}, 'Refresh')),
        h('div', {class: 'split'},
          h('div', {class: 'split-main'}, status, tableWrap),
          editable ? h('div', {class: 'split-side'}, form) : null));
  let models = [];
  let editing = null;  // the id being edited; null: a new model
  let base = null;     // that model as it was read when its form was filled
  let reading = 0;     // the latest read: an older one answering late is dropped
  let readAt = null;   // when the rows shown were read

  const el$ = (name) => form.elements[name];

  async function refresh() {
    const mine = ++reading;
    try {
      const answer = await api.get('/api/v1/models');
      if (mine !== reading) return;
      models = answer.models;
    } catch (error) {
      if (mine !== reading) return;
      status.textContent = `Could not read the models: ${error.message}` +
          (readAt ? ` The rows below are as read at ${formatClock(readAt)}.` : '');
      status.className = 'error';
      tableWrap.classList.add('stale');
      return;
    }
    readAt = new Date().toISOString();
    tableWrap.classList.remove('stale');
    status.className = 'muted';
    status.textContent =
        `${models.length} model(s), ${models.filter((m) => m.enabled).length} enabled.`;
    // Rows are kept by id (focus on a checkbox or Edit stays); their listeners name the id.
    updateList(rows, models, (m) => m.id, (m) => {
      const id = m.id;
      return h('tr', {dataset: {model: id}},
        h('td', {}, h('strong', {class: 'name'}, id),
          m.displayName && m.displayName !== id ?
              h('div', {class: 'muted small'}, m.displayName) :
              null),
        h('td', {}, m.kind), h('td', {class: 'hide-narrow'}, m.source?.engine || '—'),
        h('td', {class: 'hide-narrow'}, String(m.source?.files?.length ?? 0)),
        h('td', {}, `${m.vramGbEstimate} GB`),
        h('td', {},
          editable ? h('input', {
            type: 'checkbox',
            checked: m.enabled,
            'aria-label': `${id} enabled`,
            onchange: (e) => setEnabled(id, e.target.checked)
          }) :
                     (m.enabled ? 'yes' : 'no')),
        h('td', {},
          editable ? h('button', {
            type: 'button',
            'aria-label': `Edit ${id}`,
            onclick: () => edit(models.find((x) => x.id === id))
          }, 'Edit') : null));
    });
    if (models.length === 0) {
      replace(rows, h('tr', {}, h('td', {colspan: 7, class: 'muted'}, 'No model yet.')));
    }
    markRead(el);
  }

  async function setEnabled(id, enabled) {
    try {
      await api.json('PATCH', `/api/v1/models/${encodeURIComponent(id)}`, {enabled});
      notify(`${id} ${enabled ? 'enabled' : 'disabled'}.`);
    } catch (error) {
      notify(`Could not change ${id}: ${error.message}`, 'error');
    }
    refresh();
  }

  function clearErrors() {
    for (const node of form.querySelectorAll('[aria-invalid]'))
      node.removeAttribute('aria-invalid');
    for (const node of form.querySelectorAll('.field-error')) node.textContent = '';
    form.querySelector('#model-form-error').textContent = '';
  }

  function edit(model, focus = true) {
    clearErrors();
    editing = model ? model.id : null;
    base = model ? structuredClone(model) : null;
    form.querySelector('#model-form-title').textContent =
        model ? `Edit ${model.id}` : 'Add a model';
    el$('id').value = model?.id || '';
    el$('id').readOnly = Boolean(model);
    el$('kind').value = model?.kind || 'image';
    el$('engine').value = model?.source?.engine || 'synthetic';
    el$('displayName').value = model?.displayName || '';
    el$('vramGbEstimate').value = model ? String(model.vramGbEstimate) : '1';
    el$('files').value = model ? JSON.stringify(model.source?.files || [], null, 2) : NEW_FILES;
    el$('cliDefaults').value =
        model ? JSON.stringify(model.source?.cliDefaults || {}, null, 2) : NEW_CLI;
    el$('enabled').checked = model ? model.enabled : true;
    if (focus) el$('id').focus();
  }

  // Marks the control an error names: "vramGbEstimate: …" or "source.files[0].sha256: …".
  function markField(field, message) {
    let name = field;
    if (field === 'source.engine')
      name = 'engine';
    else if (field.startsWith('source.files') || field === 'source')
      name = 'files';
    else if (field.startsWith('source.cliDefaults'))
      name = 'cliDefaults';
    const holder = form.querySelector(`[data-field="${name}"]`);
    if (!holder) return false;
    const target = el$(name);
    target.setAttribute('aria-invalid', 'true');
    target.setAttribute('aria-describedby', `model-${name}-error`);
    holder.querySelector('.field-error').textContent = message;
    target.focus();
    return true;
  }

  function parseJson(name, label) {
    try {
      return JSON.parse(el$(name).value || 'null');
    } catch (error) {
      markField(name, `${label}: not JSON (${error.message})`);
      return undefined;
    }
  }

  async function save(event) {
    event.preventDefault();
    clearErrors();
    notify.clear();  // the last save's answer is not this one's
    const files = parseJson('files', 'files');
    if (files === undefined) return;
    const cliDefaults = parseJson('cliDefaults', 'engine defaults');
    if (cliDefaults === undefined) return;
    const vram = el$('vramGbEstimate').value;
    // A number input reads '' for text it cannot parse ("1e", "--"); sent as null the studio
    // would take its default.
    if (vram === '' || !Number.isFinite(Number(vram))) {
      markField('vramGbEstimate', 'vramGbEstimate: enter a number of GB (0 to 4096)');
      return;
    }
    const body = {
      id: el$('id').value.trim(),
      kind: el$('kind').value,
      displayName: el$('displayName').value.trim() || el$('id').value.trim(),
      vramGbEstimate: Number(vram),
      enabled: el$('enabled').checked,
      source: {engine: el$('engine').value, files, cliDefaults},
    };
    try {
      let saved;
      if (editing) {
        // What this form changed, over the model as it is now (not a PUT of the whole form).
        const changes = mergePatch(base, {...base, ...body, source: {...base.source, ...body.source}});
        if (Object.keys(changes).length === 0) {
          notify(`Nothing changed in ${editing}.`);
          return;
        }
        saved = await api.json('PATCH', `/api/v1/models/${encodeURIComponent(editing)}`, changes);
      } else {
        saved = await api.post('/api/v1/models', body);
      }
      notify(`Model ${body.id} saved.`);
      edit(saved?.id ? saved : {...body}, false);
      refresh();
    } catch (error) {
      // 409: the id is taken.
      const field = error.status === 409 ? 'id' : error.field;
      if (!(field && markField(field, error.message))) {
        form.querySelector('#model-form-error').textContent = error.message;
      }
    }
  }

  edit(null, false);
  return {
    el,
    refresh,
    // A model added, changed or disabled elsewhere sends no event: read again every 5 s.
    tick: () => {
      if (!el.hidden) refresh();
    },
  };
}
