// Live prices with a chart, conversion quotes, bets (with their chart,
// start price, due time and outcome) and price alerts.

import { api, get, idempotencyKey, post } from '../api.js';
import { drawChart, onResize } from '../chart.js';
import { card, form, h, notice, replace, table, tabs } from '../dom.js';
import { CRYPTO, CURRENCIES, clock, currencyName, duration, label, money, number, relative, usd, when } from '../format.js';
import { navigate, rates, session } from '../state.js';

/** Price history of `symbol` for a chart: at most ~100 points over the span. */
async function history(symbol, fromMs, toMs) {
  const span = Math.max(1, ((toMs ?? Date.now()) - fromMs) / 1000);
  const query = { from: new Date(fromMs).toISOString(), interval: Math.max(1, Math.ceil(span / 100)), limit: 100 };
  if (toMs) query.to = new Date(toMs).toISOString();
  const page = await get(`/rates/${encodeURIComponent(symbol)}/history`, query);
  return page.items.map((item) => ({ t: Date.parse(item.as_of), p: Number(item.price_usd) }));
}

/** Adds a live observation to a series (oldest first, no duplicates). */
function extend(points, rate) {
  const t = Date.parse(rate.as_of);
  const last = points[points.length - 1];
  if (!last || t > last.t) points.push({ t, p: Number(rate.price_usd) });
}

const CHART_WINDOW_MS = 15 * 60 * 1000;

export async function ratesPage(view, ctx) {
  view.append(h('h1', { text: 'Markets' }), h('p', { class: 'lead', text: 'Prices in US dollars, updated live.' }));
  let symbol = CURRENCIES.includes(ctx.query.get('symbol')) ? ctx.query.get('symbol') : 'BTC';
  let points = [];
  const chartBox = h('div', { class: 'chart-box', id: 'rates-chart' });
  const chartTitle = h('h2');
  const price = h('p', { class: 'big-price' });
  const tableBox = h('div', { id: 'rates-table' });

  function drawPrices() {
    const rows = rates.list();
    replace(
      tableBox,
      table(
        [
          {
            label: 'Currency',
            cell: (r) =>
              h(
                'button',
                {
                  type: 'button',
                  class: r.symbol === symbol ? 'link symbol active' : 'link symbol',
                  'aria-pressed': String(r.symbol === symbol),
                  onclick: () => select(r.symbol),
                },
                h('strong', { text: r.symbol }),
                ' ',
                h('span', { class: 'muted small name', text: currencyName(r.symbol) }),
              ),
          },
          { label: 'Price', class: 'num', cell: (r) => h('span', { class: 'price', text: usd(r.price_usd) }) },
          { label: 'Updated', cell: (r) => h('span', { title: when(r.as_of), text: relative(r.as_of) }) },
          { label: 'Status', cell: (r) => (r.fresh === false ? h('span', { class: 'badge bad', text: 'stale' }) : h('span', { class: 'badge ok', text: 'fresh' })) },
        ],
        rows.filter((r) => r.symbol !== 'USD'),
        { empty: 'No prices yet: waiting for the feed.', rowAttrs: (r) => ({ dataset: { symbol: r.symbol } }), compact: true },
      ),
    );
  }

  function drawPrice() {
    const rate = rates.get(symbol);
    chartTitle.textContent = `${symbol} · ${currencyName(symbol)}`;
    replace(price, rate ? usd(rate.price_usd) : '—', rate ? h('small', { class: 'muted', text: ` as of ${clock(rate.as_of)}` }) : null);
    drawChart(chartBox, points, { label: `${symbol} price in USD`, format: usd });
  }

  async function select(next) {
    symbol = next;
    points = [];
    drawPrice();
    drawPrices();
    try {
      points = await history(symbol, Date.now() - CHART_WINDOW_MS);
    } catch (error) {
      chartBox.replaceChildren(notice('error', error.detail || String(error)));
      return;
    }
    drawPrice();
  }

  const convert = form({
    name: 'convert',
    submit: 'Quote',
    className: 'row',
    fields: [
      { name: 'amount', label: 'Amount', inputmode: 'decimal', value: '100' },
      { name: 'from', label: 'From', type: 'select', value: 'USD', options: CURRENCIES.map((c) => [c, c]) },
      { name: 'to', label: 'To', type: 'select', value: 'BTC', options: CURRENCIES.map((c) => [c, c]) },
    ],
    onSubmit: async (values) => {
      const quote = await get('/rates/convert', values);
      return `${money(quote.amount, quote.from)} = ${money(quote.converted, quote.to)} (1 ${quote.from} = ${number(quote.rate)} ${quote.to}, prices as of ${clock(quote.as_of)})`;
    },
  });

  const welcome = session.user
    ? null
    : card(
        'Start trading',
        h('p', {}, 'Open wallets in USD, EUR, KZT, BTC, ETH and SOL, move money, trade, bet on price moves and get alerts by email.'),
        h('div', { class: 'buttons' }, h('a', { class: 'button primary', href: '#/register', text: 'Create an account' }), h('a', { class: 'button secondary', href: '#/login', text: 'Log in' })),
      );
  view.append(
    h(
      'div',
      { class: 'grid wide-left' },
      h('div', { class: 'stack' }, card(null, h('div', { class: 'chart-head' }, chartTitle, price), chartBox), welcome),
      h('div', { class: 'stack' }, card('Latest prices', tableBox), card('Convert', convert.el)),
    ),
  );
  drawPrices();
  ctx.cleanup(
    rates.subscribe((updated) => {
      for (const rate of updated) if (rate.symbol === symbol) extend(points, rate);
      const cutoff = Date.now() - CHART_WINDOW_MS;
      while (points.length && points[0].t < cutoff) points.shift();
      drawPrices();
      drawPrice();
    }),
  );
  ctx.cleanup(onResize(chartBox, drawPrice));
  await select(symbol);
}

const DURATIONS = [10, 30, 60, 300, 900, 3600, 14400, 86400];

function usdWallet() {
  return get('/wallets').then((list) => list.items.find((w) => w.currency === 'USD') || null);
}

function outcome(bet) {
  if (bet.status === 'open') return { kind: 'open', text: 'Open' };
  if (bet.status === 'void') return { kind: 'void', text: 'Void: stake returned' };
  if (bet.liquidated) return { kind: 'loss', text: 'Liquidated' };
  return { W: { kind: 'win', text: 'Won' }, L: { kind: 'loss', text: 'Lost' }, D: { kind: 'draw', text: 'Draw: stake returned' } }[bet.result] || { kind: 'open', text: label(bet.status) };
}

const arrow = (direction) => (direction === 'up' ? '↑ up' : '↓ down');

export async function betsPage(view, ctx) {
  view.append(h('h1', { text: 'Bets' }), h('p', { class: 'lead', text: 'Bet on the price going up or down. The server fixes the start price now and settles at the price in force when the bet is due.' }));
  let wallet = await usdWallet();
  const info = h('p', { class: 'estimate muted', 'aria-live': 'polite' });
  const f = form({
    name: 'bet',
    submit: 'Place bet',
    fields: [
      { name: 'symbol', label: 'Currency', type: 'select', options: CRYPTO.map((c) => [c, `${c} · ${currencyName(c)}`]) },
      { name: 'direction', label: 'Direction', type: 'radio', options: [['up', '↑ Up'], ['down', '↓ Down']], value: 'up' },
      { name: 'stake', label: 'Stake (USD)', inputmode: 'decimal', value: '10.00' },
      { name: 'leverage', label: 'Leverage', type: 'number', value: '1', min: 1, max: 100, step: 1, inputmode: 'numeric', hint: '1–100: multiplies gains and losses; when the loss reaches the stake the bet is closed (liquidated)' },
      { name: 'duration_seconds', label: 'Duration', type: 'select', value: '60', options: DURATIONS.map((d) => [String(d), duration(d)]) },
    ],
    extra: info,
    onSubmit: async (values) => {
      const whole = (v) => (/^\d+$/.test(v) ? Number(v) : v);
      const bet = await post(
        '/bets',
        { ...values, leverage: whole(values.leverage), duration_seconds: whole(values.duration_seconds) },
        { idempotencyKey: idempotencyKey() },
      );
      navigate(`/bets/${bet.id}`);
      return undefined;
    },
  });
  function drawInfo() {
    const { symbol, direction, leverage } = f.values();
    const rate = rates.get(symbol);
    const parts = [rate ? `${symbol} now ${usd(rate.price_usd)}` : `no price for ${symbol} yet`];
    const lev = Number(leverage);
    if (rate && Number.isInteger(lev) && lev >= 1 && lev <= 100) {
      // The server fixes it from the start price when the bet is placed:
      // start × (1 ∓ 1/leverage). Shown before the user confirms.
      const now = Number(rate.price_usd);
      const level = direction === 'down' ? now * (1 + 1 / lev) : now * (1 - 1 / lev);
      parts.push(level > 0 ? `liquidated at about ${usd(String(level))}` : 'no liquidation at ×1 up');
    }
    parts.push(wallet ? `your USD balance ${money(wallet.balance, 'USD')}` : 'you need a USD wallet to bet');
    info.textContent = parts.join(' · ');
  }
  f.el.addEventListener('change', drawInfo);
  f.el.addEventListener('input', drawInfo);
  drawInfo();
  ctx.cleanup(rates.subscribe(drawInfo));

  const listBox = h('div', { id: 'bet-list' });
  const more = h('button', { type: 'button', class: 'secondary', text: 'Load more', hidden: true });
  let status = '';
  let cursor = null;
  let rows = [];
  const columns = [
    { label: 'Placed', cell: (b) => h('a', { href: `#/bets/${b.id}`, text: when(b.created_at) }) },
    { label: 'Bet', cell: (b) => `${b.symbol} ${arrow(b.direction)} ×${b.leverage}` },
    { label: 'Stake', class: 'num', cell: (b) => money(b.stake, 'USD') },
    { label: 'Start', class: 'num', cell: (b) => usd(b.start_price) },
    { label: 'Due', cell: (b) => clock(b.settles_at) },
    { label: 'Outcome', cell: (b) => h('span', { class: `outcome ${outcome(b).kind}`, text: outcome(b).text }) },
    { label: 'Profit', class: 'num', cell: (b) => (b.profit === null || b.profit === undefined ? '—' : money(b.profit, 'USD', { sign: true })) },
  ];
  async function load(reset) {
    if (reset) {
      cursor = null;
      rows = [];
    }
    const page = await get('/bets', { status, limit: 20, cursor });
    rows = rows.concat(page.items);
    cursor = page.next_cursor;
    replace(listBox, table(columns, rows, { empty: 'No bets here.', rowAttrs: (b) => ({ dataset: { betId: b.id, status: b.status } }) }));
    more.hidden = !cursor;
  }
  more.addEventListener('click', () => load(false));
  view.append(
    h(
      'div',
      { class: 'grid wide-right' },
      card('Place a bet', f.el),
      card(
        'Your bets',
        tabs([['', 'All'], ['open', 'Open'], ['settled', 'Settled'], ['void', 'Void']], '', (value) => {
          status = value;
          load(true);
        }, 'Filter bets'),
        listBox,
        h('div', { class: 'actions' }, more),
      ),
    ),
  );
  await load(true);
  // Open bets settle by themselves: refresh the first page while any is open.
  const timer = setInterval(async () => {
    if (!rows.some((b) => b.status === 'open') || cursor) return;
    try {
      await load(true);
      wallet = await usdWallet();
      drawInfo();
    } catch (error) {
      console.warn(error);
    }
  }, 3000);
  ctx.cleanup(() => clearInterval(timer));
}

export async function betPage(view, ctx) {
  let bet = await get(`/bets/${encodeURIComponent(ctx.params.id)}`);
  const created = Date.parse(bet.created_at);
  const due = Date.parse(bet.settles_at);
  let points = [];
  const chartBox = h('div', { class: 'chart-box', id: 'bet-chart' });
  const facts = h('dl', { class: 'facts' });
  const result = h('div', { class: 'bet-outcome', id: 'bet-outcome', 'aria-live': 'polite' });

  view.append(
    h('p', {}, h('a', { href: '#/bets', text: '← All bets' })),
    h('h1', { text: `${bet.symbol} ${arrow(bet.direction)}` }),
    h('div', { class: 'grid wide-left' }, card(`${bet.symbol} price (USD)`, chartBox), h('div', { class: 'stack' }, card(null, result), card('Bet', facts))),
    h('div', { class: 'actions' }, h('a', { class: 'button primary', href: '#/bets', text: 'Place another bet' })),
  );

  const domain = () => {
    const span = Math.max(due - created, 10_000);
    const lead = Math.min(Math.max(span * 0.5, 20_000), 3_600_000);
    return { from: created - lead, to: Math.max(due + span * 0.15, bet.status === 'open' ? Date.now() : due + span * 0.15) };
  };

  function draw() {
    const { from, to } = domain();
    const settled = bet.status !== 'open' && bet.end_price;
    drawChart(chartBox, points, {
      from,
      to,
      label: `${bet.symbol} price with the bet's start price and due time`,
      start: { p: Number(bet.start_price), label: `start ${usd(bet.start_price)}` },
      liquidation: Number(bet.liquidation_price) > 0 ? { p: Number(bet.liquidation_price), label: `liquidation ${usd(bet.liquidation_price)}` } : null,
      due,
      end: settled
        ? bet.liquidated
          ? { t: Date.parse(bet.settled_at), p: Number(bet.end_price), label: `liquidated ${usd(bet.end_price)}` }
          : { t: due, p: Number(bet.end_price), label: `end ${usd(bet.end_price)}` }
        : null,
    });
    const o = outcome(bet);
    const rate = rates.get(bet.symbol);
    const lines = [];
    if (bet.status === 'open') {
      const left = due - Date.now();
      lines.push(h('p', { class: 'outcome-title', text: left > 0 ? `Open · settles ${relative(bet.settles_at)}` : 'Open · settling…' }));
      if (rate) {
        const now = Number(rate.price_usd);
        const start = Number(bet.start_price);
        const winning = bet.direction === 'up' ? now > start : now < start;
        lines.push(h('p', { class: 'muted' }, `Now ${usd(rate.price_usd)}: `, h('span', { class: now === start ? '' : winning ? 'up' : 'down', text: now === start ? 'no move yet' : winning ? 'winning so far' : 'losing so far' })));
      }
    } else {
      lines.push(h('p', { class: 'outcome-title', text: o.text }));
      if (bet.liquidated) {
        lines.push(h('p', { class: 'muted', id: 'bet-liquidated', text: `${bet.symbol} reached ${usd(bet.end_price)} at ${when(bet.settled_at)}, at or past the liquidation price of ${usd(bet.liquidation_price)}: the loss had reached the stake.` }));
      }
      if (bet.status === 'settled') {
        lines.push(
          h(
            'dl',
            { class: 'facts' },
            h('dt', { text: 'End price' }),
            h('dd', { text: usd(bet.end_price) }),
            h('dt', { text: 'Profit' }),
            h('dd', { class: Number(bet.profit) < 0 ? 'down' : 'up', text: money(bet.profit, 'USD', { sign: true }) }),
            h('dt', { text: 'Paid out' }),
            h('dd', { text: money(bet.payout, 'USD') }),
          ),
        );
      } else {
        lines.push(h('p', { class: 'muted', text: 'No fresh price at the due time: the stake went back to your wallet.' }));
      }
    }
    result.className = `bet-outcome ${o.kind}`;
    result.dataset.status = bet.status;
    replace(result, lines);
    replace(
      facts,
      [
        ['Direction', arrow(bet.direction)],
        ['Stake', money(bet.stake, 'USD')],
        ['Leverage', `×${bet.leverage}`],
        ['Start price', usd(bet.start_price)],
        ['Liquidation price', Number(bet.liquidation_price) > 0 ? usd(bet.liquidation_price) : 'none (×1 up)'],
        ['Placed', when(bet.created_at)],
        ['Due', `${when(bet.settles_at)} (${duration(bet.duration_seconds)})`],
        bet.settled_at ? ['Settled', when(bet.settled_at)] : null,
      ]
        .filter(Boolean)
        .map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]),
    );
  }

  const { from } = domain();
  try {
    points = await history(bet.symbol, from, bet.status === 'open' ? undefined : domain().to);
  } catch (error) {
    console.warn(error);
  }
  draw();
  ctx.cleanup(onResize(chartBox, draw));
  // A price at or past the liquidation price means the bet may have been
  // closed already: ask at once rather than at the next slow poll.
  let reached = false;
  const liquidation = Number(bet.liquidation_price);
  ctx.cleanup(
    rates.subscribe((updated) => {
      if (bet.status !== 'open') return;
      for (const rate of updated) {
        if (rate.symbol !== bet.symbol) continue;
        extend(points, rate);
        const p = Number(rate.price_usd);
        if (liquidation > 0 && (bet.direction === 'up' ? p <= liquidation : p >= liquidation)) reached = true;
      }
      draw();
    }),
  );
  // Once due, ask for the outcome every second until it is in; before
  // that, every 5 s (a liquidation can end the bet at any time) or as soon
  // as a price reaches the liquidation price.
  let asked = Date.now();
  const timer = setInterval(async () => {
    if (bet.status !== 'open') return;
    if (Date.now() < due - 500 && !reached && Date.now() - asked < 5000) {
      draw();
      return;
    }
    reached = false;
    asked = Date.now();
    try {
      const next = await get(`/bets/${bet.id}`);
      if (!ctx.isCurrent()) return;
      bet = next;
      if (bet.status !== 'open') {
        clearInterval(timer);
        points = await history(bet.symbol, from, domain().to).catch(() => points);
      }
      draw();
    } catch (error) {
      console.warn(error);
    }
  }, 1000);
  ctx.cleanup(() => clearInterval(timer));
}

const ALERT_STATUSES = [['created', 'Active'], ['triggered', 'Triggered'], ['deleted', 'Deleted'], ['', 'All']];

export async function alertsPage(view, ctx) {
  view.append(h('h1', { text: 'Price alerts' }), h('p', { class: 'lead', text: 'An email when a price reaches your target, once.' }));
  const symbols = CURRENCIES.filter((c) => c !== 'USD');
  const info = h('p', { class: 'estimate muted' });
  let status = 'created';
  let cursor = null;
  let rows = [];
  const listBox = h('div', { id: 'alert-list' });
  const listStatus = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'secondary', text: 'Load more', hidden: true });

  const f = form({
    name: 'alert',
    submit: 'Create alert',
    fields: [
      { name: 'symbol', label: 'Currency', type: 'select', value: 'BTC', options: symbols.map((c) => [c, `${c} · ${currencyName(c)}`]) },
      { name: 'target_price', label: 'Target price (USD)', inputmode: 'decimal', placeholder: '50000' },
      { name: 'direction', label: 'Alert when the price is', type: 'radio', value: '', options: [['', 'Auto'], ['above', 'At or above'], ['below', 'At or below']] },
    ],
    extra: info,
    onSubmit: async (values) => {
      const body = { symbol: values.symbol, target_price: values.target_price };
      if (values.direction) body.direction = values.direction;
      const alert = await post('/alerts', body);
      f.inputs.get('target_price').value = '';
      await load(true);
      return `Alert created: ${alert.symbol} ${alert.direction} ${usd(alert.target_price)}.`;
    },
  });
  const drawInfo = () => {
    const rate = rates.get(f.values().symbol);
    info.textContent = rate ? `${f.values().symbol} now ${usd(rate.price_usd)}. “Auto” picks above or below from it.` : '';
  };
  f.el.addEventListener('change', drawInfo);
  f.el.addEventListener('input', drawInfo);
  drawInfo();
  ctx.cleanup(rates.subscribe(drawInfo));

  async function remove(alert, button) {
    button.disabled = true;
    listStatus.replaceChildren();
    try {
      await api('DELETE', `/alerts/${alert.id}`);
      listStatus.replaceChildren(notice('ok', `Deleted the alert ${alert.symbol} ${alert.direction} ${usd(alert.target_price)}.`));
      await load(true);
    } catch (error) {
      button.disabled = false;
      listStatus.replaceChildren(notice('error', error.detail || String(error)));
    }
  }

  const columns = [
    { label: 'Created', cell: (a) => when(a.created_at) },
    { label: 'Alert', cell: (a) => `${a.symbol} ${a.direction === 'above' ? '≥' : '≤'} ${usd(a.target_price)}` },
    { label: 'Status', cell: (a) => h('span', { class: `badge ${a.status === 'triggered' ? 'ok' : a.status === 'deleted' ? '' : 'info'}`, text: a.status === 'created' ? 'active' : a.status }) },
    { label: 'Triggered', cell: (a) => (a.triggered_at ? `${usd(a.triggered_price)} · ${when(a.observed_at || a.triggered_at)}` : '—') },
    {
      label: '',
      class: 'row-actions',
      cell: (a) => {
        if (a.status !== 'created') return '';
        const button = h('button', { type: 'button', class: 'danger small', text: 'Delete', 'aria-label': `Delete alert ${a.symbol} ${a.direction} ${a.target_price}` });
        button.addEventListener('click', () => remove(a, button));
        return button;
      },
    },
  ];
  async function load(reset) {
    if (reset) {
      cursor = null;
      rows = [];
    }
    const page = await get('/alerts', { status, limit: 20, cursor });
    rows = rows.concat(page.items);
    cursor = page.next_cursor;
    replace(listBox, table(columns, rows, { empty: 'No alerts here.', rowAttrs: (a) => ({ dataset: { alertId: a.id, status: a.status } }) }));
    more.hidden = !cursor;
  }
  more.addEventListener('click', () => load(false).catch((error) => listStatus.replaceChildren(notice('error', error.detail))));

  view.append(
    h(
      'div',
      { class: 'grid wide-right' },
      card('New alert', f.el),
      card(
        'Your alerts',
        tabs(ALERT_STATUSES, status, (value) => {
          status = value;
          listStatus.replaceChildren();
          load(true).catch((error) => listStatus.replaceChildren(notice('error', error.detail)));
        }, 'Filter alerts by status'),
        listStatus,
        listBox,
        h('div', { class: 'actions' }, more),
      ),
    ),
  );
  await load(true);
}
