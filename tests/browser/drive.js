#!/usr/bin/env node
// Opens gru-edge web pages in headless Chromium, one after the other in one browser, waits until
// each one's #status says done or error, and prints one JSON line per page: {state, status,
// output, error, charsPerSecond, steadyCharsPerSecond, facts, logs}.
// Used by tests/test_web_browser.py; puppeteer-core drives the browser in real time (a
// --dump-dom run would measure virtual time, not speed).
//
//   node drive.js URL... [--timeout MS] [--screenshot PNG (of the last page)] [--chromium PATH]
'use strict';

const puppeteer = require('puppeteer-core');

function parse(argv) {
  const args = { urls: [], timeout: 60000, screenshot: null, chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--timeout') args.timeout = Number(argv[++i]);
    else if (argv[i] === '--screenshot') args.screenshot = argv[++i];
    else if (argv[i] === '--chromium') args.chromium = argv[++i];
    else args.urls.push(argv[i]);
  }
  if (!args.urls.length) throw new Error('usage: node drive.js URL... [--timeout MS] [--screenshot PNG]');
  return args;
}

async function main() {
  const args = parse(process.argv.slice(2));
  const browser = await puppeteer.launch({
    executablePath: args.chromium,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  try {
    for (const url of args.urls) {
      const page = await browser.newPage();
      await page.setViewport({ width: 1000, height: 760 });
      const logs = [];
      page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
      await page.goto(url, { waitUntil: 'load', timeout: args.timeout });
      await page.waitForFunction(
        () => ['done', 'error'].includes(document.getElementById('status')?.dataset.state),
        { timeout: args.timeout, polling: 50 },
      );
      const result = await page.evaluate(() => {
        const status = document.getElementById('status');
        const error = document.getElementById('error');
        return {
          state: status.dataset.state,
          status: status.textContent,
          output: document.getElementById('output').textContent,
          error: error.hidden ? null : error.textContent,
          charsPerSecond: Number(status.dataset.charsPerSecond),
          steadyCharsPerSecond: Number(status.dataset.steadyCharsPerSecond),
          facts: document.getElementById('facts').textContent,
        };
      });
      if (args.screenshot && url === args.urls[args.urls.length - 1]) await page.screenshot({ path: args.screenshot, type: 'png' });
      result.logs = logs;
      process.stdout.write(JSON.stringify(result) + '\n');
      await page.close();
    }
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  process.stderr.write(`drive.js: ${String(e && e.message ? e.message : e).split('\n')[0]}\n`);
  process.exitCode = 1;
});
