// Approvals: registration requests waiting for an operator, with what identifies each machine.
import {badge, formatAgo, formatClock, formatTime, h, markRead, updateList} from './dom.js';

export function createApprovalsView({api, notify}) {
  const status = h('p', {class: 'muted'}, 'Loading…');
  const list = h('div', {class: 'cards'});
  const el =
      h('section', {class: 'view'},
        h('div', {class: 'view-head'}, h('h1', {}, 'Approvals'),
          h('button', {type: 'button', onclick: () => refresh()}, 'Refresh')),
        status, list);
  let timer = null;
  let reading = 0;    // the latest read: an older one answering late is dropped
  let readAt = null;  // when the cards shown were read

  async function refresh() {
    const mine = ++reading;
    try {
      const {pending} = await api.get('/api/v1/workers/pending');
      if (mine !== reading) return;
      readAt = new Date().toISOString();
      status.className = 'muted';
      status.textContent = pending.length ? `${pending.length} request(s) waiting.` :
                                            'No registration request is waiting.';
      list.classList.remove('stale');
      // Cards are kept by request id: a reason being typed keeps its text and focus.
      updateList(list, pending, (r) => r.requestId, card);
      markRead(el);
    } catch (error) {
      if (mine !== reading) return;
      status.textContent = `Could not read the requests: ${error.message}` +
          (readAt ? ` The cards below are as read at ${formatClock(readAt)}.` : '');
      status.className = 'error';
      list.classList.add('stale');
    }
  }

  function card(r) {
    const c = r.capabilities || {};
    const name = c.machineName || r.installId;
    const reason = h('input', {
      type: 'text',
      placeholder: 'Reason (optional)',
      'aria-label': `Reason to reject ${name}`,
      maxlength: 500
    });
    const decide = async (verb) => {
      try {
        const path = `/api/v1/workers/pending/${encodeURIComponent(r.requestId)}/${verb}`;
        const answer = await api.post(path, verb === 'reject' ? {reason: reason.value} : {});
        notify(
            verb === 'approve' ?
                `${name} approved as ${answer.workerId}; it connects at its next poll.` :
                `${name} rejected.`);
      } catch (error) {
        notify(`Could not ${verb} ${name}: ${error.message}`, 'error');
      }
      refresh();
    };
    return h(
        'article', {class: 'card', dataset: {request: r.requestId}},
        h('h2', {}, name, ' ', r.waiting ? badge('waiting') : badge('idle')),
        h('dl', {class: 'facts'}, h('dt', {}, 'User'), h('dd', {}, c.username || '—'),
          h('dt', {}, 'Install id'), h('dd', {class: 'mono'}, r.installId), h('dt', {}, 'From'),
          h('dd', {class: 'mono'}, r.sourceIp || '—'), h('dt', {}, 'Program'),
          h('dd', {}, r.userAgent || '—'), h('dt', {}, 'Version'),
          h('dd', {}, c.agentVersion || '—'), h('dt', {}, 'Runs'),
          h('dd', {}, (c.taskKinds || []).join(', ') || '—'), h('dt', {}, 'VRAM'),
          h('dd', {}, `${c.vramTotalGb ?? '—'} GB`), h('dt', {}, 'Asked'),
          h('dd', {title: formatTime(r.createdAt)}, formatAgo(r.createdAt))),
        h('div', {class: 'actions'},
          h('button', {type: 'button', class: 'primary', onclick: () => decide('approve')},
            'Approve'),
          reason,
          h('button', {type: 'button', class: 'danger', onclick: () => decide('reject')},
            'Reject')));
  }

  return {
    el,
    refresh,
    // A new registration request sends no event: while the view is open it is read every 5 s.
    tick: () => {
      if (!el.hidden) refresh();
    },
    onEvent(name) {
      if (el.hidden || name !== 'worker') return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    },
    dispose: () => clearTimeout(timer),
  };
}
