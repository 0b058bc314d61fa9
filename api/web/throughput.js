// The jobs page's throughput chart: per queue, jobs finished per minute
// over the last hour (solid) and failed attempts per minute (dashed), from
// the samples the workers take server-side (GET /admin/jobs/history), with
// a legend of the hour's totals. Only queues that did something are drawn.

import { s } from './chart.js';
import { clock, number } from './format.js';
import { h } from './dom.js';

// One colour per queue, in the overview's queue order; set as SVG
// presentation attributes (not inline styles).
const COLOURS = ['#2f6fde', '#0f8a5f', '#b3261e', '#8a5a00', '#6b3fb3', '#0a7b8c', '#5a6577'];

const perMinute = (count, p) => (count * 60_000) / Math.max(Date.parse(p.to) - Date.parse(p.from), 1);

export function drawThroughput(container, legend, history) {
  const series = history.queues.map((q, i) => ({
    queue: q.queue,
    colour: COLOURS[i % COLOURS.length],
    done: q.points.map((p) => ({ t: Date.parse(p.to), v: perMinute(p.succeeded, p) })),
    failed: q.points.map((p) => ({ t: Date.parse(p.to), v: perMinute(p.retried + p.failed, p) })),
    total: q.points.reduce((n, p) => n + p.succeeded, 0),
    failures: q.points.reduce((n, p) => n + p.retried + p.failed, 0),
  }));
  const active = series.filter((q) => q.total + q.failures > 0);
  const width = Math.max(container.clientWidth || 600, 260);
  const height = 220;
  const margin = { top: 12, right: 56, bottom: 26, left: 8 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const svg = s('svg', { class: 'chart throughput', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'jobs per minute over the last hour, per queue' });
  const times = history.queues.flatMap((q) => q.points.flatMap((p) => [Date.parse(p.from), Date.parse(p.to)]));
  if (!times.length) {
    svg.append(s('text', { x: width / 2, y: height / 2, class: 'chart-empty', 'text-anchor': 'middle' }, 'No samples yet: they start a sampling interval after a worker does.'));
    container.replaceChildren(svg);
    legend.replaceChildren();
    return;
  }
  const from = Math.min(...times);
  const to = Math.max(...times);
  const high = Math.max(1, ...active.flatMap((q) => [...q.done, ...q.failed].map((p) => p.v))) * 1.1;
  const x = (t) => margin.left + ((t - from) / Math.max(to - from, 1)) * plotW;
  const y = (v) => margin.top + (1 - v / high) * plotH;
  const grid = s('g', { class: 'chart-grid' });
  for (let i = 0; i <= 4; i += 1) {
    const v = (high * i) / 4;
    grid.append(s('line', { x1: margin.left, x2: margin.left + plotW, y1: y(v), y2: y(v) }));
    grid.append(s('text', { x: margin.left + plotW + 6, y: y(v) + 4, class: 'chart-axis' }, `${number(Math.round(v))}/min`));
  }
  for (const [i, anchor] of [[0, 'start'], [0.5, 'middle'], [1, 'end']]) {
    const t = from + (to - from) * i;
    grid.append(s('text', { x: x(t), y: height - 6, class: 'chart-axis', 'text-anchor': anchor }, clock(new Date(t).toISOString())));
  }
  svg.append(grid);
  const path = (points) => points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
  for (const q of active) {
    svg.append(s('path', { d: path(q.done), class: 'throughput-done', stroke: q.colour, 'data-queue': q.queue }));
    if (q.failures > 0) svg.append(s('path', { d: path(q.failed), class: 'throughput-failed', stroke: q.colour, 'data-queue': q.queue }));
  }
  container.replaceChildren(svg);
  legend.replaceChildren(
    ...(active.length
      ? active.map((q) =>
          h(
            'li',
            { dataset: { queue: q.queue, done: String(q.total), failed: String(q.failures) } },
            h('span', { class: `swatch swatch-${COLOURS.indexOf(q.colour)}`, 'aria-hidden': 'true' }),
            h('strong', { text: q.queue }),
            `: ${number(q.total)} done, ${number(q.failures)} failed attempts`,
          ),
        )
      : [h('li', { class: 'muted', text: 'No jobs ran in the last hour.' })]),
  );
}
