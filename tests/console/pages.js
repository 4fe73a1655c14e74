// Visits console pages in headless Debian Chromium for tests/console_browser.rs: signs in,
// opens each page on a desktop and on a phone-sized screen, runs axe-core on it and takes a
// screenshot. One JSON report line per step on stdout; the Rust test makes the assertions.
//
// Usage: node pages.js '<config JSON>' with
//   origin       the server's origin, e.g. http://127.0.0.1:8080
//   user, password  the account to sign in with
//   pages        [{path, name}]: each page to visit (name: for reports and screenshot files)
//   axe          path of axe.min.js
//   screenshots  directory for the PNGs
//   locale       browser language, e.g. de-DE
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const config = JSON.parse(process.argv[2]);
const report = (step, fields = {}) =>
  console.log(JSON.stringify({ step, at: Date.now() / 1000, ...fields }));

async function accessibility(page, label) {
  // Evaluated through the DevTools protocol, so the page's Content-Security-Policy stays in
  // force for everything else.
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

async function visit(page, target, suffix) {
  const response = await page.goto(`${config.origin}${target.path}`);
  // The page's own script (if any) has had its first refresh.
  await page.waitForLoadState('networkidle');
  const name = `${target.name}${suffix}`;
  report('page', {
    name,
    path: target.path,
    status: response ? response.status() : 0,
    url: page.url(),
    title: await page.title(),
    heading: await page.textContent('h1').catch(() => null),
    // Wider than the screen: a phone user would have to scroll sideways.
    overflow: await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
  });
  await accessibility(page, name);
  const file = path.join(config.screenshots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  report('screenshot', { name, file });
}

async function main() {
  fs.mkdirSync(config.screenshots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    for (const [viewport, suffix] of [[{ width: 1100, height: 800 }, ''], [{ width: 390, height: 844 }, '-phone']]) {
      const context = await browser.newContext({ locale: config.locale || 'de-DE', viewport });
      const page = await context.newPage();
      await page.goto(`${config.origin}/console/sign-in`);
      await page.fill('#name', config.user);
      await page.fill('#password', config.password);
      await Promise.all([page.waitForURL('**/console/rooms'), page.click('main button[type=submit]')]);
      report('signed-in', { viewport: suffix || 'desktop' });
      for (const target of config.pages) await visit(page, target, suffix);
      await context.close();
    }
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  report('failed', { error: String(err && err.stack || err) });
  process.exit(1);
});
