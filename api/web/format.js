// Numbers and times in the reader's locale. Amounts arrive as decimal
// strings with exactly their currency's places; Intl.NumberFormat formats
// strings exactly (no float rounding), so they are passed as they are.

/** Decimal places per currency (the `currencies` table: fiat 2, crypto 8). */
const PLACES = { USD: 2, EUR: 2, KZT: 2, BTC: 8, ETH: 8, SOL: 8 };
const FIAT = new Set(['USD', 'EUR', 'KZT']);
const NAMES = {
  USD: 'US dollar',
  EUR: 'Euro',
  KZT: 'Kazakhstani tenge',
  BTC: 'Bitcoin',
  ETH: 'Ether',
  SOL: 'Solana',
};

export const CRYPTO = ['BTC', 'ETH', 'SOL'];
export const CURRENCIES = ['USD', 'EUR', 'KZT', ...CRYPTO];

export const isFiat = (code) => FIAT.has(code);
export const currencyName = (code) => NAMES[code] || code;

/** Places of `code`; an unknown currency keeps the places it was sent with. */
export function places(code, sample) {
  if (code in PLACES) return PLACES[code];
  const text = String(sample ?? '');
  return text.includes('.') ? text.split('.')[1].length : 2;
}

const cache = new Map();
function formatter(key, options) {
  if (!cache.has(key)) cache.set(key, new Intl.NumberFormat(undefined, options));
  return cache.get(key);
}

/**
 * "1000.00" USD → "$1,000.00"; "0.00100000" BTC → "0.00100000 BTC".
 * `sign`: show + for positive amounts (history).
 */
export function money(amount, code, { sign = false } = {}) {
  if (amount === null || amount === undefined || amount === '') return '—';
  const p = places(code, amount);
  const signDisplay = sign ? 'exceptZero' : 'auto';
  if (isFiat(code)) {
    return formatter(`fiat:${code}:${p}:${signDisplay}`, {
      style: 'currency',
      currency: code,
      minimumFractionDigits: p,
      maximumFractionDigits: p,
      signDisplay,
    }).format(amount);
  }
  const number = formatter(`plain:${p}:${signDisplay}`, {
    minimumFractionDigits: p,
    maximumFractionDigits: p,
    signDisplay,
  }).format(amount);
  return `${number}\u00a0${code}`;
}

/** A USD price with as many places as its size calls for. */
export function usd(price) {
  if (price === null || price === undefined || price === '') return '—';
  const value = Math.abs(Number(price));
  const digits = value >= 1000 ? 2 : value >= 1 ? 4 : value >= 0.01 ? 6 : 8;
  return formatter(`usd:${digits}`, {
    style: 'currency',
    currency: 'USD',
    minimumFractionDigits: 2,
    maximumFractionDigits: digits,
  }).format(price);
}

/** A plain number (rates, counts). */
export function number(value, maxDigits = 8) {
  if (value === null || value === undefined || value === '') return '—';
  return formatter(`num:${maxDigits}`, { maximumFractionDigits: maxDigits }).format(value);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

export const when = (iso) => (iso ? dateTime.format(new Date(iso)) : '—');
export const clock = (iso) => (iso ? timeOnly.format(new Date(iso)) : '—');

/** "in 7 s", "3 min ago". */
export function relative(iso, now = Date.now()) {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  // Clocks differ a little between here and the server.
  if (abs < 2) return 'just now';
  const [value, unit] =
    abs < 60 ? [abs, 's'] : abs < 3600 ? [Math.round(abs / 60), 'min'] : abs < 86400 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'd'];
  return seconds >= 0 ? `in ${value} ${unit}` : `${value} ${unit} ago`;
}

/** 10 → "10 s", 3600 → "1 h". */
export function duration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** "transfer" → "Transfer", "bet_payout" → "Bet payout". */
export function label(code) {
  const text = String(code || '').replace(/_/g, ' ');
  return text ? text[0].toUpperCase() + text.slice(1) : '';
}
