// The page's shell: header and navigation, the router (views are chosen by
// the URL fragment, `#/wallets`), and start-up.

import { post, whenSessionEnds } from './api.js';
import { h, notice, replace } from './dom.js';
import * as account from './pages/account.js';
import * as admin from './pages/admin.js';
import * as market from './pages/market.js';
import * as money from './pages/money.js';
import { flash, loadUser, navigate, onUserChange, rates, session, setUser, startPrices, takeFlash } from './state.js';

const ROUTES = [
  { path: '/', view: market.ratesPage, title: 'Markets' },
  { path: '/register', view: account.registerPage, title: 'Create an account' },
  { path: '/verify', view: account.verifyPage, title: 'Verify your email' },
  { path: '/login', view: account.loginPage, title: 'Log in' },
  { path: '/reset', view: account.resetPage, title: 'Reset your password' },
  { path: '/wallets', view: money.walletsPage, title: 'Wallets', auth: true },
  { path: '/transactions', view: money.transactionsPage, title: 'Transactions', auth: true },
  { path: '/bets', view: market.betsPage, title: 'Bets', auth: true },
  { path: '/bets/:id', view: market.betPage, title: 'Bet', auth: true },
  { path: '/alerts', view: market.alertsPage, title: 'Price alerts', auth: true },
  { path: '/profile', view: account.profilePage, title: 'Profile', auth: true },
  { path: '/admin/jobs', view: admin.jobsPage, title: 'Jobs', auth: true, admin: true },
];

const NAV_SIGNED_IN = [
  ['/', 'Markets'],
  ['/wallets', 'Wallets'],
  ['/transactions', 'History'],
  ['/bets', 'Bets'],
  ['/alerts', 'Alerts'],
  ['/profile', 'Profile'],
];
const NAV_SIGNED_OUT = [
  ['/', 'Markets'],
  ['/login', 'Log in'],
  ['/register', 'Register'],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const sessionBox = document.getElementById('session');
const banner = document.getElementById('banner');
const live = document.getElementById('live');

function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(query) };
}

function match(path) {
  for (const route of ROUTES) {
    const want = route.path.split('/');
    const got = path.split('/');
    if (want.length !== got.length) continue;
    const params = {};
    if (want.every((part, i) => (part.startsWith(':') ? ((params[part.slice(1)] = decodeURIComponent(got[i])), true) : part === got[i]))) {
      return { route, params };
    }
  }
  return null;
}

function drawHeader() {
  const { path } = parseHash();
  const user = session.user;
  const items = user ? [...NAV_SIGNED_IN, ...(user.role === 'admin' ? [['/admin/jobs', 'Jobs']] : [])] : NAV_SIGNED_OUT;
  const section = (p) => (p === '/' ? '/' : `/${p.split('/')[1]}`);
  replace(
    nav,
    items.map(([href, text]) =>
      h('a', {
        href: `#${href}`,
        text,
        'aria-current': section(path) === section(href) ? 'page' : null,
      }),
    ),
  );
  replace(
    sessionBox,
    user
      ? [
          h('span', { class: 'who', title: user.email, text: user.username }),
          h('button', { type: 'button', class: 'link', id: 'logout', text: 'Log out', onclick: logout }),
        ]
      : [],
  );
  const unverified = user && !user.email_verified;
  banner.hidden = !unverified;
  if (unverified) {
    replace(
      banner,
      'Your email address is not verified yet: deposits, transfers, trades and bets are refused until it is. ',
      h('a', { href: `#/verify?email=${encodeURIComponent(user.email)}`, text: 'Verify it now' }),
    );
  }
}

function drawLive() {
  const status = rates.status();
  live.className = `stream ${status}`;
  live.textContent = status === 'live' ? 'Live' : status === 'reconnecting' ? 'Reconnecting…' : 'Connecting…';
}

async function logout() {
  try {
    await post('/auth/logout');
  } catch (error) {
    console.warn('logout', error);
  }
  setUser(null);
  flash('ok', 'You are logged out.');
  navigate('/login');
}

let cleanups = [];
let rendering = 0;

async function render() {
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch (error) {
      console.error(error);
    }
  }
  cleanups = [];
  rendering += 1;
  const ticket = rendering;
  const { path, query } = parseHash();
  drawHeader();
  const view = h('div', { class: 'view' });
  replace(main, view);
  const found = match(path);
  if (!found) {
    document.title = 'Not found · Bourse';
    replace(view, h('h1', { text: 'Not found' }), h('p', {}, 'There is no such page. ', h('a', { href: '#/', text: 'Go to the markets' })));
    return;
  }
  const { route, params } = found;
  if (route.auth && !session.user) {
    const next = `${path}${query.toString() ? `?${query}` : ''}`;
    flash('info', 'Log in to continue.');
    navigate(`/login?next=${encodeURIComponent(next)}`);
    return;
  }
  document.title = `${route.title} · Bourse`;
  const message = takeFlash();
  if (message) view.append(notice(message.kind, message.text));
  if (route.admin && session.user.role !== 'admin') {
    view.append(h('h1', { text: route.title }), notice('error', 'This page is for administrators only.'));
    return;
  }
  const ctx = {
    params,
    query,
    cleanup: (fn) => cleanups.push(fn),
    isCurrent: () => ticket === rendering,
  };
  try {
    await route.view(view, ctx);
  } catch (error) {
    if (ticket !== rendering) return;
    console.error(error);
    view.append(notice('error', `This page could not be loaded: ${error.detail || error.message}`));
  }
  if (ticket === rendering) window.scrollTo(0, 0);
}

whenSessionEnds(() => {
  if (!session.user) return;
  setUser(null);
  flash('info', 'Your session has ended; log in again.');
  navigate('/login');
});

// The skip link focuses the content instead of changing the route.
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

onUserChange(drawHeader);
window.addEventListener('hashchange', render);
rates.subscribe(drawLive);

async function start() {
  drawLive();
  startPrices();
  try {
    await loadUser();
  } catch (error) {
    replace(main, notice('error', `Bourse cannot be reached right now: ${error.detail || error.message}`));
    return;
  }
  await render();
}

start();
