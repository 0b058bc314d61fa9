// Wallets (open, deposit, withdraw, transfer with a quote first), buying
// and selling crypto, and the transaction history.

import { get, idempotencyKey, post } from '../api.js';
import { card, form, h, notice, replace, table } from '../dom.js';
import { CRYPTO, CURRENCIES, clock, currencyName, isFiat, label, money, number, usd, when } from '../format.js';
import { rates, session } from '../state.js';

/** A wallet's value in USD at the latest price, or null. */
function inUsd(wallet) {
  if (wallet.currency === 'USD') return Number(wallet.balance);
  const rate = rates.get(wallet.currency);
  return rate ? Number(wallet.balance) * Number(rate.price_usd) : null;
}

export async function walletsPage(view, ctx) {
  view.append(h('h1', { text: 'Wallets' }));
  const total = h('p', { class: 'lead total' });
  const grid = h('div', { class: 'wallets', id: 'wallet-list' });
  const cards = new Map(); // wallet id → {el, update(wallet)}
  let wallets = [];

  const openForm = form({
    name: 'open-wallet',
    submit: 'Open wallet',
    fields: [
      { name: 'currency', label: 'Currency', type: 'select', options: [] },
      { name: 'name', label: 'Name (optional)', placeholder: 'e.g. Savings' },
    ],
    onSubmit: async (values) => {
      const body = { currency: values.currency };
      if (values.name) body.name = values.name;
      const wallet = await post('/wallets', body);
      await reload();
      return `Opened your ${wallet.currency} wallet, number ${wallet.wallet_number}.`;
    },
  });

  const trade = tradeForm(async () => reload());

  function drawOpenOptions() {
    const owned = new Set(wallets.map((w) => w.currency));
    const select = openForm.inputs.get('currency');
    const before = select.value;
    replace(
      select,
      CURRENCIES.filter((c) => !owned.has(c)).map((c) => h('option', { value: c, text: `${c} · ${currencyName(c)}` })),
    );
    if ([...select.options].some((o) => o.value === before)) select.value = before;
    openForm.el.hidden = select.options.length === 0;
  }

  function drawTotal() {
    const values = wallets.map(inUsd);
    if (!wallets.length) {
      replace(total, 'You have no wallets yet: open one below, then deposit into it.');
    } else if (values.every((v) => v !== null)) {
      const sum = values.reduce((a, b) => a + b, 0);
      replace(total, 'Total ≈ ', h('strong', { text: money(sum.toFixed(2), 'USD') }), ' at the latest prices');
    } else {
      replace(total, '');
    }
  }

  async function reload() {
    const list = await get('/wallets');
    const rank = (w) => (CURRENCIES.includes(w.currency) ? CURRENCIES.indexOf(w.currency) : CURRENCIES.length);
    wallets = list.items.sort((a, b) => rank(a) - rank(b) || a.currency.localeCompare(b.currency));
    for (const wallet of wallets) {
      if (cards.has(wallet.id)) cards.get(wallet.id).update(wallet);
      else cards.set(wallet.id, walletCard(wallet, () => wallets, reload));
    }
    // Moving a node keeps it (and any open form in it) as it is.
    grid.append(...wallets.map((w) => cards.get(w.id).el));
    drawOpenOptions();
    drawTotal();
    trade.setWallets(wallets);
  }

  view.append(total, grid, h('div', { class: 'grid two' }, card('Buy or sell crypto', trade.el), card('Open a wallet', openForm.el)));
  await reload();
  ctx.cleanup(
    rates.subscribe(() => {
      drawTotal();
      for (const wallet of wallets) cards.get(wallet.id)?.update(wallet);
      trade.estimate();
    }),
  );
}

function walletCard(initial, allWallets, reload) {
  let wallet = initial;
  const balance = h('p', { class: 'balance' });
  const worth = h('p', { class: 'worth muted' });
  const status = h('span', { class: 'badge' });
  const nameEl = h('span', { class: 'wallet-name' });
  const panel = h('div', { class: 'panel' });
  let openAction = null;

  const actions = [['deposit', 'Deposit'], ['withdraw', 'Withdraw'], ['transfer', 'Transfer']]
    .filter(([action]) => action === 'transfer' || isFiat(wallet.currency))
    .map(([action, text]) =>
      h('button', {
        type: 'button',
        class: 'secondary',
        text,
        dataset: { action },
        'aria-expanded': 'false',
        onclick: (event) => toggle(action, event.currentTarget),
      }),
    );

  const el = h(
    'article',
    { class: 'card wallet', dataset: { currency: wallet.currency, walletId: wallet.id } },
    h('header', {}, h('h2', {}, h('span', { class: 'code', text: wallet.currency }), ' ', nameEl), status),
    balance,
    worth,
    h('p', { class: 'number' }, 'Wallet number ', h('span', { class: 'wallet-number', text: wallet.wallet_number })),
    h('div', { class: 'buttons' }, actions, h('a', { class: 'button secondary', href: `#/transactions?wallet=${wallet.id}`, text: 'History' })),
    panel,
  );

  function toggle(action, button) {
    for (const b of actions) b.setAttribute('aria-expanded', 'false');
    if (openAction === action) {
      openAction = null;
      panel.replaceChildren();
      return;
    }
    openAction = action;
    button.setAttribute('aria-expanded', 'true');
    const built = action === 'transfer' ? transferForm(() => wallet, allWallets, reload) : movementForm(action, () => wallet, reload);
    panel.replaceChildren(built);
    built.querySelector('input:not([type=hidden])')?.focus();
  }

  function update(next) {
    wallet = next;
    nameEl.textContent = wallet.name || currencyName(wallet.currency);
    balance.textContent = money(wallet.balance, wallet.currency);
    const value = inUsd(wallet);
    worth.textContent = wallet.currency !== 'USD' && value !== null ? `≈ ${money(value.toFixed(2), 'USD')}` : '';
    status.textContent = wallet.status;
    status.className = `badge ${wallet.status === 'active' ? 'ok' : 'bad'}`;
    status.hidden = wallet.status === 'active';
  }
  update(wallet);
  return { el, update };
}

function movementForm(action, currentWallet, reload) {
  const wallet = currentWallet();
  const f = form({
    name: action,
    className: 'inline',
    submit: action === 'deposit' ? 'Deposit' : 'Withdraw',
    fields: [{ name: 'amount', label: `Amount (${wallet.currency})`, inputmode: 'decimal', placeholder: '100.00' }],
    onSubmit: async (values) => {
      const moved = await post(`/wallets/${wallet.id}/${action}`, values, { idempotencyKey: idempotencyKey() });
      await reload();
      f.inputs.get('amount').value = '';
      const amount = money(moved.amount, moved.currency);
      const after = money(moved.wallet.balance, moved.wallet.currency);
      return action === 'deposit' ? `Deposited ${amount}. Balance ${after}.` : `Withdrew ${amount}. Balance ${after}.`;
    },
  });
  return f.el;
}

/**
 * Transfer in two steps: the form asks for the quote (GET /rates/convert,
 * exactly what the transfer would use now), then "Confirm" sends it.
 */
function transferForm(currentWallet, allWallets, reload) {
  const wallet = currentWallet();
  const review = h('div', { class: 'review', 'aria-live': 'polite' });
  let key = null;
  const f = form({
    name: 'transfer',
    className: 'inline',
    submit: 'Review transfer',
    fields: [
      { name: 'to_wallet_number', label: 'To wallet number', inputmode: 'numeric', placeholder: '10 digits' },
      { name: 'amount', label: `Amount (${wallet.currency})`, inputmode: 'decimal', placeholder: '25.00' },
      {
        name: 'to_currency',
        label: 'Currency of that wallet',
        type: 'select',
        value: wallet.currency,
        options: CURRENCIES.map((c) => [c, `${c} · ${currencyName(c)}`]),
        hint: 'The payee receives the amount converted into it at fresh prices.',
      },
    ],
    extra: review,
    onSubmit: async (values) => {
      review.replaceChildren();
      const quote =
        values.to_currency === wallet.currency
          ? null
          : await get('/rates/convert', { from: wallet.currency, to: values.to_currency, amount: values.amount });
      key = idempotencyKey();
      showReview(values, quote);
      return undefined;
    },
  });
  const numberInput = f.inputs.get('to_wallet_number');
  // Paying one of your own wallets: its currency is known.
  numberInput.addEventListener('input', () => {
    const own = allWallets().find((w) => w.wallet_number === numberInput.value.trim());
    if (own) f.inputs.get('to_currency').value = own.currency;
  });
  for (const input of f.inputs.values()) {
    input.addEventListener('input', () => {
      review.replaceChildren();
      f.button.hidden = false;
    });
  }

  function showReview(values, quote) {
    const status = h('div', { class: 'form-status' });
    const confirm = h('button', { type: 'button', class: 'primary', text: 'Confirm transfer' });
    const change = h('button', {
      type: 'button',
      class: 'secondary',
      text: 'Change',
      onclick: () => {
        review.replaceChildren();
        f.button.hidden = false;
      },
    });
    const sent = money(quote ? quote.amount : values.amount, wallet.currency);
    replace(
      review,
      h(
        'div',
        { class: 'quote' },
        h('h3', { text: 'Check before you send' }),
        h(
          'dl',
          { class: 'facts' },
          h('dt', { text: 'You send' }),
          h('dd', { class: 'quote-sent', text: sent }),
          h('dt', { text: 'To wallet' }),
          h('dd', { text: values.to_wallet_number }),
          h('dt', { text: 'They receive' }),
          h('dd', { class: 'quote-received', text: quote ? money(quote.converted, quote.to) : sent }),
          quote ? [h('dt', { text: 'Rate' }), h('dd', { text: `1 ${quote.from} = ${number(quote.rate)} ${quote.to}` })] : null,
          quote ? [h('dt', { text: 'Prices as of' }), h('dd', { text: clock(quote.as_of) })] : null,
        ),
        quote ? h('p', { class: 'muted small', text: 'Converted at the prices in force when you confirm; the received amount is rounded down.' }) : null,
        h('div', { class: 'actions' }, confirm, change),
        status,
      ),
    );
    f.button.hidden = true;
    confirm.focus();
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      status.replaceChildren();
      try {
        const moved = await post(
          `/wallets/${wallet.id}/transfer`,
          { to_wallet_number: values.to_wallet_number, amount: values.amount },
          { idempotencyKey: key },
        );
        await reload();
        const received = moved.credited_amount ? money(moved.credited_amount, moved.credited_currency) : money(moved.amount, moved.currency);
        review.replaceChildren();
        f.button.hidden = false;
        for (const name of ['to_wallet_number', 'amount']) f.inputs.get(name).value = '';
        const surprise = moved.credited_currency && moved.credited_currency !== values.to_currency ? ` (that wallet holds ${moved.credited_currency}, not ${values.to_currency})` : '';
        f.showOk(`Sent ${money(moved.amount, moved.currency)} to wallet ${moved.to_wallet_number || values.to_wallet_number}; they received ${received}${surprise}.`);
      } catch (error) {
        confirm.disabled = false;
        if (error.errors && Object.keys(error.errors).length) {
          review.replaceChildren();
          f.button.hidden = false;
          f.showError(error);
        } else {
          status.replaceChildren(notice('error', error.detail || String(error)));
        }
      }
    });
  }
  return f.el;
}

function tradeForm(reload) {
  let wallets = [];
  const estimate = h('p', { class: 'estimate muted', 'aria-live': 'polite' });
  const f = form({
    name: 'trade',
    submit: 'Place order',
    fields: [
      { name: 'side', label: 'Order', type: 'radio', options: [['buy', 'Buy'], ['sell', 'Sell']], value: 'buy' },
      { name: 'currency', label: 'Crypto', type: 'select', options: CRYPTO.map((c) => [c, `${c} · ${currencyName(c)}`]) },
      { name: 'amount', label: 'Amount (in the crypto)', inputmode: 'decimal', placeholder: '0.001' },
      { name: 'to_username', label: 'Pay the dollars to (optional)', placeholder: 'username', hint: 'Sales only: another user’s USD wallet instead of yours.' },
    ],
    extra: estimate,
    onSubmit: async (values) => {
      const body = { currency: values.currency, amount: values.amount };
      if (values.side === 'sell' && values.to_username) body.to_username = values.to_username;
      const order = await post(`/orders/${values.side}`, body, { idempotencyKey: idempotencyKey() });
      await reload();
      f.inputs.get('amount').value = '';
      const crypto = money(order.amount, order.currency);
      const dollars = money(order.usd_amount, 'USD');
      return order.side === 'buy'
        ? `Bought ${crypto} for ${dollars} at ${usd(order.price_usd)}.`
        : `Sold ${crypto} for ${dollars} at ${usd(order.price_usd)}${order.to_username ? `, paid to ${order.to_username}` : ''}.`;
    },
  });
  const side = () => f.values().side;
  const toUser = f.el.querySelector('.field-to_username');
  const drawSide = () => {
    toUser.hidden = side() !== 'sell';
    f.button.textContent = side() === 'buy' ? 'Buy' : 'Sell';
    update();
  };
  function update() {
    const { currency, amount } = f.values();
    const rate = rates.get(currency);
    const held = wallets.find((w) => w.currency === currency);
    const dollars = wallets.find((w) => w.currency === 'USD');
    const parts = [];
    if (rate) {
      parts.push(`1 ${currency} = ${usd(rate.price_usd)}`);
      const n = Number(amount);
      if (amount && Number.isFinite(n) && n > 0) parts.push(`≈ ${money((n * Number(rate.price_usd)).toFixed(2), 'USD')}`);
    }
    if (side() === 'buy') parts.push(dollars ? `you have ${money(dollars.balance, 'USD')}` : 'you need a USD wallet to buy');
    else parts.push(held ? `you have ${money(held.balance, currency)}` : `you have no ${currency}`);
    estimate.textContent = parts.join(' · ');
  }
  f.el.addEventListener('input', update);
  f.el.addEventListener('change', drawSide);
  drawSide();
  return {
    el: f.el,
    estimate: update,
    setWallets(list) {
      wallets = list;
      update();
    },
  };
}

const TYPES = ['deposit', 'withdrawal', 'transfer', 'buy', 'sell', 'bet_stake', 'bet_payout', 'fee'];

export async function transactionsPage(view, { query }) {
  view.append(h('h1', { text: 'Transactions' }));
  const wallets = (await get('/wallets')).items;
  const walletSelect = h(
    'select',
    { id: 'history-wallet', name: 'wallet' },
    h('option', { value: '', text: 'All wallets' }),
    wallets.map((w) => h('option', { value: w.id, text: `${w.currency} · ${w.wallet_number}`, selected: w.id === query.get('wallet') })),
  );
  const typeSelect = h(
    'select',
    { id: 'history-type', name: 'type' },
    h('option', { value: '', text: 'All types' }),
    TYPES.map((t) => h('option', { value: t, text: label(t), selected: t === query.get('type') })),
  );
  const list = h('div', { class: 'history' });
  const more = h('button', { type: 'button', class: 'secondary', text: 'Load more', hidden: true });
  const status = h('div', { class: 'form-status' });
  let cursor = null;
  let rows = [];

  const columns = [
    { label: 'When', cell: (t) => when(t.created_at) },
    { label: 'Type', cell: (t) => h('span', { class: `type type-${t.type}`, text: label(t.type) }) },
    { label: 'Wallet', cell: (t) => `${t.currency} · ${t.wallet_number}` },
    { label: 'Amount', class: 'num', cell: (t) => h('span', { class: Number(t.amount) < 0 ? 'down' : 'up', text: money(t.amount, t.currency, { sign: true }) }) },
    {
      label: 'Other side',
      cell: (t) =>
        t.counterparty_currency || t.counterparty_wallet_number
          ? [t.counterparty_amount ? money(String(t.counterparty_amount).replace(/^-/, ''), t.counterparty_currency) : t.counterparty_currency || '', t.counterparty_wallet_number ? ` · ${t.counterparty_wallet_number}` : '']
          : '—',
    },
    { label: 'Rate', class: 'num', cell: (t) => (t.rate ? number(t.rate) : '—') },
  ];

  async function load(reset) {
    if (reset) {
      cursor = null;
      rows = [];
    }
    const walletId = walletSelect.value;
    const path = walletId ? `/wallets/${walletId}/transactions` : '/transactions';
    try {
      const page = await get(path, { type: typeSelect.value, limit: 25, cursor });
      rows = rows.concat(page.items);
      cursor = page.next_cursor;
      replace(list, table(columns, rows, { empty: 'No transactions yet.', rowAttrs: (t) => ({ dataset: { type: t.type } }) }));
      more.hidden = !cursor;
      status.replaceChildren();
    } catch (error) {
      status.replaceChildren(notice('error', error.detail || String(error)));
    }
  }
  walletSelect.addEventListener('change', () => load(true));
  typeSelect.addEventListener('change', () => load(true));
  more.addEventListener('click', () => load(false));
  view.append(
    card(
      null,
      h('div', { class: 'filters' }, h('label', { for: 'history-wallet', text: 'Wallet' }), walletSelect, h('label', { for: 'history-type', text: 'Type' }), typeSelect),
      status,
      list,
      h('div', { class: 'actions' }, more),
    ),
  );
  await load(true);
  if (session.user && !wallets.length) list.prepend(notice('info', 'Open a wallet on the Wallets page to get started.'));
}

