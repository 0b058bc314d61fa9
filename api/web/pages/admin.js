// The operators' jobs page: per-queue counts with pause and resume, the
// worker processes and their heartbeats, dead jobs with retry and discard.

import { api, get, post } from '../api.js';
import { card, h, notice, replace, table } from '../dom.js';
import { number, relative, when } from '../format.js';

const COUNTS = ['pending', 'scheduled', 'running', 'done', 'failed', 'dead'];

export async function jobsPage(view, ctx) {
  view.append(h('h1', { text: 'Jobs' }), h('p', { class: 'lead', text: 'The job system across every worker process. Counts refresh every two seconds.' }));
  const updated = h('p', { class: 'muted small', id: 'jobs-updated' });
  const queuesBox = h('div', { id: 'queues' });
  const workersBox = h('div', { id: 'workers' });
  const overviewStatus = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const deadBox = h('div', { id: 'dead-jobs' });
  const deadStatus = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const queueSelect = h('select', { id: 'dead-queue', name: 'queue' }, h('option', { value: '', text: 'All queues' }));
  const more = h('button', { type: 'button', class: 'secondary', text: 'Load more', hidden: true });
  let cursor = null;
  let dead = [];

  async function overview(clearStatus = true) {
    try {
      const data = await get('/admin/jobs');
      if (queueSelect.options.length === 1) {
        queueSelect.append(...data.queues.map((q) => h('option', { value: q.queue, text: q.queue })));
      }
      replace(
        queuesBox,
        table(
          [
            { label: 'Queue', cell: (q) => h('strong', { text: q.queue }) },
            ...COUNTS.map((c) => ({ label: c[0].toUpperCase() + c.slice(1), class: `num count-${c}`, cell: (q) => h('span', { class: c === 'dead' && q.dead > 0 ? 'badge bad' : '', text: number(q[c]) }) })),
            { label: 'State', class: 'queue-state', cell: (q) => h('span', { class: `badge ${q.paused ? 'bad' : 'ok'}`, text: q.paused ? 'paused' : 'running' }) },
            { label: '', class: 'row-actions', cell: (q) => pauseButton(q) },
          ],
          data.queues,
          { rowAttrs: (q) => ({ dataset: { queue: q.queue, paused: String(q.paused) } }) },
        ),
      );
      replace(
        workersBox,
        table(
          [
            { label: 'Worker', cell: (w) => h('span', { class: 'mono', text: w.name }) },
            { label: 'Host · pid', cell: (w) => `${w.host} · ${w.pid}` },
            { label: 'Queues', cell: (w) => w.queues.join(', ') },
            { label: 'Concurrency', class: 'num', cell: (w) => number(w.concurrency) },
            { label: 'Relay', cell: (w) => (w.relay ? 'yes' : 'no') },
            { label: 'Started', cell: (w) => when(w.started_at) },
            { label: 'Heartbeat', cell: (w) => h('span', { title: when(w.last_heartbeat), text: relative(w.last_heartbeat) }) },
            { label: 'State', cell: (w) => h('span', { class: `badge ${w.alive ? 'ok' : 'bad'}`, text: w.alive ? 'alive' : 'silent' }) },
          ],
          data.workers,
          { empty: 'No worker process has announced itself.', rowAttrs: (w) => ({ dataset: { alive: String(w.alive) } }) },
        ),
      );
      updated.textContent = `Updated ${when(data.generated_at)}`;
      if (clearStatus && overviewStatus.querySelector('.error')) overviewStatus.replaceChildren();
    } catch (error) {
      overviewStatus.replaceChildren(notice('error', error.detail || String(error)));
    }
  }

  // Pausing stops every worker process fetching from the queue (jobs
  // already running finish); it keeps accepting jobs.
  function pauseButton(q) {
    const action = q.paused ? 'resume' : 'pause';
    const button = h('button', { type: 'button', class: 'secondary small', text: q.paused ? 'Resume' : 'Pause', 'aria-label': `${q.paused ? 'Resume' : 'Pause'} ${q.queue}` });
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const done = await post(`/admin/queues/${encodeURIComponent(q.queue)}/${action}`);
        overviewStatus.replaceChildren(notice('ok', done.paused ? `Queue ${done.queue} paused: no worker fetches from it.` : `Queue ${done.queue} resumed.`));
        await overview(false);
      } catch (error) {
        button.disabled = false;
        overviewStatus.replaceChildren(notice('error', error.detail || String(error)));
      }
    });
    return button;
  }

  async function act(job, action, button) {
    button.disabled = true;
    deadStatus.replaceChildren();
    try {
      if (action === 'retry') {
        const done = await post(`/admin/jobs/dead/${encodeURIComponent(job.id)}/retry`);
        deadStatus.replaceChildren(notice('ok', `Job ${job.id} is back on the ${done.queue} queue.`));
      } else {
        await api('DELETE', `/admin/jobs/dead/${encodeURIComponent(job.id)}`);
        deadStatus.replaceChildren(notice('ok', `Job ${job.id} discarded.`));
      }
      await Promise.all([loadDead(true), overview()]);
    } catch (error) {
      button.disabled = false;
      deadStatus.replaceChildren(notice('error', error.detail || String(error)));
    }
  }

  const deadColumns = [
    { label: 'Job', cell: (j) => [h('strong', { text: j.job || 'unreadable' }), h('br'), h('span', { class: 'mono small', text: j.id })] },
    { label: 'Queue', cell: (j) => j.queue },
    { label: 'Died', cell: (j) => h('span', { title: when(j.died_at), text: relative(j.died_at) }) },
    { label: 'Attempts', class: 'num', cell: (j) => (j.attempts === null || j.attempts === undefined ? '—' : number(j.attempts)) },
    {
      label: 'Last error',
      cell: (j) => [
        h('span', { class: 'error-text', text: j.error || '—' }),
        j.payload ? h('details', { class: 'payload' }, h('summary', { text: 'Payload' }), h('pre', { text: JSON.stringify(j.payload, null, 2) })) : null,
      ],
    },
    {
      label: '',
      class: 'row-actions',
      cell: (j) => {
        const retry = h('button', { type: 'button', class: 'secondary small', text: 'Retry' });
        retry.addEventListener('click', () => act(j, 'retry', retry));
        // Discarding is final: the first click asks, the second does it.
        const discard = h('button', { type: 'button', class: 'danger small', text: 'Discard' });
        discard.addEventListener('click', () => {
          if (discard.dataset.armed) act(j, 'discard', discard);
          else {
            discard.dataset.armed = 'yes';
            discard.textContent = 'Really discard?';
          }
        });
        return [retry, ' ', discard];
      },
    },
  ];

  async function loadDead(reset) {
    if (reset) {
      cursor = null;
      dead = [];
    }
    try {
      const page = await get('/admin/jobs/dead', { queue: queueSelect.value, limit: 20, cursor });
      dead = dead.concat(page.items);
      cursor = page.next_cursor;
      replace(deadBox, table(deadColumns, dead, { empty: 'No dead jobs.', rowAttrs: (j) => ({ dataset: { jobId: j.id } }) }));
      more.hidden = !cursor;
    } catch (error) {
      deadStatus.replaceChildren(notice('error', error.detail || String(error)));
    }
  }

  queueSelect.addEventListener('change', () => loadDead(true));
  more.addEventListener('click', () => loadDead(false));
  const reload = h('button', { type: 'button', class: 'secondary', id: 'dead-reload', text: 'Reload', onclick: () => loadDead(true) });
  view.append(
    updated,
    overviewStatus,
    card('Queues', queuesBox),
    card('Worker processes', workersBox),
    card('Dead jobs', h('div', { class: 'filters' }, h('label', { for: 'dead-queue', text: 'Queue' }), queueSelect, reload), deadStatus, deadBox, h('div', { class: 'actions' }, more)),
  );
  await Promise.all([overview(), loadDead(true)]);
  const timer = setInterval(() => overview(), 2000);
  ctx.cleanup(() => clearInterval(timer));
}
