// Drives the join page in headless Debian Chromium for tests/webrtc_join.rs (run inside the
// test's network namespace; playwright-core and axe-core come from NODE_PATH). One JSON
// report line per step on stdout; the Rust test makes the assertions.
//
// Usage: node join.js '<config JSON>' with
//   origin     the server's origin, e.g. http://10.99.0.1:8080 (the one place it is named)
//   room       room number
//   name       the name to enter
//   wrongPin   a wrong PIN to try first (optional)
//   pin        the room's PIN (optional)
//   microphone WAV file the fake microphone plays
//   axe        path of axe.min.js (optional: run the accessibility check before and after joining)
//   audio      record what the page receives and mute after a while (waits for a phone)
//   out        directory for received.wav
//   locale     browser language, e.g. de-DE
//   viewport   {width, height} (optional)
//   reconnecting, reconnected  status texts to wait for after joining: the test takes the
//              server away and brings it back (optional)
//   ended      wait after joining until the page says the session ended for good (optional)
//   deniedMicrophone  first try once in a browser that answers the microphone prompt with
//              "no" (optional)
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const config = JSON.parse(process.argv[2]);
const report = (step, fields = {}) =>
  console.log(JSON.stringify({ step, at: Date.now() / 1000, ...fields }));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Wraps RTCPeerConnection so that the test hears what the page receives without the product
// page doing anything for it: every remote audio track goes to a muted <audio> element
// (Chromium decodes a remote track only while a media element plays it) and a
// MediaStreamTrackProcessor whose 48 kHz frames are kept with their arrival time.
function captureReceivedAudio() {
  const Native = window.RTCPeerConnection;
  window.__received = [];
  window.__connections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.__connections.push(this);
      this.addEventListener('track', (event) => {
        if (event.track.kind !== 'audio') return;
        const track = event.track;
        const element = document.createElement('audio');
        element.muted = true;
        element.srcObject = new MediaStream([track]);
        element.play().catch(() => {});
        const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
        (async () => {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            const samples = new Float32Array(value.numberOfFrames);
            value.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
            window.__received.push({ t: Date.now() / 1000, rate: value.sampleRate, samples });
            value.close();
          }
        })();
      });
    }
  };
}

// 16-bit mono WAV of the received frames that arrived between `from` and `to` (Unix s).
async function receivedWav(page, from, to) {
  const { rate, base64 } = await page.evaluate(({ from, to }) => {
    const frames = window.__received.filter((f) => f.t >= from && f.t <= to);
    const total = frames.reduce((n, f) => n + f.samples.length, 0);
    const pcm = new Int16Array(total);
    let at = 0;
    for (const f of frames) {
      for (const s of f.samples) pcm[at++] = Math.max(-32768, Math.min(32767, Math.round(s * 32767)));
    }
    const bytes = new Uint8Array(pcm.buffer);
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return { rate: frames.length ? frames[0].rate : 48000, base64: btoa(binary) };
  }, { from, to });
  const data = Buffer.from(base64, 'base64');
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVE', 8);
  header.write('fmt ', 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

// axe-core's violations on the page as it is now.
async function accessibility(page, label) {
  const source = fs.readFileSync(config.axe, 'utf8');
  // Evaluated through the DevTools protocol, so the page's Content-Security-Policy (which
  // allows only its own script) stays in force for everything else.
  await page.evaluate(source);
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

// The participant list as the page shows it.
async function participants(page) {
  return page.$$eval('#participants li[data-kind]', (items) => items.map((li) => ({
    kind: li.dataset.kind,
    you: li.dataset.you === 'true',
    talking: li.dataset.talking === 'true',
    muted: li.dataset.muted === 'true',
    text: li.textContent,
  })));
}

// Waits until `check(participants)` holds; the last list seen either way.
async function waitForList(page, check, ms) {
  const until = Date.now() + ms;
  let list = [];
  while (Date.now() < until) {
    list = await participants(page);
    if (check(list)) return { ok: true, list };
    await sleep(200);
  }
  return { ok: false, list };
}

// How Chromium comes to trust the server: its test certificate pinned by public key (the
// page is then a secure context over HTTPS, as with a certificate from a real CA), or, for a
// plain-HTTP origin, that origin treated as secure.
function trustServer() {
  return config.spki
    ? [`--ignore-certificate-errors-spki-list=${config.spki}`]
    : [`--unsafely-treat-insecure-origin-as-secure=${config.origin}`];
}

// Joins in a browser whose user refuses the microphone: the page must say so.
async function refusingMicrophone() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--use-fake-device-for-media-stream', '--deny-permission-prompts',
      ...trustServer(),
    ],
  });
  try {
    const context = await browser.newContext({ locale: config.locale || 'de-DE' });
    const page = await context.newPage();
    await page.goto(`${config.origin}/join/${config.room}`);
    await page.fill('#name', config.name);
    if (config.pin) await page.fill('#pin', config.pin);
    // The page's script takes the submit (no navigation); without noWaitAfter Playwright at
    // times waited 30 s for a navigation the click had "scheduled" when other browsers ran
    // beside it. What the click must cause is checked just below.
    await page.click('#join', { noWaitAfter: true });
    await page.waitForFunction(() => document.getElementById('error').textContent !== '', null, { timeout: 15000 });
    report('microphone-denied', {
      error: await page.textContent('#error'),
      formVisible: await page.isVisible('#join-form'),
    });
  } finally {
    await browser.close();
  }
}

async function main() {
  if (config.deniedMicrophone) await refusingMicrophone();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'amt-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    locale: config.locale || 'de-DE',
    viewport: config.viewport || { width: 1280, height: 800 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${config.microphone}`,
      '--autoplay-policy=no-user-gesture-required',
      ...trustServer(),
    ],
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    page.on('console', (message) => report('console', { type: message.type(), text: message.text() }));
    page.on('pageerror', (err) => report('pageerror', { text: String(err) }));
    await page.addInitScript(captureReceivedAudio);

    if (config.unknownRoom) {
      const response = await page.goto(`${config.origin}/join/${config.unknownRoom}`);
      report('unknown-room', {
        status: response.status(),
        text: await page.textContent('#error'),
        form: await page.$('#join-form') !== null,
      });
    }

    const response = await page.goto(`${config.origin}/join/${config.room}`);
    report('page', {
      status: response.status(),
      lang: await page.getAttribute('html', 'lang'),
      pinField: await page.$('#pin') !== null,
      heading: await page.textContent('h1'),
    });
    if (config.axe) await accessibility(page, 'initial');

    await page.fill('#name', config.name);
    if (config.wrongPin) {
      await page.fill('#pin', config.wrongPin);
      await page.click('#join');
      await page.waitForFunction(() => document.getElementById('error').textContent !== '', null, { timeout: 15000 });
      report('wrong-pin', {
        error: await page.textContent('#error'),
        role: await page.getAttribute('#error', 'role'),
        focused: await page.evaluate(() => document.activeElement && document.activeElement.id),
      });
      if (config.axe) await accessibility(page, 'wrong-pin');
    }
    if (config.pin) await page.fill('#pin', config.pin);
    // Joined by keyboard, as a user without a mouse would.
    await page.focus('#name');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#in-room', { state: 'visible', timeout: 20000 });
    const me = await waitForList(page, (list) => list.some((p) => p.you), 5000);
    report('joined', { status: await page.textContent('#status'), participants: me.list });
    if (config.axe) await accessibility(page, 'joined');

    // Waits until the page's status line shows `text`.
    const statusShows = (text, timeout) => page.waitForFunction(
      (t) => document.getElementById('status').textContent.includes(t), text, { timeout });
    // The newest connection's state, once it is `connected` (or after `timeout` ms).
    const connectionState = async (timeout) => {
      await page.waitForFunction(() => {
        const c = window.__connections[window.__connections.length - 1];
        return c && c.connectionState === 'connected';
      }, null, { timeout }).catch(() => {});
      return page.evaluate(() => {
        const c = window.__connections[window.__connections.length - 1];
        return { state: c && c.connectionState, count: window.__connections.length };
      });
    };
    report('connection', await connectionState(10000));

    if (config.reconnecting) {
      report('waiting-for-loss');
      await statusShows(config.reconnecting, 30000);
      report('reconnecting', { status: await page.textContent('#status') });
      await statusShows(config.reconnected, 60000);
      const back = await waitForList(page, (list) => list.some((p) => p.you), 5000);
      report('reconnected', {
        status: await page.textContent('#status'),
        participants: back.list,
        connection: await connectionState(10000),
      });
    }

    if (config.ended) {
      report('waiting-for-end');
      await page.waitForSelector('#left', { state: 'visible', timeout: 30000 });
      report('ended', {
        error: await page.textContent('#error'),
        inRoom: await page.isVisible('#in-room'),
        focused: await page.evaluate(() => document.activeElement && document.activeElement.id),
      });
      await sleep(500);
      report('done');
      return;
    }

    if (config.audio) {
      const phone = await waitForList(page, (list) => list.some((p) => p.kind === 'phone'), 25000);
      const phoneListed = Date.now() / 1000;
      report('phone-listed', { ok: phone.ok, participants: phone.list });
      const talking = await waitForList(
        page,
        (list) => list.some((p) => p.you && p.talking) && list.some((p) => p.kind === 'phone' && p.talking),
        10000,
      );
      report('talking', {
        ok: talking.ok,
        participants: talking.list,
        announced: await page.textContent('#talking'),
      });
      if (config.axe) await accessibility(page, 'talking');
      // Six seconds of the phone in the room, then mute.
      await sleep(Math.max(0, phoneListed * 1000 + 6500 - Date.now()));
      await page.click('#mute');
      const mutedAt = Date.now() / 1000;
      const muted = await waitForList(page, (list) => list.some((p) => p.you && p.muted), 5000);
      report('muted', {
        ok: muted.ok,
        mutedAt,
        participants: muted.list,
        button: await page.textContent('#mute'),
        status: await page.textContent('#status'),
      });
      const wav = await receivedWav(page, phoneListed + 1.0, mutedAt);
      fs.writeFileSync(path.join(config.out, 'received.wav'), wav);
      report('recorded', { bytes: wav.length });
      // The phone listens to the muted browser for a while before the browser leaves.
      await sleep(5000);
    }

    await page.click('#leave');
    await page.waitForSelector('#left', { state: 'visible', timeout: 5000 });
    report('left', {
      status: await page.textContent('#status'),
      focused: await page.evaluate(() => document.activeElement && document.activeElement.id),
    });
    // The DELETE goes out without waiting; give it a moment before the browser goes.
    await sleep(500);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  report('done');
}

main().catch((err) => {
  report('failed', { error: String(err && err.stack || err) });
  process.exit(1);
});
