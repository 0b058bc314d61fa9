// What every view shares: the signed-in user, the live prices (one
// EventSource on /rates/stream for the whole page), navigation and
// one-shot messages carried to the next view.

import { get, mayHaveSession } from './api.js';
import { CURRENCIES } from './format.js';

export const session = { user: null };
const userListeners = new Set();

export function onUserChange(callback) {
  userListeners.add(callback);
  return () => userListeners.delete(callback);
}

export function setUser(user) {
  session.user = user;
  for (const callback of userListeners) callback(user);
}

/** Reads GET /me (null when signed out). */
export async function loadUser() {
  if (!mayHaveSession()) {
    setUser(null);
    return null;
  }
  try {
    setUser(await get('/me'));
  } catch (error) {
    if (error.status === 401 || error.status === 403) setUser(null);
    else throw error;
  }
  return session.user;
}

/** Goes to `#path` (re-rendering even when it is the current one). */
export function navigate(path) {
  const target = `#${path}`;
  if (window.location.hash === target) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else window.location.hash = target;
}

let flashed = null;
/** A message for the next view to show once. */
export function flash(kind, text) {
  flashed = { kind, text };
}
export function takeFlash() {
  const message = flashed;
  flashed = null;
  return message;
}

// Live prices.
const prices = new Map();
const priceListeners = new Set();
let streamStatus = 'connecting';
const order = (a, b) => {
  const ia = CURRENCIES.indexOf(a.symbol);
  const ib = CURRENCIES.indexOf(b.symbol);
  return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.symbol.localeCompare(b.symbol);
};

export const rates = {
  get: (symbol) => prices.get(symbol),
  list: () => [...prices.values()].sort(order),
  status: () => streamStatus,
  /** callback(updated rates) on every refresh; returns an unsubscribe function. */
  subscribe(callback) {
    priceListeners.add(callback);
    return () => priceListeners.delete(callback);
  },
};

function notify(updated) {
  for (const callback of priceListeners) {
    try {
      callback(updated);
    } catch (error) {
      console.error(error);
    }
  }
}

export async function startPrices() {
  try {
    const list = await get('/rates');
    for (const item of list.items) prices.set(item.symbol, item);
  } catch (error) {
    console.warn('rates unavailable', error);
  }
  notify([]);
  const source = new EventSource('/api/v1/rates/stream');
  source.addEventListener('open', () => {
    streamStatus = 'live';
    notify([]);
  });
  source.addEventListener('error', () => {
    // EventSource reconnects by itself.
    streamStatus = 'reconnecting';
    notify([]);
  });
  source.addEventListener('rates', (event) => {
    let updated;
    try {
      updated = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!Array.isArray(updated)) return;
    const changed = [];
    for (const rate of updated) {
      const known = prices.get(rate.symbol);
      if (known && known.as_of === rate.as_of) continue;
      // A new observation is fresh by definition; the flag from GET /rates
      // only matters for prices that stopped moving.
      const next = { ...rate, fresh: true };
      prices.set(rate.symbol, next);
      changed.push(next);
    }
    streamStatus = 'live';
    notify(changed);
  });
}
