// The operators' jobs page: throughput over the last hour, per-queue
// counts with pause and resume, the worker processes with their jobs in
// flight, scheduled and retrying jobs, dead jobs with retry and discard (one
// at a time, or everything a filter matches). One filter (queue, job name,
// error text) applies to both job lists.

import { api, get, post } from '../api.js';
import { onResize } from '../chart.js';
import { card, h, notice, replace, table } from '../dom.js';
import { number, relative, when } from '../format.js';
import { drawThroughput } from '../throughput.js';

const COUNTS = ['pending', 'scheduled', 'running', 'done', 'failed', 'dead'];

export async function jobsPage(view, ctx) {
  view.append(h('h1', { text: 'Jobs' }), h('p', { class: 'lead', text: 'The job system across every worker process. Counts refresh every two seconds.' }));
  const updated = h('p', { class: 'muted small', id: 'jobs-updated' });
  const chartBox = h('div', { class: 'chart-box', id: 'throughput-chart' });
  const legend = h('ul', { class: 'throughput-legend', id: 'throughput-legend' });
  const scheduledBox = h('div', { id: 'scheduled-jobs' });
  const scheduledStatus = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const moreScheduled = h('button', { type: 'button', class: 'secondary', text: 'Load more', hidden: true });
  const jobInput = h('input', { id: 'filter-job', name: 'job', list: 'job-names', placeholder: 'any job', autocomplete: 'off' });
  const jobNames = h('datalist', { id: 'job-names' });
  const errorInput = h('input', { id: 'filter-error', name: 'error', placeholder: 'text in the last error', autocomplete: 'off', maxlength: 200 });
  const queuesBox = h('div', { id: 'queues' });
  const workersBox = h('div', { id: 'workers' });
  const overviewStatus = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const deadBox = h('div', { id: 'dead-jobs' });
  const deadStatus = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const queueSelect = h('select', { id: 'dead-queue', name: 'queue' }, h('option', { value: '', text: 'All queues' }));
  const more = h('button', { type: 'button', class: 'secondary', text: 'Load more', hidden: true });
  let cursor = null;
  let dead = [];
  let scheduledCursor = null;
  let scheduled = [];
  let lastHistory = null;
  const seenJobs = new Set();

  // The filter both job lists and the bulk actions use; empty fields are
  // left out of the query.
  const filter = () => ({ queue: queueSelect.value, job: jobInput.value.trim(), error: errorInput.value.trim() });
  function noteJobs(items) {
    const before = seenJobs.size;
    for (const j of items) if (j.job) seenJobs.add(j.job);
    if (seenJobs.size !== before) replace(jobNames, [...seenJobs].sort().map((name) => h('option', { value: name })));
  }

  async function history() {
    try {
      lastHistory = await get('/admin/jobs/history');
      drawThroughput(chartBox, legend, lastHistory);
    } catch (error) {
      overviewStatus.replaceChildren(notice('error', error.detail || String(error)));
    }
  }
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
            { label: 'In flight', class: 'num in-flight', cell: (w) => number(w.in_flight) },
            { label: 'Relay', cell: (w) => (w.relay ? 'yes' : 'no') },
            { label: 'Started', cell: (w) => when(w.started_at) },
            { label: 'Heartbeat', cell: (w) => h('span', { title: when(w.last_heartbeat), text: relative(w.last_heartbeat) }) },
            { label: 'State', cell: (w) => h('span', { class: `badge ${w.alive ? 'ok' : 'bad'}`, text: w.alive ? 'alive' : 'silent' }) },
          ],
          data.workers,
          { empty: 'No worker process has announced itself.', rowAttrs: (w) => ({ dataset: { alive: String(w.alive), worker: w.name, inFlight: String(w.in_flight) } }) },
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

  // A filtered page may come back short with a cursor (the server reads a
  // bounded number of jobs per request): "Load more" goes on from there.
  async function loadDead(reset) {
    if (reset) {
      cursor = null;
      dead = [];
    }
    try {
      const page = await get('/admin/jobs/dead', { ...filter(), limit: 20, cursor });
      dead = dead.concat(page.items);
      noteJobs(page.items);
      cursor = page.next_cursor;
      replace(deadBox, table(deadColumns, dead, { empty: cursor ? 'None found yet: load more to keep looking.' : 'No dead jobs match.', rowAttrs: (j) => ({ dataset: { jobId: j.id } }) }));
      more.hidden = !cursor;
    } catch (error) {
      deadStatus.replaceChildren(notice('error', error.detail || String(error)));
    }
  }

  const scheduledColumns = [
    { label: 'Job', cell: (j) => [h('strong', { text: j.job || 'unreadable' }), h('br'), h('span', { class: 'mono small', text: j.id })] },
    { label: 'Queue', cell: (j) => j.queue },
    { label: 'Next run', cell: (j) => h('span', { title: when(j.run_at), text: relative(j.run_at) }) },
    { label: 'Attempts', class: 'num', cell: (j) => number(j.attempts) },
    { label: 'Last error', cell: (j) => h('span', { class: 'error-text', text: j.last_error || '—' }) },
    { label: 'Waiting in', cell: (j) => h('span', { class: `badge ${j.attempts > 0 ? 'warn' : 'info'}`, text: j.attempts > 0 ? 'retry' : j.waiting_in }) },
  ];

  async function loadScheduled(reset) {
    if (reset) {
      scheduledCursor = null;
      scheduled = [];
    }
    try {
      const page = await get('/admin/jobs/scheduled', { ...filter(), limit: 20, cursor: scheduledCursor });
      scheduled = scheduled.concat(page.items);
      noteJobs(page.items);
      scheduledCursor = page.next_cursor;
      replace(
        scheduledBox,
        table(scheduledColumns, scheduled, {
          empty: scheduledCursor ? 'None found yet: load more to keep looking.' : 'No scheduled or retrying jobs match.',
          rowAttrs: (j) => ({ dataset: { jobId: j.id, attempts: String(j.attempts), waitingIn: j.waiting_in } }),
        }),
      );
      moreScheduled.hidden = !scheduledCursor;
      scheduledStatus.replaceChildren();
    } catch (error) {
      scheduledStatus.replaceChildren(notice('error', error.detail || String(error)));
    }
  }

  // Bulk actions act on every dead job the filter matches, not only those
  // shown; discarding asks twice.
  function bulkButton(action) {
    const retry = action === 'retry';
    const idle = retry ? 'Retry all matching' : 'Discard all matching';
    const button = h('button', { type: 'button', class: retry ? 'secondary' : 'danger', id: `dead-${action}-matching`, text: idle });
    button.addEventListener('click', async () => {
      if (!retry && !button.dataset.armed) {
        button.dataset.armed = 'yes';
        button.textContent = 'Really discard every match?';
        return;
      }
      delete button.dataset.armed;
      button.textContent = idle;
      button.disabled = true;
      deadStatus.replaceChildren();
      const body = Object.fromEntries(Object.entries(filter()).filter(([, v]) => v !== ''));
      try {
        const done = await post(`/admin/jobs/dead/${action}`, body);
        const what = retry ? 'queued again' : 'discarded';
        deadStatus.replaceChildren(notice('ok', `${number(done.done)} of ${number(done.matched)} matching dead jobs ${what}.`));
        await Promise.all([loadDead(true), overview()]);
      } catch (error) {
        deadStatus.replaceChildren(notice('error', error.detail || String(error)));
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  const filters = h(
    'form',
    { class: 'job-filters', id: 'job-filters', role: 'search' },
    h('label', { for: 'dead-queue' }, 'Queue', queueSelect),
    h('label', { for: 'filter-job' }, 'Job', jobInput),
    jobNames,
    h('label', { for: 'filter-error' }, 'Error contains', errorInput),
    h('button', { type: 'submit', id: 'dead-reload', text: 'Apply' }),
  );
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    loadDead(true);
    loadScheduled(true);
  });
  queueSelect.addEventListener('change', () => {
    loadDead(true);
    loadScheduled(true);
  });
  more.addEventListener('click', () => loadDead(false));
  moreScheduled.addEventListener('click', () => loadScheduled(false));
  view.append(
    updated,
    overviewStatus,
    card('Throughput, last hour', h('p', { class: 'muted small', text: 'Jobs done per minute (solid) and failed attempts per minute (dashed), per queue.' }), chartBox, legend),
    card('Queues', queuesBox),
    card('Worker processes', workersBox),
    card('Find jobs', filters),
    card('Scheduled and retrying', scheduledStatus, scheduledBox, h('div', { class: 'actions' }, moreScheduled)),
    card('Dead jobs', h('div', { class: 'actions' }, bulkButton('retry'), ' ', bulkButton('discard')), deadStatus, deadBox, h('div', { class: 'actions' }, more)),
  );
  await Promise.all([overview(), history(), loadDead(true), loadScheduled(true)]);
  const timer = setInterval(() => overview(), 2000);
  // Samples come at most once a sampling interval (a minute by default).
  const historyTimer = setInterval(() => history(), 10_000);
  const stopWatching = onResize(chartBox, () => lastHistory && drawThroughput(chartBox, legend, lastHistory));
  ctx.cleanup(() => {
    clearInterval(timer);
    clearInterval(historyTimer);
    stopWatching();
  });
}
