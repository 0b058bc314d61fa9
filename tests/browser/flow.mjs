// The web page end to end in Debian's headless Chromium, driven by
// playwright-core: register → verify with the emailed code → log in →
// USD wallet → deposit → buy BTC → transfer with a quote → a 10 s bet seen
// settling → an alert created and deleted → profile, a webhook added (an
// order cleared is delivered to it, seen in its deliveries, resent) and
// deleted → phone-sized views →
// log out → the admin's jobs page (throughput chart, scheduled jobs,
// dead jobs one at a time and in bulk). A screenshot of every page goes to
// ARTIFACTS_DIR.
//
// Run by tests/tests/e2e/web.rs, which starts the system and passes:
//   BASE_URL        the API (serving the page at /)
//   MAIL_URL        GET ?to=ADDRESS → {subject, text} of the newest mail to it (404: none yet)
//   ADMIN_LOGIN, ADMIN_PASSWORD
//   PAYEE_WALLET    another user's wallet number, PAYEE_CURRENCY its currency
//   HOOK_URL        a webhook receiver the test runs
//   ARTIFACTS_DIR   where screenshots go (default target/browser-artifacts)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   DEAD_PROBES     dead jobs waiting in the probe queue (optional)
//
// Every wait is Playwright's auto-waiting or a poll with a deadline; no
// fixed sleeps.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

function setting(name, fallback) {
  const value = process.env[name] || fallback;
  if (!value) {
    console.error(`error: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const BASE_URL = setting('BASE_URL').replace(/\/$/, '');
const MAIL_URL = setting('MAIL_URL');
const ADMIN_LOGIN = setting('ADMIN_LOGIN');
const ADMIN_PASSWORD = setting('ADMIN_PASSWORD');
const PAYEE_WALLET = setting('PAYEE_WALLET');
const PAYEE_CURRENCY = setting('PAYEE_CURRENCY', 'EUR');
// A webhook receiver the test runs (on this machine: the test admits
// private addresses for it).
const HOOK_URL = setting('HOOK_URL');
const ARTIFACTS = path.resolve(setting('ARTIFACTS_DIR', 'target/browser-artifacts'));
const CHROMIUM = setting('CHROMIUM', '/usr/bin/chromium');
const TIMEOUT = Number(process.env.STEP_TIMEOUT_MS || 20_000);
// Dead jobs the test made in the probe queue (always failing): with two or
// more, the flow retries one and discards another.
const DEAD_PROBES = Number(process.env.DEAD_PROBES || 0);

const suffix = Math.random().toString(36).slice(2, 8);
const user = { username: `carol_${suffix}`, email: `carol_${suffix}@example.com`, password: 'correct horse battery' };

const problems = [];
let shots = 0;
const started = Date.now();

function step(text) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);
}

async function snap(page, name) {
  shots += 1;
  const file = path.join(ARTIFACTS, `${String(shots).padStart(2, '0')}-${name}.png`);
  // From the top, so the sticky header sits where it belongs.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage: true });
  step(`screenshot ${path.relative(process.cwd(), file)}`);
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** Polls `probe` until it returns a value, or fails after `timeout` ms. */
async function eventually(what, probe, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function verificationCode(address) {
  const mail = await eventually(`the verification email to ${address}`, async () => {
    const response = await fetch(`${MAIL_URL}?to=${encodeURIComponent(address)}`);
    return response.ok ? response.json() : null;
  });
  const code = `${mail.subject}\n${mail.text}`.match(/\b(\d{6})\b/);
  check(code, `a six-digit code in the email: ${mail.subject}`);
  return code[1];
}

const nav = (page, name) => page.locator('#nav').getByRole('link', { name, exact: true }).click();
const text = async (locator) => (await locator.textContent()).trim();

async function run(page) {
  step(`page at ${BASE_URL}/`);
  await page.goto(`${BASE_URL}/`);
  await page.locator('#rates-table tr[data-symbol="BTC"] .price').waitFor();
  await page.locator('#rates-chart svg .chart-line').waitFor({ state: 'attached' });
  await page.locator('#live.live').waitFor();
  check((await text(page.locator('#rates-table tr[data-symbol="BTC"] .price'))).startsWith('$'), 'BTC is priced in dollars');
  await page.locator('form[name=convert] button[type=submit]').click();
  await page.locator('form[name=convert] .notice.ok').filter({ hasText: '$100.00 =' }).waitFor();
  await snap(page, 'markets');

  step('register (a short password first: the error shows under the field)');
  await nav(page, 'Register');
  const register = page.locator('form[name=register]');
  await register.getByLabel('Username', { exact: true }).fill(user.username);
  await register.getByLabel('Email', { exact: true }).fill(user.email);
  await register.getByLabel('Password', { exact: true }).fill('short');
  await register.getByRole('button', { name: 'Create account' }).click();
  await register.locator('.field-password .field-error').filter({ hasText: 'at least 8 characters' }).waitFor();
  await register.locator('.notice.error').waitFor();
  await snap(page, 'register-error');
  await register.getByLabel('Password', { exact: true }).fill(user.password);
  await register.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(/#\/verify\?/);

  step('verify with the code from the email');
  const code = await verificationCode(user.email);
  const verify = page.locator('form[name=verify]');
  check((await verify.getByLabel('Email', { exact: true }).inputValue()) === user.email, 'the email is filled in');
  await verify.getByLabel('Code', { exact: true }).fill(code);
  await snap(page, 'verify');
  await verify.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(/#\/login\?/);
  await page.locator('.notice.ok').filter({ hasText: 'verified' }).waitFor();

  step('log in');
  const login = page.locator('form[name=login]');
  check((await login.getByLabel('Username or email', { exact: true }).inputValue()) === user.username, 'the username is filled in');
  await login.getByLabel('Password', { exact: true }).fill(user.password);
  await snap(page, 'login');
  await login.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/#\/wallets$/);
  await page.locator('#session .who').filter({ hasText: user.username }).waitFor();

  step('open a USD wallet and deposit');
  const open = page.locator('form[name=open-wallet]');
  await open.getByLabel('Currency', { exact: true }).selectOption('USD');
  await open.getByRole('button', { name: 'Open wallet' }).click();
  const usdCard = page.locator('.wallet[data-currency="USD"]');
  await usdCard.waitFor();
  await usdCard.getByRole('button', { name: 'Deposit' }).click();
  await usdCard.getByLabel('Amount (USD)', { exact: true }).fill('1000');
  await usdCard.locator('form[name=deposit]').getByRole('button', { name: 'Deposit' }).click();
  await usdCard.locator('.balance').filter({ hasText: '$1,000.00' }).waitFor();
  await usdCard.locator('.notice.ok').filter({ hasText: 'Deposited $1,000.00' }).waitFor();

  step('withdraw too much: the refusal shows next to the form');
  await usdCard.getByRole('button', { name: 'Withdraw' }).click();
  await usdCard.getByLabel('Amount (USD)', { exact: true }).fill('5000');
  await usdCard.locator('form[name=withdraw]').getByRole('button', { name: 'Withdraw' }).click();
  await usdCard.locator('form[name=withdraw] .notice.error').filter({ hasText: /insufficient/i }).waitFor();
  await snap(page, 'withdraw-refused');

  step('buy BTC');
  const trade = page.locator('form[name=trade]');
  await trade.getByLabel('Crypto', { exact: true }).selectOption('BTC');
  await trade.getByLabel('Amount (in the crypto)', { exact: true }).fill('0.001');
  await trade.locator('.estimate').filter({ hasText: '≈ $' }).waitFor();
  await trade.getByRole('button', { name: 'Buy' }).click();
  await trade.locator('.notice.ok').filter({ hasText: 'Bought 0.00100000 BTC for $' }).waitFor();
  const btcCard = page.locator('.wallet[data-currency="BTC"]');
  await btcCard.locator('.balance').filter({ hasText: '0.00100000 BTC' }).waitFor();
  const afterBuy = await text(usdCard.locator('.balance'));
  check(afterBuy !== '$1,000.00' && afterBuy.startsWith('$'), `USD paid for the BTC (balance ${afterBuy})`);
  await snap(page, 'wallets');

  step(`transfer 25 USD to ${PAYEE_CURRENCY} wallet ${PAYEE_WALLET}, quote first`);
  await usdCard.getByRole('button', { name: 'Transfer' }).click();
  const transfer = usdCard.locator('form[name=transfer]');
  await transfer.getByLabel('To wallet number', { exact: true }).fill(PAYEE_WALLET);
  await transfer.getByLabel('Amount (USD)', { exact: true }).fill('25');
  await transfer.getByLabel('Currency of that wallet', { exact: true }).selectOption(PAYEE_CURRENCY);
  await transfer.getByRole('button', { name: 'Review transfer' }).click();
  const quote = transfer.locator('.quote');
  await quote.waitFor();
  check((await text(quote.locator('.quote-sent'))) === '$25.00', 'the quote shows what is sent');
  const quoted = await text(quote.locator('.quote-received'));
  check(/\d/.test(quoted) && !quoted.startsWith('$'), `the quote converts into ${PAYEE_CURRENCY}: ${quoted}`);
  await snap(page, 'transfer-quote');
  await quote.getByRole('button', { name: 'Confirm transfer' }).click();
  await transfer.locator('.notice.ok').filter({ hasText: `Sent $25.00 to wallet ${PAYEE_WALLET}; they received` }).waitFor();
  await eventually('the USD balance after the transfer', async () => (await text(usdCard.locator('.balance'))) !== afterBuy);
  await snap(page, 'transfer-done');

  step('transaction history');
  await nav(page, 'History');
  for (const type of ['deposit', 'buy', 'transfer']) {
    await page.locator(`.history tr[data-type="${type}"]`).first().waitFor();
  }
  await snap(page, 'transactions');

  step('place a 10 s bet and watch it settle');
  await nav(page, 'Bets');
  const bet = page.locator('form[name=bet]');
  await bet.getByLabel('Currency', { exact: true }).selectOption('BTC');
  await bet.locator('label', { hasText: 'Up' }).click();
  await bet.getByLabel('Stake (USD)', { exact: true }).fill('10');
  await bet.getByLabel('Leverage', { exact: true }).fill('5');
  await bet.getByLabel('Duration', { exact: true }).selectOption('10');
  // The liquidation price is shown before the user confirms.
  await page.locator('.estimate').filter({ hasText: 'liquidated at about $' }).waitFor();
  await bet.getByRole('button', { name: 'Place bet' }).click();
  await page.waitForURL(/#\/bets\/[0-9a-f-]{36}$/);
  // (a horizontal SVG line has no height: Playwright calls it hidden)
  await page.locator('#bet-chart svg .chart-start').waitFor({ state: 'attached' });
  await page.locator('#bet-chart svg .chart-start-label').filter({ hasText: 'start $' }).waitFor();
  await page.locator('#bet-chart svg .chart-liquidation').waitFor({ state: 'attached' });
  await page.locator('#bet-chart svg .chart-liquidation-label').filter({ hasText: 'liquidation $' }).waitFor();
  await page.locator('#bet-chart svg .chart-due').waitFor({ state: 'attached' });
  await page.locator('#bet-chart svg .chart-due-label').filter({ hasText: 'due ' }).waitFor();
  await page.locator('#bet-outcome[data-status="open"]').waitFor();
  await snap(page, 'bet-open');
  await page.locator('#bet-outcome[data-status="settled"]').waitFor({ timeout: 60_000 });
  await page.locator('#bet-chart svg .chart-end').waitFor();
  const outcome = await text(page.locator('#bet-outcome .outcome-title'));
  check(/^(Won|Lost|Draw)/.test(outcome), `an outcome is shown: ${outcome}`);
  step(`bet settled: ${outcome}`);
  await snap(page, 'bet-settled');
  await page.getByRole('link', { name: '← All bets' }).click();
  await page.locator('#bet-list tr[data-status="settled"]').first().waitFor();
  await snap(page, 'bets');

  step('a ×100 bet is liquidated when the price reaches its liquidation price');
  await bet.getByLabel('Currency', { exact: true }).selectOption('BTC');
  await bet.locator('label', { hasText: 'Down' }).click();
  await bet.getByLabel('Stake (USD)', { exact: true }).fill('10');
  await bet.getByLabel('Leverage', { exact: true }).fill('100');
  await bet.getByLabel('Duration', { exact: true }).selectOption('3600');
  await page.locator('.estimate').filter({ hasText: 'liquidated at about $' }).waitFor();
  await bet.getByRole('button', { name: 'Place bet' }).click();
  await page.waitForURL(/#\/bets\/[0-9a-f-]{36}$/);
  // The test's market then reaches the liquidation price (tests/tests/e2e/web.rs).
  await page.locator('#bet-outcome[data-status="settled"]').waitFor({ timeout: 60_000 });
  const liquidated = await text(page.locator('#bet-outcome .outcome-title'));
  check(liquidated === 'Liquidated', `the outcome says so: ${liquidated}`);
  const how = await text(page.locator('#bet-liquidated'));
  check(/^BTC reached \$[\d,.]+ at .+, at or past the liquidation price of \$[\d,.]+/.test(how), `with the time and price: ${how}`);
  await page.locator('#bet-chart svg .chart-end-label').filter({ hasText: 'liquidated $' }).waitFor();
  await snap(page, 'bet-liquidated');

  step('create and delete a price alert');
  await nav(page, 'Alerts');
  const alert = page.locator('form[name=alert]');
  await alert.getByLabel('Currency', { exact: true }).selectOption('BTC');
  await alert.getByLabel('Target price (USD)', { exact: true }).fill('abc');
  await alert.getByRole('button', { name: 'Create alert' }).click();
  await alert.locator('.field-target_price .field-error').waitFor();
  await alert.getByLabel('Target price (USD)', { exact: true }).fill('1000000');
  await alert.locator('label', { hasText: 'At or above' }).click();
  await alert.getByRole('button', { name: 'Create alert' }).click();
  await alert.locator('.notice.ok').filter({ hasText: 'Alert created: BTC above $1,000,000.00' }).waitFor();
  const row = page.locator('#alert-list tr[data-status="created"]', { hasText: '$1,000,000.00' });
  await row.waitFor();
  await snap(page, 'alerts');
  await row.getByRole('button', { name: /^Delete alert/ }).click();
  await page.locator('.notice.ok').filter({ hasText: 'Deleted the alert' }).waitFor();
  await row.waitFor({ state: 'detached' });
  await page.getByRole('tab', { name: 'Deleted' }).click();
  await page.locator('#alert-list tr[data-status="deleted"]', { hasText: '$1,000,000.00' }).waitFor();
  await snap(page, 'alerts-deleted');

  step('profile');
  await nav(page, 'Profile');
  const profile = page.locator('form[name=profile]');
  await profile.getByLabel('First name', { exact: true }).fill('Carol');
  await profile.getByRole('button', { name: 'Save' }).click();
  await profile.locator('.notice.ok').filter({ hasText: 'Saved.' }).waitFor();
  await snap(page, 'profile');

  step('add a webhook (a metadata address is refused), see its secret once, get an event, see and resend its delivery, delete it');
  const hook = page.locator('form[name=webhook]');
  await hook.getByLabel('Endpoint URL').fill('http://169.254.169.254/latest/meta-data');
  await page.locator('#webhook-event-order-cleared').check();
  await hook.getByRole('button', { name: 'Add webhook' }).click();
  await page.locator('#webhook-url-error').filter({ hasText: 'not a public address' }).waitFor();
  await hook.getByLabel('Endpoint URL').fill(HOOK_URL);
  await hook.getByRole('button', { name: 'Add webhook' }).click();
  const secret = await text(page.locator('#webhook-secret'));
  check(/^whsec_[0-9a-f]{64}$/.test(secret.trim()), `the signing secret is shown (${secret})`);
  await page.locator('#webhooks tr[data-webhook-id]', { hasText: HOOK_URL }).waitFor();
  await page.locator('#webhooks').getByRole('button', { name: `Deliveries to ${HOOK_URL}` }).click();
  await page.locator('#webhook-deliveries').filter({ hasText: `Recent deliveries to ${HOOK_URL}` }).filter({ hasText: 'No deliveries yet.' }).waitFor();
  // An order cleared with the exchange is an order.cleared event.
  await page.goto(`${BASE_URL}/#/wallets`);
  const tradeAgain = page.locator('form[name=trade]');
  await tradeAgain.getByLabel('Crypto', { exact: true }).selectOption('BTC');
  await tradeAgain.getByLabel('Amount (in the crypto)', { exact: true }).fill('0.001');
  await tradeAgain.locator('.estimate').filter({ hasText: '≈ $' }).waitFor();
  await tradeAgain.getByRole('button', { name: 'Buy' }).click();
  await tradeAgain.locator('.notice.ok').filter({ hasText: 'Bought 0.00100000 BTC for $' }).waitFor();
  await nav(page, 'Profile');
  const deliveriesButton = page.locator('#webhooks').getByRole('button', { name: `Deliveries to ${HOOK_URL}` });
  const delivered = page.locator('#webhook-deliveries tr[data-delivery-id]', { hasText: 'delivered' }).filter({ hasText: 'order.cleared' });
  // The clearing and the delivery run in the workers; the list refreshes
  // itself while it is shown.
  await deliveriesButton.click();
  await delivered.waitFor();
  check((await text(delivered)).includes('1 (last: 200'), 'one attempt, answered 200');
  await snap(page, 'profile-webhooks');
  await delivered.getByRole('button', { name: 'Resend the order.cleared event' }).click();
  await page.locator('.notice.ok').filter({ hasText: 'The order.cleared event is queued to be sent again.' }).waitFor();
  await page.locator('#webhook-deliveries tr[data-delivery-id]', { hasText: 'delivered' }).filter({ hasText: '2 (last: 200' }).waitFor();
  await page.locator('#webhooks').getByRole('button', { name: `Delete the webhook to ${HOOK_URL}` }).click();
  await page.locator('#webhooks').filter({ hasText: 'No webhook endpoints yet.' }).waitFor();

  step('an expired access token is renewed with the refresh cookie');
  await page.context().clearCookies({ name: 'bourse_access' });
  await page.goto(`${BASE_URL}/#/wallets`);
  await page.locator('.wallet[data-currency="USD"] .balance').waitFor();
  await page.locator('#session .who').filter({ hasText: user.username }).waitFor();
  const renewed = await page.context().cookies();
  check(renewed.some((c) => c.name === 'bourse_access'), 'a new access cookie was set');

  step('phone-sized screen');
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [hash, ready, name] of [
    ['#/', '#rates-chart svg .chart-axis', 'phone-markets'],
    ['#/wallets', '.wallet[data-currency="USD"]', 'phone-wallets'],
    ['#/transactions', '.history tr[data-type="transfer"]', 'phone-transactions'],
    ['#/bets', '#bet-list tr[data-status="settled"]', 'phone-bets'],
  ]) {
    await page.goto(`${BASE_URL}/${hash}`);
    await page.locator(ready).first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `${hash} fits a 390 px screen (overflows by ${overflow} px)`);
    await snap(page, name);
  }
  await page.setViewportSize({ width: 1280, height: 860 });

  step('log out, log in as the administrator, see the jobs page');
  await page.locator('#logout').click();
  await page.waitForURL(/#\/login$/);
  await page.locator('.notice.ok').filter({ hasText: 'logged out' }).waitFor();
  const adminLogin = page.locator('form[name=login]');
  await adminLogin.getByLabel('Username or email', { exact: true }).fill(ADMIN_LOGIN);
  await adminLogin.getByLabel('Password', { exact: true }).fill(ADMIN_PASSWORD);
  await adminLogin.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/#\/wallets$/);
  await nav(page, 'Jobs');
  await page.locator('#queues tr[data-queue="email"]').waitFor();
  await page.locator('#queues tr[data-queue="bet_settlement"]').waitFor();
  const done = await text(page.locator('#queues tr[data-queue="email"] .count-done'));
  check(Number(done.replace(/\D/g, '')) >= 1, `emails were sent (done: ${done})`);
  await page.locator('#workers tr[data-alive="true"]').first().waitFor();
  const inFlight = await text(page.locator('#workers tr[data-alive="true"] td.in-flight').first());
  check(/^\d+$/.test(inFlight.trim()), `a worker's jobs in flight are shown (${inFlight})`);

  step('the throughput chart shows the emails sent in the last hour');
  // The workers sample every second here; the page redraws every 10 s.
  await page.locator('#throughput-chart path.throughput-done[data-queue="email"]').waitFor();
  const emails = page.locator('#throughput-legend li[data-queue="email"]');
  check(Number(await emails.getAttribute('data-done')) >= 1, 'the legend counts the emails sent');
  await snap(page, 'admin-jobs');

  step('find the delayed probe job among the scheduled ones');
  await page.locator('#filter-job').fill('probe');
  await page.locator('#job-filters').getByRole('button', { name: 'Apply' }).click();
  const later = page.locator('#scheduled-jobs tr[data-waiting-in="outbox"]');
  await later.first().waitFor();
  check((await text(later.first())).includes('probe'), 'the delayed job is a probe');
  await page.locator('#filter-job').fill('');

  step('pause the order_clearing queue, then resume it');
  const clearing = () => page.locator('#queues tr[data-queue="order_clearing"]');
  await clearing().getByRole('button', { name: 'Pause order_clearing' }).click();
  await page.locator('.notice.ok').filter({ hasText: 'Queue order_clearing paused' }).waitFor();
  await page.locator('#queues tr[data-queue="order_clearing"][data-paused="true"] .queue-state').filter({ hasText: 'paused' }).waitFor();
  await snap(page, 'admin-queue-paused');
  await clearing().getByRole('button', { name: 'Resume order_clearing' }).click();
  await page.locator('.notice.ok').filter({ hasText: 'Queue order_clearing resumed.' }).waitFor();
  await page.locator('#queues tr[data-queue="order_clearing"][data-paused="false"] .queue-state').filter({ hasText: 'running' }).waitFor();

  if (DEAD_PROBES >= 2) {
    step('retry one dead job, discard another');
    await page.locator('#dead-queue').selectOption('probe');
    const rows = page.locator('#dead-jobs tr[data-job-id]');
    await eventually(`${DEAD_PROBES} dead probe jobs listed`, async () => {
      if ((await rows.count()) >= DEAD_PROBES) return true;
      await page.locator('#dead-reload').click();
      return false;
    });
    await page.locator('#queues tr[data-queue="probe"] .count-dead .badge').waitFor();
    await snap(page, 'admin-dead-jobs');
    const [retried, discarded] = await Promise.all([rows.nth(0).getAttribute('data-job-id'), rows.nth(1).getAttribute('data-job-id')]);
    await page.locator(`#dead-jobs tr[data-job-id="${retried}"]`).getByRole('button', { name: 'Retry' }).click();
    await page.locator('.notice.ok').filter({ hasText: `Job ${retried} is back on the probe queue.` }).waitFor();
    const discard = page.locator(`#dead-jobs tr[data-job-id="${discarded}"]`).getByRole('button', { name: /discard/i });
    await discard.click();
    await page.locator(`#dead-jobs tr[data-job-id="${discarded}"]`).getByRole('button', { name: 'Really discard?' }).click();
    await page.locator('.notice.ok').filter({ hasText: `Job ${discarded} discarded.` }).waitFor();
    await page.locator(`#dead-jobs tr[data-job-id="${discarded}"]`).waitFor({ state: 'detached' });
    await snap(page, 'admin-dead-jobs-handled');

    step('the retried job dies again; discard every dead job the filter matches');
    await page.locator('#filter-job').fill('probe');
    await page.locator('#filter-error').fill('WEB-DEAD');
    await eventually('the retried job dead again', async () => {
      await page.locator('#job-filters').getByRole('button', { name: 'Apply' }).click();
      return (await page.locator(`#dead-jobs tr[data-job-id="${retried}"]`).count()) === 1;
    });
    await page.locator('#dead-discard-matching').click();
    await page.locator('#dead-discard-matching').filter({ hasText: 'Really discard every match?' }).click();
    await page.locator('.notice.ok').filter({ hasText: '1 of 1 matching dead jobs discarded.' }).waitFor();
    await page.locator(`#dead-jobs tr[data-job-id="${retried}"]`).waitFor({ state: 'detached' });
    await page.locator('#dead-jobs').filter({ hasText: 'No dead jobs match.' }).waitFor();
    await snap(page, 'admin-dead-jobs-bulk');
  }
}

await mkdir(ARTIFACTS, { recursive: true });
step(`Chromium at ${CHROMIUM}, screenshots in ${ARTIFACTS}`);
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-quic',
    '--no-first-run',
    '--disable-component-update',
    '--disable-sync',
  ],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US', timezoneId: 'UTC' });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (error) => problems.push(`uncaught error in the page: ${error.message}`));
  page.on('console', (message) => {
    // Chromium logs every 4xx answer as a console error; the flow causes
    // some on purpose and the page shows them. Anything else is a bug
    // (a script error, a Content-Security-Policy violation).
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  page.on('response', (response) => {
    if (response.status() >= 500) problems.push(`${response.status()} from ${response.url()}`);
  });
  try {
    await run(page);
  } catch (error) {
    failed = true;
    console.error(`FAILED: ${error.stack || error}`);
    await snap(page, 'failure').catch(() => {});
  }
} finally {
  await browser.close();
}
if (problems.length) {
  failed = true;
  console.error(`problems seen in the browser:\n  ${problems.join('\n  ')}`);
}
step(failed ? 'browser flow failed' : `browser flow passed (${shots} screenshots)`);
process.exit(failed ? 1 : 0);
