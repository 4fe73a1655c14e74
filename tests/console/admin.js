// Drives the web console's admin pages in headless Debian Chromium, as an admin would, for
// tests/console_users.rs and tests/console_dialplan.rs. Runs inside the test's network
// namespace; playwright-core and axe-core come from NODE_PATH. One JSON report line per step
// on stdout; the Rust test makes the assertions and the calls.
//
// Usage: node admin.js '<config JSON>' with
//   origin, user, password, axe, screenshots, locale   as in staff.js
//   flow   "users": add users (config.users: [{extension, name, password}]), wait until
//          config.watch (an extension) shows registered from config.source, then forward it
//          to config.forwardTo
//          "dialplan": check config.broken in the page, apply it (refused), apply
//          config.valid, show the history and the diff, wait for config.proceed (a file the
//          test creates once it has made its calls), then roll back with one click
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const config = JSON.parse(process.argv[2]);
const report = (step, fields = {}) =>
  console.log(JSON.stringify({ step, at: Date.now() / 1000, ...fields }));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function accessibility(page, label) {
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

// Submits the form that holds `field` with its button `button` (a selector inside the form)
// and waits for the page that answers.
async function submit(page, field, button = 'button[type=submit]') {
  await Promise.all([
    page.waitForNavigation(),
    page.click(`form:has(${field}) ${button}`),
  ]);
}

// The text of the users table's row whose header cell is `extension`.
async function userRow(page, extension) {
  return page.evaluate((ext) => {
    for (const row of document.querySelectorAll('table tr')) {
      const head = row.querySelector('th');
      if (head && head.textContent.trim().startsWith(ext)) return row.textContent;
    }
    return null;
  }, extension);
}

async function users(page) {
  await page.goto(`${config.origin}/console/users`);
  for (const user of config.users) {
    await page.fill('#extension', user.extension);
    await page.fill('#name', user.name);
    await page.fill('#password', user.password);
    await submit(page, '#extension');
    report('added-one', { extension: user.extension, url: page.url(), notice: await page.textContent('.notice').catch(() => null) });
  }
  report('added');
  // The admin reloads the list until the phone shows up registered, with its address.
  const until = Date.now() + 30000;
  let row = null;
  while (Date.now() < until) {
    await page.goto(`${config.origin}/console/users`);
    row = await userRow(page, config.watch);
    if (row && row.includes(config.source)) break;
    await sleep(500);
  }
  report('registered', { row });
  await accessibility(page, 'users-registered');
  await screenshot(page, 'admin-users-registered');

  await page.goto(`${config.origin}/console/users/${config.watch}`);
  await page.fill('#forward_always', config.forwardTo);
  await submit(page, '#forward_always');
  report('forwarded', {
    url: page.url(),
    value: await page.inputValue('#forward_always'),
    notice: await page.textContent('.notice').catch(() => null),
  });
  await accessibility(page, 'user-forwarded');
  await screenshot(page, 'admin-user-forwarded');
}

async function dialplan(page) {
  await page.goto(`${config.origin}/console/dialplan`);
  // Check a broken draft: the errors are shown next to the field, nothing is written.
  await page.fill('#file-0', config.broken);
  await submit(page, '#file-0', 'button[value=check]');
  report('checked', {
    result: await page.textContent('#file-0-result'),
    invalid: await page.getAttribute('#file-0', 'aria-invalid'),
    describedBy: await page.getAttribute('#file-0', 'aria-describedby'),
  });
  await accessibility(page, 'dialplan-checked');
  await screenshot(page, 'admin-dialplan-refused');
  // Applying it is refused the same way.
  await submit(page, '#file-0', 'button[value=apply]');
  report('apply-refused', { result: await page.textContent('#file-0-result') });

  // A valid draft is applied and live.
  await page.fill('#file-0', config.valid);
  await submit(page, '#file-0', 'button[value=apply]');
  report('applied', { result: await page.textContent('#file-0-result') });

  await page.goto(`${config.origin}/console/dialplan/history`);
  const rows = await page.$$eval('table tbody tr', (trs) => trs.map((tr) => tr.textContent));
  report('history', { rows });
  await accessibility(page, 'dialplan-history');
  await screenshot(page, 'admin-dialplan-history');
  await Promise.all([page.waitForNavigation(), page.click('a[href*="/console/dialplan/diff"]')]);
  report('diff', { text: await page.textContent('main') });
  await accessibility(page, 'dialplan-diff');
  await screenshot(page, 'admin-dialplan-diff');

  // The test makes its calls with the new plan, then lets the rollback go.
  const until = Date.now() + 60000;
  while (!fs.existsSync(config.proceed) && Date.now() < until) await sleep(100);
  await page.goto(`${config.origin}/console/dialplan/history`);
  const rollback = `form[action="/console/dialplan/rollback"]:has(input[name=version][value="${config.rollbackTo}"]) button`;
  await Promise.all([page.waitForNavigation(), page.click(rollback)]);
  report('rolled-back', {
    url: page.url(),
    text: await page.textContent('main'),
  });
}

async function main() {
  fs.mkdirSync(config.screenshots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const context = await browser.newContext({ locale: config.locale || 'en-US', viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${config.origin}/console/sign-in`);
    await page.fill('#name', config.user);
    await page.fill('#password', config.password);
    await Promise.all([page.waitForURL('**/console/rooms'), page.click('main button[type=submit]')]);
    report('signed-in');
    if (config.flow === 'users') await users(page);
    else if (config.flow === 'dialplan') await dialplan(page);
    else throw new Error(`unknown flow ${config.flow}`);
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  report('failed', { error: String(err && err.stack || err) });
  process.exit(1);
});
