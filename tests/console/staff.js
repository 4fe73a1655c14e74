// Drives the web console in headless Debian Chromium for tests/console_browser.rs, as a staff
// member would: sign in, create a room with a PIN, watch two callers arrive in the live view,
// mute one, remove it, end the room, sign out. Runs inside the test's network namespace;
// playwright-core and axe-core come from NODE_PATH. One JSON report line per step on stdout
// (times in Unix seconds); the Rust test makes the assertions.
//
// Usage: node staff.js '<config JSON>' with
//   origin      the server's origin, e.g. http://127.0.0.1:8080
//   user, password   the staff account
//   room, pin   the room to create
//   talker, listener  the caller numbers of the two callers (the first talks, the second is silent)
//   axe         path of axe.min.js
//   screenshots directory for the PNGs
//   locale      browser language, e.g. de-DE
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const config = JSON.parse(process.argv[2]);
const report = (step, fields = {}) =>
  console.log(JSON.stringify({ step, at: Date.now() / 1000, ...fields }));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// axe-core's violations on the page as it is now.
async function accessibility(page, label) {
  // Evaluated through the DevTools protocol, so the page's Content-Security-Policy (which
  // allows only its own script) stays in force for everything else.
  await page.evaluate(fs.readFileSync(config.axe, 'utf8'));
  const violations = await page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ['violations'] });
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
    }));
  });
  report('axe', { state: label, violations });
}

async function screenshot(page, name) {
  const file = path.join(config.screenshots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  report('screenshot', { name, file });
}

// The live view's rows as the page shows them.
async function members(page) {
  return page.$$eval('#members tr[data-member]', (rows) => rows.map((row) => ({
    id: row.dataset.member,
    who: row.querySelector('th').textContent,
    talking: row.dataset.talking === 'true',
    muted: row.dataset.muted === 'true',
  })));
}

// Waits until `check(rows)` holds (up to `ms`); the rows seen last either way.
async function waitForRows(page, check, ms) {
  const until = Date.now() + ms;
  let rows = [];
  while (Date.now() < until) {
    rows = await members(page);
    if (check(rows)) return { ok: true, rows };
    await sleep(50);
  }
  return { ok: false, rows };
}

const rowOf = (rows, number) => rows.find((row) => row.who.includes(number));

async function main() {
  fs.mkdirSync(config.screenshots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const context = await browser.newContext({
      locale: config.locale || 'de-DE',
      viewport: { width: 1100, height: 800 },
    });
    const page = await context.newPage();

    // Signed out, the console sends to the sign-in.
    await page.goto(`${config.origin}/console/rooms`);
    report('sign-in-page', { url: page.url() });
    await accessibility(page, 'sign-in');
    await screenshot(page, 'sign-in');
    await page.fill('#name', config.user);
    await page.fill('#password', config.password);
    await Promise.all([page.waitForURL('**/console/rooms'), page.click('main button[type=submit]')]);
    report('signed-in', { url: page.url() });
    await accessibility(page, 'rooms-empty');

    // Create the room with its PIN.
    await page.fill('#number', config.room);
    await page.fill('#pin', config.pin);
    await Promise.all([page.waitForLoadState('load'), page.click('form[action="/console/rooms"] button[type=submit]')]);
    await page.waitForSelector('.notice');
    report('created', {
      notice: await page.textContent('.notice'),
      listed: await page.isVisible(`a[href="/console/rooms/${config.room}"]`),
    });
    await accessibility(page, 'rooms');
    await screenshot(page, 'rooms');

    // The live view. Beside the page's own script, the test polls the same API ten times a
    // second to learn when the server first listed each caller, and notes when each row first
    // appeared: the difference is how late the page shows what the server knows.
    await Promise.all([page.waitForURL(`**/console/rooms/${config.room}`), page.click(`a[href="/console/rooms/${config.room}"]`)]);
    await page.evaluate((room) => {
      window.__api = {};
      window.__shown = {};
      setInterval(async () => {
        const answer = await fetch(`/api/rooms/${room}/live`, { cache: 'no-store' });
        if (!answer.ok) return;
        for (const member of (await answer.json()).members) {
          if (!(member.id in window.__api)) window.__api[member.id] = Date.now() / 1000;
        }
      }, 100);
      new MutationObserver(() => {
        for (const row of document.querySelectorAll('#members tr[data-member]')) {
          if (!(row.dataset.member in window.__shown)) window.__shown[row.dataset.member] = Date.now() / 1000;
        }
      }).observe(document.getElementById('members'), { childList: true });
    }, config.room);
    report('live-open', { url: page.url(), invitation: await page.inputValue('#invitation-de') });

    const both = await waitForRows(page, (rows) => rowOf(rows, config.talker) && rowOf(rows, config.listener), 60000);
    // The page may show a caller before the test's own 100 ms poll has seen it (the server
    // pushes changes): give that poll a moment to note it too.
    await sleep(400);
    const times = await page.evaluate(() => ({ api: window.__api, shown: window.__shown }));
    report('both-shown', { ok: both.ok, rows: both.rows, ...times });
    if (!both.ok) throw new Error('the two callers never appeared in the live view');

    // The talker is marked as talking, the silent listener not.
    const talking = await waitForRows(page, (rows) => {
      const talker = rowOf(rows, config.talker);
      const listener = rowOf(rows, config.listener);
      return talker && listener && talker.talking && !listener.talking;
    }, 15000);
    report('talking', { ok: talking.ok, rows: talking.rows });
    await accessibility(page, 'live');
    await screenshot(page, 'live');

    // Let the listener hear the talker for a while, then mute it from the page.
    await sleep(3500);
    const talkerId = rowOf(talking.rows, config.talker).id;
    const row = `#members tr[data-member="${talkerId}"]`;
    report('muting');
    await page.click(`${row} button[data-action=mute]`);
    report('muted');
    const muted = await waitForRows(page, (rows) => rowOf(rows, config.talker)?.muted, 5000);
    report('mute-shown', { ok: muted.ok, rows: muted.rows, status: await page.textContent('#status') });
    await screenshot(page, 'live-muted');

    // Then remove it: its call ends, its row goes.
    await sleep(3500);
    report('removing');
    await page.click(`${row} button[data-action=remove]`);
    report('removed');
    const gone = await waitForRows(page, (rows) => !rowOf(rows, config.talker) && rowOf(rows, config.listener), 10000);
    report('gone', { ok: gone.ok, rows: gone.rows });

    // Mute everyone (the listener is left), record for a while.
    await page.click('#mute-all');
    const allMuted = await waitForRows(page, (rows) => rows.length > 0 && rows.every((row) => row.muted), 5000);
    report('all-muted', { ok: allMuted.ok, rows: allMuted.rows, status: await page.textContent('#status') });
    await page.click('#record');
    await page.waitForSelector('#recording-state:not([hidden])', { timeout: 5000 });
    report('recording', { button: await page.textContent('#record') });
    await accessibility(page, 'live-recording');
    await sleep(2500);
    await page.click('#record');
    await page.waitForSelector('#recording-state', { state: 'hidden', timeout: 5000 });
    report('recording-stopped', { button: await page.textContent('#record') });

    // End the room (the listener's call ends), then sign out.
    await page.click('#end');
    const ended = await waitForRows(page, (rows) => rows.length === 0, 10000);
    report('ended', { ok: ended.ok, state: await page.textContent('#room-state') });
    await Promise.all([page.waitForURL('**/console/sign-in'), page.click('header button[type=submit]')]);
    await page.goto(`${config.origin}/console/rooms`);
    report('signed-out', { url: page.url() });
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  report('failed', { error: String(err && err.stack || err) });
  process.exit(1);
});
