// A small SVG price chart of our own: a line over time, with an optional
// start-price level, due-time marker and end point (for bets). Colours come
// from the stylesheet (classes), so no inline style is needed.

import { clock, usd } from './format.js';

const NS = 'http://www.w3.org/2000/svg';

/** An SVG element (for the charts built here and in throughput.js). */
export function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * Draws into `container` (replacing what was there).
 * points: [{t: ms, p: number}] oldest first.
 * options: {from, to (ms: the time axis), start: {p, label},
 *   liquidation: {p, label} (a bet's liquidation level), due: ms,
 *   end: {t, p, label}, label (accessible name), format (price → text)}
 */
export function drawChart(container, points, options = {}) {
  const format = options.format || usd;
  const width = Math.max(container.clientWidth || 600, 260);
  const height = width < 520 ? 190 : 250;
  const margin = { top: 14, right: width < 520 ? 70 : 86, bottom: 26, left: 8 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;

  const svg = s('svg', {
    class: 'chart',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': options.label || 'price chart',
  });

  const prices = points.map((pt) => pt.p);
  if (options.start) prices.push(options.start.p);
  if (options.liquidation) prices.push(options.liquidation.p);
  if (options.end) prices.push(options.end.p);
  const times = points.map((pt) => pt.t);
  if (options.due) times.push(options.due);
  let from = options.from ?? Math.min(...times);
  let to = options.to ?? Math.max(...times);
  if (!prices.length || !Number.isFinite(from) || !Number.isFinite(to)) {
    svg.append(s('text', { x: width / 2, y: height / 2, class: 'chart-empty', 'text-anchor': 'middle' }, 'Waiting for prices…'));
    container.replaceChildren(svg);
    return;
  }
  if (to <= from) {
    from -= 30_000;
    to += 1_000;
  }
  let low = Math.min(...prices);
  let high = Math.max(...prices);
  const pad = (high - low) * 0.1 || Math.abs(high) * 0.001 || 1;
  low -= pad;
  high += pad;

  const x = (t) => margin.left + ((t - from) / (to - from)) * plotW;
  const y = (p) => margin.top + (1 - (p - low) / (high - low)) * plotH;

  // Grid and price labels.
  const grid = s('g', { class: 'chart-grid' });
  for (let i = 0; i <= 4; i += 1) {
    const p = low + ((high - low) * i) / 4;
    const yy = y(p);
    grid.append(s('line', { x1: margin.left, x2: margin.left + plotW, y1: yy, y2: yy }));
    grid.append(s('text', { x: margin.left + plotW + 6, y: yy + 4, class: 'chart-axis' }, format(p.toPrecision(8))));
  }
  for (const [i, anchor] of [[0, 'start'], [0.5, 'middle'], [1, 'end']]) {
    const t = from + (to - from) * i;
    grid.append(
      s('text', { x: x(t), y: height - 6, class: 'chart-axis', 'text-anchor': anchor }, clock(new Date(t).toISOString())),
    );
  }
  svg.append(grid);

  const visible = points.filter((pt) => pt.t >= from - 1 && pt.t <= to + 1);
  if (visible.length) {
    const line = visible.map((pt, i) => `${i ? 'L' : 'M'}${x(pt.t).toFixed(1)},${y(pt.p).toFixed(1)}`).join(' ');
    const last = visible[visible.length - 1];
    const area = `${line} L${x(last.t).toFixed(1)},${margin.top + plotH} L${x(visible[0].t).toFixed(1)},${margin.top + plotH} Z`;
    svg.append(s('path', { d: area, class: 'chart-area' }));
    svg.append(s('path', { d: line, class: 'chart-line' }));
    svg.append(s('circle', { cx: x(last.t), cy: y(last.p), r: 3.5, class: 'chart-last' }));
  }

  if (options.start) {
    const yy = y(options.start.p);
    svg.append(s('line', { x1: margin.left, x2: margin.left + plotW, y1: yy, y2: yy, class: 'chart-start' }));
    svg.append(
      s('text', { x: margin.left + 4, y: yy - 5, class: 'chart-note chart-start-label' }, options.start.label || `start ${format(options.start.p)}`),
    );
  }
  if (options.liquidation) {
    const yy = y(options.liquidation.p);
    svg.append(s('line', { x1: margin.left, x2: margin.left + plotW, y1: yy, y2: yy, class: 'chart-liquidation' }));
    svg.append(
      s('text', { x: margin.left + 4, y: yy + 14, class: 'chart-note chart-liquidation-label' }, options.liquidation.label || `liquidation ${format(options.liquidation.p)}`),
    );
  }
  if (options.due) {
    const xx = x(options.due);
    svg.append(s('line', { x1: xx, x2: xx, y1: margin.top, y2: margin.top + plotH, class: 'chart-due' }));
    svg.append(
      s('text', { x: xx - 4, y: margin.top + 10, class: 'chart-note chart-due-label', 'text-anchor': 'end' }, `due ${clock(new Date(options.due).toISOString())}`),
    );
  }
  if (options.end) {
    svg.append(s('circle', { cx: x(options.end.t), cy: y(options.end.p), r: 5, class: 'chart-end' }));
    if (options.end.label) {
      // Above the point (the lines' own labels sit below them), on the
      // side with room: a liquidation lies on the liquidation line.
      const ex = x(options.end.t);
      const left = ex < margin.left + plotW / 2;
      svg.append(
        s('text', { x: left ? ex + 8 : ex - 8, y: y(options.end.p) - 8, class: 'chart-note chart-end-label', 'text-anchor': left ? 'start' : 'end' }, options.end.label),
      );
    }
  }
  container.replaceChildren(svg);
}

/** Redraws on container resize; returns a function that stops watching. */
export function onResize(container, redraw) {
  let lastWidth = container.clientWidth;
  const observer = new ResizeObserver(() => {
    if (container.clientWidth !== lastWidth) {
      lastWidth = container.clientWidth;
      redraw();
    }
  });
  observer.observe(container);
  return () => observer.disconnect();
}
