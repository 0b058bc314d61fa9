// The profile's webhook endpoints: register one (the signing secret is shown
// once), list them, delete one, and see an endpoint's recent deliveries with
// every attempt, re-sending one.

import { api, get, post } from '../api.js';
import { card, h, notice, replace, table } from '../dom.js';
import { when } from '../format.js';

const EVENTS = [
  ['alert.triggered', 'A price alert triggered'],
  ['bet.settled', 'A bet settled (liquidations included)'],
  ['order.cleared', 'An order cleared with the exchange'],
  ['wallet.blocked', 'A wallet blocked for an unpaid fee'],
  ['transfer.received', 'A transfer received'],
];

export function webhooksCard() {
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const listBox = h('div', { id: 'webhooks' });
  const deliveriesBox = h('div', { id: 'webhook-deliveries' });
  const url = h('input', { id: 'webhook-url', name: 'url', type: 'url', autocomplete: 'off', 'aria-describedby': 'webhook-url-error' });
  const urlError = h('small', { class: 'field-error', id: 'webhook-url-error', hidden: true });
  const eventsError = h('small', { class: 'field-error', id: 'webhook-events-error', hidden: true });
  const boxes = EVENTS.map(([value, label]) => {
    const id = `webhook-event-${value.replace('.', '-')}`;
    return { value, input: h('input', { type: 'checkbox', id, name: 'events', value }), label: h('label', { for: id, text: label }) };
  });

  function showError(el, text) {
    el.textContent = text || '';
    el.hidden = !text;
  }

  async function load() {
    try {
      const page = await get('/webhooks');
      replace(
        listBox,
        table(
          [
            { label: 'URL', cell: (w) => h('span', { class: 'mono small', text: w.url }) },
            { label: 'Events', cell: (w) => w.events.join(', ') },
            { label: 'State', cell: (w) => h('span', { class: `badge ${w.enabled ? 'ok' : 'bad'}`, title: w.disabled_reason || '', text: w.enabled ? 'enabled' : 'disabled' }) },
            { label: 'Added', cell: (w) => when(w.created_at) },
            { label: '', class: 'row-actions', cell: (w) => [deliveriesButton(w), ' ', deleteButton(w)] },
          ],
          page.items,
          { empty: 'No webhook endpoints yet.', compact: true, rowAttrs: (w) => ({ dataset: { webhookId: w.id } }) },
        ),
      );
    } catch (error) {
      status.replaceChildren(notice('error', error.detail || String(error)));
    }
  }

  function attemptsText(d) {
    if (!d.attempts.length) return 'none yet';
    const last = d.attempts[d.attempts.length - 1];
    const answer = last.status_code ?? last.error;
    return `${d.attempts.length} (last: ${answer}, ${last.duration_ms} ms)`;
  }

  // The endpoint whose deliveries are shown; the list refreshes itself
  // every few seconds while it is on the page.
  let shown = null;
  let refresh = null;

  async function showDeliveries(w) {
    shown = w.id;
    clearTimeout(refresh);
    refresh = setTimeout(() => {
      if (deliveriesBox.isConnected && shown === w.id) showDeliveries(w);
    }, 2000);
    try {
      const page = await get(`/webhooks/${encodeURIComponent(w.id)}/deliveries?limit=20`);
      replace(
        deliveriesBox,
        h('h3', { text: `Recent deliveries to ${w.url}` }),
        table(
          [
            { label: 'Event', cell: (d) => h('span', { class: 'mono small', title: d.event_id, text: d.event_type }) },
            { label: 'Status', cell: (d) => h('span', { class: `badge ${d.status === 'delivered' ? 'ok' : d.status === 'failed' ? 'bad' : ''}`, text: d.status }) },
            { label: 'Attempts', cell: (d) => attemptsText(d) },
            { label: 'Created', cell: (d) => when(d.created_at) },
            { label: '', class: 'row-actions', cell: (d) => resendButton(w, d) },
          ],
          page.items,
          { empty: 'No deliveries yet.', compact: true, rowAttrs: (d) => ({ dataset: { deliveryId: d.id } }) },
        ),
      );
    } catch (error) {
      status.replaceChildren(notice('error', error.detail || String(error)));
    }
  }

  function deliveriesButton(w) {
    const button = h('button', { type: 'button', class: 'small', text: 'Deliveries', 'aria-label': `Deliveries to ${w.url}` });
    button.addEventListener('click', () => showDeliveries(w));
    return button;
  }

  function resendButton(w, d) {
    const button = h('button', { type: 'button', class: 'small', text: 'Resend', 'aria-label': `Resend the ${d.event_type} event` });
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await post(`/webhooks/${encodeURIComponent(w.id)}/deliveries/${encodeURIComponent(d.id)}/resend`, {});
        status.replaceChildren(notice('ok', `The ${d.event_type} event is queued to be sent again.`));
        await showDeliveries(w);
      } catch (error) {
        button.disabled = false;
        status.replaceChildren(notice('error', error.detail || String(error)));
      }
    });
    return button;
  }

  function deleteButton(w) {
    const button = h('button', { type: 'button', class: 'danger small', text: 'Delete', 'aria-label': `Delete the webhook to ${w.url}` });
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await api('DELETE', `/webhooks/${encodeURIComponent(w.id)}`);
        if (shown === w.id) {
          shown = null;
          deliveriesBox.replaceChildren();
        }
        status.replaceChildren(notice('ok', `Deleted the webhook to ${w.url}.`));
        await load();
      } catch (error) {
        button.disabled = false;
        status.replaceChildren(notice('error', error.detail || String(error)));
      }
    });
    return button;
  }

  const submit = h('button', { type: 'submit', class: 'primary', text: 'Add webhook' });
  const formEl = h(
    'form',
    { name: 'webhook', novalidate: true },
    h('div', { class: 'field field-url' }, h('label', { for: 'webhook-url', class: 'label', text: 'Endpoint URL' }), url, h('small', { class: 'hint', text: 'An https URL whose host is a public address.' }), urlError),
    h('fieldset', { class: 'field field-events' }, h('legend', { class: 'label', text: 'Events' }), boxes.map((b) => h('div', { class: 'check' }, b.input, ' ', b.label)), eventsError),
    h('div', { class: 'actions' }, submit),
  );
  formEl.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(urlError, '');
    showError(eventsError, '');
    submit.disabled = true;
    try {
      const created = await post('/webhooks', { url: url.value.trim(), events: boxes.filter((b) => b.input.checked).map((b) => b.value) });
      url.value = '';
      for (const b of boxes) b.input.checked = false;
      status.replaceChildren(
        notice('ok', 'Webhook added. Its signing secret, shown only now: ', h('code', { id: 'webhook-secret', text: created.secret })),
      );
      await load();
    } catch (error) {
      showError(urlError, error.errors?.url);
      showError(eventsError, error.errors?.events);
      status.replaceChildren(notice('error', error.detail || String(error)));
    } finally {
      submit.disabled = false;
    }
  });
  load();
  return card('Webhooks', h('p', { class: 'muted small', text: 'Events POSTed to your server, signed with a secret shown once, retried for a day.' }), formEl, status, listBox, deliveriesBox);
}
