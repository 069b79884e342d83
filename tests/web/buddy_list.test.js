// The buddy-list page (web/, served by presenced under "/") in a real
// browser: Debian's Chromium driven by playwright-core over loopback.
//
// Starts build/debug/presenced (PRESENCED_BINARY) with --test-clock, signs in
// as one user in the page, and has another user go active, idle and offline
// by API calls and clock moves, asserting the page follows through its event
// queue (presenced's presence_transitions events). Then a phone-sized
// viewport must render without horizontal scrolling. Screenshots are kept in
// PRESENCE_ARTIFACTS_DIR (default: <directory of the binary>/artifacts).
// A second suite checks what the page sends (ping loop, cursor, idle) and how
// it copes (no events, a lost queue, failing polls), with the page's timers
// under Playwright's fake clock.
//
// No browser is downloaded: the browser is /usr/bin/chromium (Debian's
// package, scripts/install-deps.sh), or PRESENCE_CHROMIUM. If it is missing
// the test fails. DEBUG_WEB=1 logs the page's requests on stderr.
//
// Run: cd tests/web && npm ci && node --test buddy_list.test.js
//      (or: ctest --preset debug -R node.web)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

import {
  BASE_TIME, binaryPath, startPresenced, zulipCall,
} from '../e2e/lib/presenced.js';

const CHROMIUM = process.env.PRESENCE_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.PRESENCE_ARTIFACTS_DIR ||
  path.join(path.dirname(binaryPath()), 'artifacts');
// "offline" comes this long after the 200 s threshold (presence_transitions).
const GRACE_S = 2;
const WAIT_MS = 15_000;

function chromiumArgs() {
  return [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
  ];
}

// "rgb(34, 163, 74)" -> [34, 163, 74]; transparent -> null.
function rgb(css) {
  const m = /^rgba?\((\d+),\s*(\d+),\s*(\d+)(?:,\s*([\d.]+))?\)$/.exec(css);
  if (!m || (m[4] !== undefined && Number(m[4]) === 0)) return null;
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

let browser;

before(async () => {
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's ` +
      'chromium package (scripts/install-deps.sh) or set PRESENCE_CHROMIUM');
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  // Playwright refuses --user-data-dir in args; launch() gives every run a
  // fresh temporary profile directory of its own and deletes it after.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: chromiumArgs(),
  });
});

after(async () => {
  if (browser) await browser.close();
});

const row = (p, user) => p.locator(`li.user[data-email="${user.email}"]`);

async function expectStatus(server, p, user, status) {
  const r = row(p, user);
  await r.and(p.locator(`[data-status="${status}"]`))
    .waitFor({ state: 'visible', timeout: WAIT_MS })
    .catch(async (e) => {
      const html = await p.locator('#people').innerHTML().catch(() => '?');
      throw new Error(`${user.email} never showed "${status}": ${e.message}\n` +
        `list: ${html}\nserver stderr (tail):\n${server.stderr().slice(-3000)}`);
    });
  return r;
}

async function dotColor(r) {
  return r.locator('.dot').evaluate((el) => getComputedStyle(el).backgroundColor);
}

async function signIn(server, p, user) {
  await p.goto(`${server.baseUrl}/`);
  await p.locator('#sign-in-form').waitFor({ state: 'visible' });
  await p.fill('#email', user.email);
  await p.fill('#api-key', user.api_key);
  await p.click('#sign-in-button');
  await p.locator('li.user[data-me="true"]').waitFor({ state: 'visible', timeout: WAIT_MS });
  await p.locator('#connection[data-state="live"]').waitFor({ timeout: WAIT_MS });
}

async function noHorizontalScroll(p, what) {
  const dims = await p.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    bodyScrollWidth: document.body.scrollWidth,
    innerWidth: window.innerWidth,
    widest: Math.max(...[...document.querySelectorAll('body *')]
      .filter((el) => el.getClientRects().length > 0)
      .map((el) => el.getBoundingClientRect().right)),
  }));
  assert.ok(dims.scrollWidth <= dims.innerWidth && dims.bodyScrollWidth <= dims.innerWidth,
    `${what}: page scrolls horizontally: ${JSON.stringify(dims)}`);
  assert.ok(dims.widest <= dims.innerWidth + 0.5,
    `${what}: an element sticks out on the right: ${JSON.stringify(dims)}`);
}

describe('buddy-list page in Chromium', { timeout: 180_000 }, () => {
  let server;
  let page;
  let alice;
  let bob;
  let carol;
  const pageErrors = [];

  before(async () => {
    server = await startPresenced({
      extraArgs: ['--transition-grace-seconds', String(GRACE_S)],
    });
    await server.setClock(BASE_TIME);
    const realm = await server.createRealm('', 'Example Co');
    const rid = realm.realm_id;
    alice = await server.createUser(rid, {
      email: 'alice@example.com', full_name: 'Alice Anderson',
    });
    bob = await server.createUser(rid, {
      email: 'bob@example.com', full_name: 'Bob Brown',
    });
    // A long name and email: the phone layout must not overflow.
    carol = await server.createUser(rid, {
      email: 'caroline.featherstonehaugh-montgomery@research-department.example.com',
      full_name: 'Caroline Alexandra Featherstonehaugh-Montgomery',
    });
    const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
  });

  after(async () => {
    if (server) {
      const status = await server.stop();
      assert.deepEqual(status, { code: 0, signal: null },
        `presenced did not exit cleanly:\n${server.stderr().slice(-5000)}`);
    }
  });

  it('serves the page with a sign-in form and signs in', async () => {
    const res = await page.goto(`${server.baseUrl}/`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-type'], /^text\/html/);
    assert.equal(await page.title(), "Who's online · presenced");
    // A wrong key: an error, and nothing kept.
    await page.fill('#email', alice.email);
    await page.fill('#api-key', 'A'.repeat(32));
    await page.click('#sign-in-button');
    await page.locator('#sign-in-error').waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.match(await page.locator('#sign-in-error').textContent(), /Invalid API key/);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await signIn(server, page, alice);
    const me = page.locator('li.user[data-me="true"]');
    assert.equal(await me.getAttribute('data-email'), alice.email);
    assert.equal(await me.getAttribute('data-status'), 'active');
    // Bob is listed from GET /users; he joined just now and never reported.
    assert.equal(await row(page, bob).getAttribute('data-status'), 'offline');
    assert.equal(await row(page, bob).locator('.seen').textContent(), 'Not active yet');
    await page.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-signed-in.png') });
  });

  it('keeps the credentials in sessionStorage only', async () => {
    const stored = await page.evaluate(() => ({
      session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)).join(' '),
      local: localStorage.length,
      cookie: document.cookie,
    }));
    assert.ok(stored.session.includes(alice.api_key), 'the API key is in sessionStorage');
    assert.equal(stored.local, 0, 'nothing in localStorage');
    assert.equal(stored.cookie, '', 'no cookies');
  });

  it('shows another user active with a green dot', async () => {
    const r = await zulipCall(server.baseUrl, bob, 'POST', '/users/me/presence',
      { status: 'active' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const bobRow = await expectStatus(server, page, bob, 'active');
    assert.equal(await bobRow.locator('.seen').textContent(), 'Active now');
    const c = rgb(await dotColor(bobRow));
    assert.ok(c && c[1] > c[0] + 60 && c[1] > c[2] + 60, `dot is green: ${c}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-active.png') });
  });

  it('shows the user idle once they stop being active', async () => {
    // Bob's window lost focus: he reports idle 100 s later. At A + 200 s he
    // is no longer active, and presenced announces the transition.
    await server.setClock(BASE_TIME + 100);
    const r = await zulipCall(server.baseUrl, bob, 'POST', '/users/me/presence',
      { status: 'idle', slim_presence: 'true' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await server.setClock(BASE_TIME + 201);
    const bobRow = await expectStatus(server, page, bob, 'idle');
    assert.equal(await bobRow.locator('.seen').textContent(), 'Idle');
    // The idle dot is a half-filled orange ring: its border is orange.
    const border = rgb(await bobRow.locator('.dot').evaluate(
      (el) => getComputedStyle(el).borderTopColor));
    assert.ok(border && border[0] > border[2] + 60 && border[0] > border[1],
      `idle dot is orange: ${border}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-idle.png') });
  });

  it('shows the user offline after the threshold, with "last active"', async () => {
    // Offline: 200 s after Bob's last report plus the grace window.
    await server.setClock(BASE_TIME + 100 + 200 + GRACE_S + 1);
    const bobRow = await expectStatus(server, page, bob, 'offline');
    // Last active at BASE_TIME: five minutes (and a few seconds) ago.
    assert.match(await bobRow.locator('.seen').textContent(), /^Active 5 minutes ago$/);
    assert.equal(rgb(await dotColor(bobRow)), null, 'the offline dot is hollow');
    // The order: me first, then active, idle, offline.
    const r = await zulipCall(server.baseUrl, carol, 'POST', '/users/me/presence',
      { status: 'active' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await expectStatus(server, page, carol, 'active');
    const order = await page.locator('li.user').evaluateAll(
      (els) => els.map((el) => el.dataset.email));
    assert.deepEqual(order.filter((e) => [alice.email, bob.email, carol.email].includes(e)),
      [alice.email, carol.email, bob.email]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-desktop.png') });
  });

  it('shows on which device a user is active (per-client extension)', async () => {
    // Carol, active from a script since the last test, opens the mobile
    // app 10 s later: only her client rows change, and the page (which
    // registered with presence_per_client) hears of it.
    await server.setClock(BASE_TIME + 100 + 200 + GRACE_S + 1 + 10);
    const auth = Buffer.from(`${carol.email}:${carol.api_key}`).toString('base64');
    const res = await fetch(`${server.baseUrl}/api/v1/users/me/presence`, {
      method: 'POST',
      headers: {
        Authorization: `Basic ${auth}`,
        'Content-Type': 'application/x-www-form-urlencoded',
        'User-Agent': 'ZulipMobile/27.192 (Android 11)',
      },
      body: 'status=active&ping_only=true',
    });
    assert.equal(res.status, 200);
    const carolRow = row(page, carol);
    await carolRow.and(page.locator('[data-device="mobile"]'))
      .waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.equal(await carolRow.locator('.seen').textContent(), 'Active now on mobile');
    // Bob, offline, shows no device.
    assert.equal(await row(page, bob).getAttribute('data-device'), null);
    await page.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-device.png') });
  });

  it('shows the signed-in user invisible, then back (user_settings events)', async () => {
    const me = page.locator('li.user[data-me="true"]');
    let r = await zulipCall(server.baseUrl, alice, 'PATCH', '/settings',
      { presence_enabled: 'false' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await page.locator('li.user[data-me="true"][data-status="offline"]')
      .waitFor({ timeout: WAIT_MS });
    assert.equal(await me.locator('.seen').textContent(), 'Invisible');
    r = await zulipCall(server.baseUrl, alice, 'PATCH', '/settings',
      { presence_enabled: 'true' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await page.locator('li.user[data-me="true"][data-status="active"]')
      .waitFor({ timeout: WAIT_MS });
  });

  it('fits a phone screen without horizontal scrolling', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    try {
      const p = await phone.newPage();
      p.on('pageerror', (e) => pageErrors.push(String(e)));
      await p.goto(`${server.baseUrl}/`);
      await p.locator('#sign-in-form').waitFor({ state: 'visible' });
      await noHorizontalScroll(p, 'sign-in form');
      await p.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-sign-in-phone.png') });
      await signIn(server, p, alice);
      await expectStatus(server, p, carol, 'active');
      await expectStatus(server, p, bob, 'offline');
      await noHorizontalScroll(p, 'buddy list');
      // The long email is cut with an ellipsis, not wrapped off screen.
      const email = row(p, carol).locator('.email, .name').first();
      const box = await email.boundingBox();
      assert.ok(box && box.x + box.width <= 390, `long text fits: ${JSON.stringify(box)}`);
      await p.screenshot({ path: path.join(ARTIFACTS, 'buddy-list.png'), fullPage: true });
      await p.emulateMedia({ colorScheme: 'dark' });
      await noHorizontalScroll(p, 'buddy list, dark');
      await p.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-dark.png'), fullPage: true });
    } finally {
      await phone.close();
    }
  });

  it('signs out and forgets the credentials', async () => {
    await page.click('#sign-out');
    await page.locator('#sign-in-form').waitFor({ state: 'visible' });
    const left = await page.evaluate(() => sessionStorage.length);
    assert.equal(left, 0);
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  });
});

// What the page sends and how it copes: the ping loop and its cursor, idle
// after five minutes, merging ping answers without events, a lost queue and
// failing polls. The page's timers run under Playwright's fake clock (only
// the page's: the server's test clock is moved separately).
describe('buddy-list page protocol', { timeout: 180_000 }, () => {
  let server;
  let context;
  let page;
  let alice;
  let bob;
  let dave;
  let registered; // the page's latest /register answer
  const pageErrors = [];

  const callParams = (req) => {
    const u = new URL(req.url());
    const q = req.method() === 'GET' || req.method() === 'DELETE'
      ? u.search.slice(1) : (req.postData() || '');
    return Object.fromEntries(new URLSearchParams(q));
  };
  const isCall = (method, route, pred = () => true) => (req) =>
    req.method() === method && new URL(req.url()).pathname === `/api/v1${route}` &&
    pred(callParams(req));
  const isPing = (pred) => isCall('POST', '/users/me/presence', pred);
  const isEventsUrl = (url) => url.pathname === '/api/v1/events';
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  async function until(what, cond) {
    const deadline = Date.now() + WAIT_MS;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }
  // How many times the page has armed its periodic ping timer (counted by
  // the init script installed in before()).
  const pingTimersArmed = () => page.evaluate(() => window.__pingTimersArmed || 0);
  // The next periodic ping matching `pred`, with the count of ping timers
  // armed before it: call before the fake-clock jump that sends it.
  async function nextPing(pred) {
    const armed = await pingTimersArmed();
    return { request: page.waitForRequest(isPing(pred)), armed };
  }
  // A ping's answer re-arms the page's ping timer a moment after it arrives;
  // a fake-clock jump made before that would find no timer to fire. So this
  // waits for the re-arm itself, not for a guessed moment.
  async function pingAnswered(next) {
    const req = await next.request;
    const json = await (await req.response()).json();
    await until('the page to re-arm its ping timer after the answer',
      async () => (await pingTimersArmed()) > next.armed);
    return { params: callParams(req), json };
  }
  const connection = (state) =>
    page.locator(`#connection[data-state="${state}"]`).waitFor({ timeout: WAIT_MS });

  before(async () => {
    server = await startPresenced({
      extraArgs: ['--transition-grace-seconds', String(GRACE_S)],
    });
    await server.setClock(BASE_TIME);
    const rid = (await server.createRealm('', 'Example Co')).realm_id;
    alice = await server.createUser(rid, { email: 'alice@example.com', full_name: 'Alice' });
    bob = await server.createUser(rid, { email: 'bob@example.com', full_name: 'Bob' });
    dave = await server.createUser(rid, { email: 'dave@example.com', full_name: 'Dave' });
    context = await browser.newContext({ viewport: { width: 800, height: 600 } });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    if (process.env.DEBUG_WEB) { // the page's traffic on stderr
      const t = () => (Date.now() % 100_000).toString().padStart(5);
      page.on('request', (r) => console.error('>>', t(), r.method(), r.url(), r.postData() || ''));
      page.on('requestfinished', async (r) =>
        console.error('<<', t(), r.method(), r.url(), (await r.response())?.status()));
      page.on('requestfailed', (r) =>
        console.error('!!', t(), r.method(), r.url(), r.failure()?.errorText));
    }
    page.on('response', async (res) => {
      if (new URL(res.url()).pathname === '/api/v1/register' && res.status() === 200) {
        registered = await res.json();
      }
    });
    await page.clock.install();
    // Counts the page's periodic ping timers (runs after the clock's own
    // script, so it wraps the fake setTimeout): pingAnswered waits on it.
    // The ping timer is the one whose callback sends the periodic ping.
    await page.addInitScript(() => {
      const setTimeoutOfClock = window.setTimeout;
      window.__pingTimersArmed = 0;
      window.setTimeout = function (fn, ms, ...args) {
        if (typeof fn === 'function' && String(fn).includes('await ping(gen, false)')) {
          window.__pingTimersArmed += 1;
        }
        return setTimeoutOfClock.call(this, fn, ms, ...args);
      };
    });
  });

  after(async () => {
    if (context) await context.close();
    if (server) {
      const status = await server.stop();
      assert.deepEqual(status, { code: 0, signal: null },
        `presenced did not exit cleanly:\n${server.stderr().slice(-5000)}`);
    }
  });

  it('registers for simplified events with transitions, announces itself, long-polls',
    async () => {
      const users = page.waitForRequest(isCall('GET', '/users'));
      const reg = page.waitForRequest(isCall('POST', '/register'));
      const announce = page.waitForRequest(isPing((p) => p.ping_only === 'true'));
      const poll = page.waitForRequest(isCall('GET', '/events'));
      await signIn(server, page, alice);
      await users;
      const rp = callParams(await reg);
      assert.ok(JSON.parse(rp.event_types).includes('presence'), rp.event_types);
      const caps = JSON.parse(rp.client_capabilities);
      assert.equal(caps.simplified_presence_events, true);
      assert.equal(caps.presence_transitions, true);
      assert.equal(caps.presence_per_client, true);
      const a = callParams(await announce);
      assert.equal(a.status, 'active');
      const pl = callParams(await poll);
      assert.equal(pl.queue_id, registered.queue_id);
      assert.equal(pl.last_event_id, '-1');
    });

  it('pings every server_presence_ping_interval_seconds with the last_update_id cursor',
    async () => {
      assert.equal(registered.server_presence_ping_interval_seconds, 60);
      const first = await nextPing((p) => p.ping_only === 'false');
      await page.keyboard.press('Shift'); // input since the last report
      await page.clock.fastForward(61_000);
      const { params: p1, json: j1 } = await pingAnswered(first);
      assert.equal(p1.status, 'active');
      assert.equal(p1.new_user_input, 'true');
      assert.equal(p1.last_update_id, String(registered.presence_last_update_id));
      assert.equal(j1.result, 'success');

      const second = await nextPing((p) => p.ping_only === 'false');
      await page.clock.fastForward(61_000);
      const { params: p2 } = await pingAnswered(second);
      assert.equal(p2.last_update_id, String(j1.presence_last_update_id));
      assert.equal(p2.new_user_input, 'false');
    });

  it('reports idle after 5 minutes without input, and active at once on return',
    async () => {
      // Five minutes without input; the ping after that says "idle".
      const during = await nextPing((p) => p.ping_only === 'false');
      await page.clock.fastForward(5 * 60_000);
      await pingAnswered(during);
      const next = await nextPing((p) => p.ping_only === 'false');
      await page.clock.fastForward(61_000);
      const { params: pi } = await pingAnswered(next);
      assert.equal(pi.status, 'idle');
      assert.equal(pi.new_user_input, 'false');
      const back = page.waitForRequest(isPing((p) => p.ping_only === 'true'));
      await page.keyboard.press('Shift');
      const pb = callParams(await back);
      assert.equal(pb.status, 'active');
      assert.equal(pb.new_user_input, 'true');
    });

  it('merges ping answers: users age into offline without events (§6.4)', async () => {
    // Hold back the event queue: the page learns only from its pings.
    let held = 0;
    const hold = (route) => {
      if (route.request().method() !== 'GET') return route.continue();
      held += 1;
      return route.abort('connectionrefused');
    };
    await page.route(isEventsUrl, hold);
    // Dave's first report wakes a parked poll, if there is one; every later
    // poll is held.
    const d = await zulipCall(server.baseUrl, dave, 'POST', '/users/me/presence',
      { status: 'active', ping_only: 'true' });
    assert.equal(d.status, 200, JSON.stringify(d.json));
    await until('a held poll', () => held >= 1);
    await connection('reconnecting');

    const b = await zulipCall(server.baseUrl, bob, 'POST', '/users/me/presence',
      { status: 'active', ping_only: 'true' });
    assert.equal(b.status, 200, JSON.stringify(b.json));
    const ping1 = await nextPing((p) => p.ping_only === 'false');
    await page.clock.fastForward(61_000); // the next ping brings Bob and Dave
    await pingAnswered(ping1);
    await expectStatus(server, page, bob, 'active');
    await expectStatus(server, page, dave, 'active');

    // 250 s later only Alice's own row changed: Bob and Dave are absent from
    // the incremental answer and age against its server_timestamp.
    await server.setClock(BASE_TIME + 250);
    const ping2 = await nextPing((p) => p.ping_only === 'false');
    await page.clock.fastForward(61_000);
    const { json: j2 } = await pingAnswered(ping2);
    assert.deepEqual(Object.keys(j2.presences), [String(alice.user_id)]);
    const bobRow = await expectStatus(server, page, bob, 'offline');
    await expectStatus(server, page, dave, 'offline');
    assert.equal(await bobRow.locator('.seen').textContent(), 'Active 4 minutes ago');

    // Events flow again at the next retry; Bob stays offline.
    await page.unroute(isEventsUrl, hold);
    await page.clock.fastForward(31_000);
    await connection('live');
    await expectStatus(server, page, bob, 'offline');
  });

  it('re-registers when its queue is gone (BAD_EVENT_QUEUE_ID)', async () => {
    const oldQueue = registered.queue_id;
    const reReg = page.waitForRequest(isCall('POST', '/register'));
    const newPoll = page.waitForRequest(
      isCall('GET', '/events', (p) => p.queue_id !== oldQueue));
    const del = await zulipCall(server.baseUrl, alice, 'DELETE', '/events',
      { queue_id: oldQueue });
    assert.equal(del.status, 200, JSON.stringify(del.json));
    await reReg;
    await newPoll;
    await connection('live');
    assert.notEqual(registered.queue_id, oldQueue);
    // The new queue works: Bob comes back (an event: more than 130 s since
    // his last active report).
    await server.setClock(BASE_TIME + 400);
    const b = await zulipCall(server.baseUrl, bob, 'POST', '/users/me/presence',
      { status: 'active', ping_only: 'true' });
    assert.equal(b.status, 200, JSON.stringify(b.json));
    await expectStatus(server, page, bob, 'active');
  });

  it('backs off on failing polls, honours Retry-After, and recovers', async () => {
    let n = 0;
    const flaky = (route) => {
      if (route.request().method() !== 'GET') return route.continue();
      n += 1;
      if (n === 1) {
        return route.fulfill({
          status: 500,
          contentType: 'application/json',
          body: JSON.stringify({ result: 'error', msg: 'Internal Server Error' }),
        });
      }
      if (n === 2) {
        return route.fulfill({
          status: 429,
          headers: { 'Retry-After': '7' },
          contentType: 'application/json',
          body: JSON.stringify({
            result: 'error', msg: 'API usage exceeded rate limit',
            code: 'RATE_LIMIT_HIT', 'retry-after': 7,
          }),
        });
      }
      return route.continue();
    };
    await page.route(isEventsUrl, flaky);
    // Dave comes back: the event wakes the parked poll; the next ones fail.
    const d = await zulipCall(server.baseUrl, dave, 'POST', '/users/me/presence',
      { status: 'active', ping_only: 'true' });
    assert.equal(d.status, 200, JSON.stringify(d.json));
    await expectStatus(server, page, dave, 'active');
    await page.locator('#connection', { hasText: 'Reconnecting in 7 s' })
      .waitFor({ timeout: WAIT_MS });
    assert.equal(n, 2);
    // Back after Retry-After: a non-blocking poll first, so "Live" shows at
    // once rather than when the next event or heartbeat comes.
    const probe = page.waitForRequest(isCall('GET', '/events', (p) => p.dont_block === 'true'));
    await page.clock.fastForward(8_000);
    await probe;
    await connection('live');
    assert.ok(n >= 3);
    await page.unroute(isEventsUrl, flaky);
  });

  it('signs out: frees its queue and forgets the credentials', async () => {
    const queue = registered.queue_id;
    const del = page.waitForRequest(isCall('DELETE', '/events', (p) => p.queue_id === queue));
    await page.click('#sign-out');
    await del;
    await page.locator('#sign-in-form').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    const gone = await zulipCall(server.baseUrl, alice, 'GET', '/events',
      { queue_id: queue, last_event_id: '-1', dont_block: 'true' });
    assert.equal(gone.json.code, 'BAD_EVENT_QUEUE_ID');
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  });
});

// User status (issue #18): set through the page's form, seen by another
// viewer, cleared; user-supplied text rendered as text; and the extension
// fields (a scheduled end, do-not-disturb) rendered from a register answer
// with those fields added (the server of this branch may not send them).
describe('buddy-list page user status', { timeout: 180_000 }, () => {
  let server;
  let alice;
  let bob;
  const contexts = [];
  const pageErrors = [];

  async function newPage() {
    // UTC, so that "until 22:53" does not depend on the machine's zone.
    const ctx = await browser.newContext({
      viewport: { width: 1000, height: 760 }, timezoneId: 'UTC', locale: 'en-US',
    });
    contexts.push(ctx);
    const p = await ctx.newPage();
    p.on('pageerror', (e) => pageErrors.push(String(e)));
    return p;
  }

  before(async () => {
    server = await startPresenced();
    await server.setClock(BASE_TIME);
    const realm = await server.createRealm('', 'Example Co');
    alice = await server.createUser(realm.realm_id, {
      email: 'alice@example.com', full_name: 'Alice Anderson',
    });
    bob = await server.createUser(realm.realm_id, {
      email: 'bob@example.com', full_name: 'Bob Brown',
    });
  });

  after(async () => {
    for (const c of contexts) await c.close();
    if (server) {
      const status = await server.stop();
      assert.deepEqual(status, { code: 0, signal: null },
        `presenced did not exit cleanly:\n${server.stderr().slice(-5000)}`);
    }
  });

  it('sets a status in the form, shows it to another viewer as text, clears it', async () => {
    const pa = await newPage();
    const pb = await newPage();
    await signIn(server, pa, alice);
    await signIn(server, pb, bob);
    await pa.locator('#my-status summary').click();
    // Every control has a label.
    await pa.getByLabel('Emoji').selectOption('calendar:1f4c5');
    const hostile = '<img src=x onerror=window.__x=1><b>Hi</b>';
    await pa.getByLabel('Status text').fill(hostile);
    await pa.getByRole('button', { name: 'Set status' }).click();

    const shown = row(pb, alice).locator('.user-status');
    await shown.waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.equal(await shown.textContent(), `\u{1f4c5} ${hostile}`);
    // Text, not markup: no element came from it, no script ran.
    assert.equal(await row(pb, alice).locator('img, b, script').count(), 0);
    assert.equal(await pb.evaluate(() => window.__x), undefined);
    assert.equal(await pa.evaluate(() => window.__x), undefined);
    // The server holds it (Zulip's GET /users/{id}/status).
    const r = await zulipCall(server.baseUrl, bob, 'GET', `/users/${alice.user_id}/status`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.status.status_text, hostile);
    assert.equal(r.json.status.emoji_code, '1f4c5');
    // The signed-in user sees it on their own row and in the form's summary.
    await row(pa, alice).locator('.user-status').waitFor({ timeout: WAIT_MS });
    assert.match(await pa.locator('#my-status-now').textContent(), /<b>Hi<\/b>/);
    await pb.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-status.png') });
    await pa.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-status-form.png') });

    await pa.getByRole('button', { name: 'Clear status' }).click();
    await shown.waitFor({ state: 'detached', timeout: WAIT_MS });
    const cleared = await zulipCall(server.baseUrl, bob, 'GET', `/users/${alice.user_id}/status`);
    assert.equal(cleared.json.status.status_text, undefined);
    assert.equal(await pa.getByLabel('Status text').inputValue(), '');
  });

  it('shows a refusal from the server in the form', async () => {
    const pa = await newPage();
    await signIn(server, pa, alice);
    await pa.locator('#my-status summary').click();
    // maxlength stops typing; a script can still send too long a text.
    await pa.getByLabel('Status text').evaluate((el) => {
      el.removeAttribute('maxlength');
      el.value = 'x'.repeat(61);
    });
    await pa.getByRole('button', { name: 'Set status' }).click();
    const err = pa.locator('#status-error');
    await err.waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.match(await err.textContent(), /status_text is too long \(limit: 60 characters\)/);
    assert.equal(await err.getAttribute('role'), 'alert');
  });

  it('fits the status form on a phone screen', async () => {
    const ctx = await browser.newContext({
      viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true,
      hasTouch: true, timezoneId: 'UTC',
    });
    contexts.push(ctx);
    const p = await ctx.newPage();
    p.on('pageerror', (e) => pageErrors.push(String(e)));
    await signIn(server, p, alice);
    await p.locator('#my-status summary').click();
    await p.getByLabel('Status text').waitFor({ state: 'visible' });
    await noHorizontalScroll(p, 'status form');
    await p.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-status-phone.png'), fullPage: true });
  });

  it('says when the server ignores the end time', async () => {
    const pa = await newPage();
    // What a server without the extension answers.
    await pa.route('**/api/v1/users/me/status', (route) => route.fulfill({
      json: { result: 'success', msg: '', ignored_parameters_unsupported: ['scheduled_end_time'] },
    }));
    await signIn(server, pa, alice);
    await pa.locator('#my-status summary').click();
    await pa.getByLabel('Status text').fill('Lunch');
    await pa.getByLabel('Clear it at (optional)').fill('2023-11-14T23:00');
    await pa.getByRole('button', { name: 'Set status' }).click();
    const err = pa.locator('#status-error');
    await err.waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.match(await err.textContent(), /does not support end times/);
  });

  it('renders a scheduled end and do-not-disturb (extension fields)', async () => {
    const pb = await newPage();
    // The real register answer, with Alice's status as a server with the
    // extension sends it to a queue registered with the capability.
    let sentCapability = null;
    await pb.route('**/api/v1/register', async (route) => {
      const body = new URLSearchParams(route.request().postData() || '');
      sentCapability = JSON.parse(body.get('client_capabilities')).user_status_extensions;
      const res = await route.fetch();
      const json = await res.json();
      json.user_status = {
        ...(json.user_status || {}),
        [alice.user_id]: {
          status_text: 'Lunch <i>out</i>',
          emoji_name: 'coffee',
          emoji_code: '2615',
          reaction_type: 'unicode_emoji',
          scheduled_end_time: BASE_TIME + 2400, // 22:53:20 UTC
          dnd: true,
          dnd_end_time: BASE_TIME + 86400, // tomorrow 22:13:20 UTC
        },
      };
      await route.fulfill({ response: res, json });
    });
    await signIn(server, pb, bob);
    assert.equal(sentCapability, true);
    const r = row(pb, alice);
    await r.locator('.user-status').waitFor({ timeout: WAIT_MS });
    assert.equal(await r.locator('.user-status').textContent(),
      '\u2615 Lunch <i>out</i> · until 22:53');
    assert.equal(await r.getAttribute('data-dnd'), 'true');
    const mark = r.locator('.dnd');
    assert.equal(await mark.getAttribute('role'), 'img');
    assert.equal(await mark.getAttribute('aria-label'), 'Do not disturb until tomorrow 22:13');
    assert.equal(await row(pb, bob).getAttribute('data-dnd'), null);
    await pb.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-status-dnd.png') });
  });

  it('shows "until ..." and do-not-disturb from the real server, and their ends', async () => {
    await server.setClock(BASE_TIME); // 2023-11-14 22:13:20 UTC
    const pa = await newPage();
    const pb = await newPage();
    await signIn(server, pa, alice);
    await signIn(server, pb, bob);
    await pa.locator('#my-status summary').click();
    await pa.getByLabel('Emoji').selectOption('coffee:2615');
    await pa.getByLabel('Status text').fill('Lunch');
    await pa.getByLabel('Clear it at (optional)').fill('2023-11-14T22:53');
    await pa.getByRole('button', { name: 'Set status' }).click();
    const shown = row(pb, alice).locator('.user-status');
    await pb.locator(`li.user[data-email="${alice.email}"] .status-until`)
      .waitFor({ timeout: WAIT_MS });
    assert.equal(await shown.textContent(), '\u2615 Lunch · until 22:53');

    await pa.getByLabel('Until (optional)').fill('2023-11-15T09:30');
    await pa.getByRole('checkbox', { name: 'Do not disturb' }).check();
    await pb.locator(`li.user[data-email="${alice.email}"][data-dnd="true"]`)
      .waitFor({ timeout: WAIT_MS });
    assert.equal(await row(pb, alice).locator('.dnd').getAttribute('aria-label'),
      'Do not disturb until tomorrow 09:30');
    await pb.screenshot({ path: path.join(ARTIFACTS, 'buddy-list-status-until-dnd.png') });

    // The server ends the status at 22:53, and do-not-disturb at 09:30.
    await server.setClock(Date.UTC(2023, 10, 14, 22, 53) / 1000 + 1);
    await shown.waitFor({ state: 'detached', timeout: WAIT_MS });
    assert.equal(await row(pb, alice).getAttribute('data-dnd'), 'true');
    await server.setClock(Date.UTC(2023, 10, 15, 9, 30) / 1000 + 1);
    await pb.locator(`li.user[data-email="${alice.email}"]:not([data-dnd])`)
      .waitFor({ timeout: WAIT_MS });
  });

  it('toggles do-not-disturb with an end time', async () => {
    const pa = await newPage();
    const sent = [];
    // A server with the extension accepts dnd alone; this one is faked.
    await pa.route('**/api/v1/users/me/status', async (route) => {
      sent.push(Object.fromEntries(new URLSearchParams(route.request().postData() || '')));
      await route.fulfill({ json: { result: 'success', msg: '' } });
    });
    await signIn(server, pa, alice);
    await pa.locator('#my-status summary').click();
    await pa.getByLabel('Until (optional)').fill('2023-11-15T09:30');
    const box = pa.getByRole('checkbox', { name: 'Do not disturb' });
    await Promise.all([pa.waitForResponse('**/api/v1/users/me/status'), box.check()]);
    await Promise.all([pa.waitForResponse('**/api/v1/users/me/status'), box.uncheck()]);
    assert.deepEqual(sent, [
      { dnd: 'true', dnd_end_time: String(Date.UTC(2023, 10, 15, 9, 30) / 1000) },
      { dnd: 'false' },
    ]);
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  });
});
