// End-to-end tests of js/dist/playground in headless Chromium (Debian's `chromium`, driven by
// playwright-core), served on 127.0.0.1 by js/serve.mjs: typed records give the CLI's output,
// a shared link restores the state, a format error shows a caret under its position, and the
// page's reaction to a keystroke with 1,000 records is measured (reported, not asserted: see
// BENCHMARKS.md, "JavaScript").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../serve.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function cli() {
  if (process.env.ENVOY_DD_CLI) return process.env.ENVOY_DD_CLI;
  execFileSync(process.env.CARGO || 'cargo', ['build', '--quiet', '--bin', 'envoy-dd'], { cwd: root, stdio: 'inherit' });
  return join(root, 'target', 'debug', 'envoy-dd');
}
const CLI = cli();

// The CLI's output for records (lines) with flags, as one string of lines.
function cliOutput(records, args) {
  const env = { ...process.env };
  delete env.GIT_COMMIT_SHA;
  delete env.DEPLOY_PHASE;
  return execFileSync(CLI, ['transform', '--quiet', ...args], { env, input: records.map((r) => r + '\n').join(''), maxBuffer: 1 << 30 }).toString('utf8');
}

const fixture = (path) => readFileSync(join(root, path), 'utf8').split('\n').filter((line) => line !== '');

let server;
let browser;

before(async () => {
  server = await serve(join(root, 'js', 'dist'));
  server.page = server.url + 'playground/';
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    // playwright starts Chromium with a new, empty profile of its own (--user-data-dir).
  });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function open(fragment = '') {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  // Nothing but the page's own files may be requested.
  page.on('request', (req) => {
    if (!req.url().startsWith(server.page)) errors.push(new Error(`request to ${req.url()}`));
  });
  await page.goto(server.page + fragment);
  await page.waitForSelector('body[data-ready=true]');
  page.errors = errors;
  return page;
}

const output = (page) => page.locator('[data-testid=output]').textContent();

test('typed records give the CLI output, and text lines are wrapped as FireLens does', async () => {
  const page = await open();
  const records = [
    ...fixture('fixtures/input/firelens-appmesh.jsonl').slice(0, 20),
    ...fixture('fixtures/input/trace-sources.jsonl').slice(0, 20),
    '', // blank lines are written as they are
    ' \t ',
    ...fixture('fixtures/input/edge-cases.jsonl').slice(0, 20),
    ...fixture('fixtures/text/envoy-default.input.jsonl'),
  ];
  await page.fill('[data-testid=hash]', '4f9c2a17e0b3');
  await page.fill('[data-testid=input]', records.join('\n'));
  const expected = cliOutput(records, ['--hash', '4f9c2a17e0b3']);
  assert.equal(await output(page), expected);
  // The text as rendered too (what a reader copies), blank lines included.
  assert.equal(await page.locator('[data-testid=output]').innerText(), expected);

  // Typed key by key, the output follows each keystroke.
  const text = '[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80"';
  await page.locator('[data-testid=input]').press('End');
  await page.keyboard.press('Control+End');
  await page.keyboard.type('\n' + text);
  await page.selectOption('[data-testid=phase]', 'canary');
  const wrapped = JSON.stringify({ source: 'stdout', log: text });
  assert.equal(await output(page), cliOutput([...records, wrapped], ['--hash', '4f9c2a17e0b3', '--phase', 'canary']));

  // The explanation of the typed record.
  await page.locator('[data-testid=output] .line').nth(records.length).click();
  const explanation = await page.locator('[data-testid=explanation]').textContent();
  assert.match(explanation, /wrapped as FireLens would/);
  assert.match(explanation, /Envoy text access log/);
  const pretty = await page.locator('[data-testid=pretty]').textContent();
  assert.deepEqual(JSON.parse(pretty), JSON.parse(cliOutput([wrapped], ['--hash', '4f9c2a17e0b3', '--phase', 'canary'])));
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('every option reaches the output as the CLI flag does', async () => {
  const page = await open();
  const records = fixture('fixtures/input/trace-128-hex.jsonl');
  await page.fill('[data-testid=input]', records.join('\n'));
  await page.check('[data-testid=trace-id-128]');
  await page.uncheck('[data-testid=standard-attributes]');
  await page.uncheck('[data-testid=status]');
  await page.uncheck('[data-testid=message]');
  await page.uncheck('[data-testid=derive-phase]');
  assert.equal(await output(page), cliOutput(records, ['--trace-id-128', 'hex', '--no-standard-attributes', '--no-status', '--no-message', '--no-derive-phase']));
  // The setup panel says these are not the Fluent Bit filter's.
  assert.match(await page.locator('[data-testid=setup]').textContent(), /always adds standard attributes, status, message, phase derivation/);
  await page.close();
});

test('a shared link restores the input and the options', async () => {
  const page = await open();
  const records = fixture('fixtures/text/datadog-trace.input.jsonl');
  const format = readFileSync(join(root, 'fixtures', 'text', 'datadog-trace.format'), 'utf8').replace(/\n+$/, '');
  await page.fill('[data-testid=input]', records.join('\n'));
  await page.fill('[data-testid=text-format]', format);
  await page.fill('[data-testid=hash]', 'c0ffee');
  await page.check('[data-testid=trace-id-128]');
  await page.uncheck('[data-testid=message]');
  const expected = cliOutput(records, ['--hash', 'c0ffee', '--text-format', format, '--trace-id-128', 'hex', '--no-message']);
  assert.equal(await output(page), expected);
  // The link is written when typing pauses, and at once when the pointer reaches it.
  await page.hover('[data-testid=share-link]');
  const link = await page.locator('[data-testid=share-link]').evaluate((a) => a.href);
  await page.close();

  const restored = await open(new URL(link).hash);
  assert.equal(await restored.inputValue('[data-testid=input]'), records.join('\n'));
  assert.equal(await restored.inputValue('[data-testid=text-format]'), format);
  assert.equal(await restored.inputValue('[data-testid=hash]'), 'c0ffee');
  assert.equal(await restored.isChecked('[data-testid=trace-id-128]'), true);
  assert.equal(await restored.isChecked('[data-testid=message]'), false);
  assert.equal(await restored.isChecked('[data-testid=status]'), true);
  assert.equal(await output(restored), expected);
  assert.deepEqual(restored.errors, []);
  await restored.close();
});

test('a format error shows its reason and a caret under its position', async () => {
  const page = await open();
  await page.fill('[data-testid=text-format]', 'x=%BYTES_SENT% größe=%REQ(USER-AGENT %DURATION%');
  const box = page.locator('[data-testid=format-error]');
  await box.waitFor({ state: 'visible' });
  assert.match(await box.textContent(), /Invalid Envoy format at byte \d+/);
  const [line, caret] = (await page.locator('[data-testid=format-caret]').textContent()).split('\n');
  assert.equal(line, 'x=%BYTES_SENT% größe=%REQ(USER-AGENT %DURATION%');
  assert.match(caret, /^ *\^$/);
  // The caret is under the character the error is at (what parseFormat reports as `index`).
  const index = caret.length - 1;
  const expected = await page.evaluate((f) => window.envoyDd.ready.then((api) => {
    try { api.parseFormat(f); } catch (error) { return error.index; }
    return -1;
  }), line);
  assert.equal(index, expected);
  assert.ok(index > 0);
  // The output is empty until the format is fixed, then comes back.
  assert.equal(await output(page), '');
  await page.fill('[data-testid=text-format]', '%RESPONSE_CODE% %DURATION%');
  await box.waitFor({ state: 'hidden' });
  assert.notEqual(await output(page), '');
  await page.close();
});

test('the page reacts to a keystroke with 1,000 records (measured)', async (t) => {
  const page = await open();
  const records = fixture('fixtures/input/firelens-appmesh.jsonl').slice(0, 1000);
  assert.equal(records.length, 1000);
  // Pasted at once (Playwright's fill types 1 MB of text through the editing machinery, which takes seconds).
  await page.locator('[data-testid=input]').evaluate((textarea, text) => {
    textarea.value = text;
    textarea.dispatchEvent(new Event('input', { bubbles: true }));
  }, records.join('\n'));
  assert.equal(await output(page), cliOutput(records, []));
  await page.focus('[data-testid=input]');
  await page.keyboard.press('Control+End');
  // From the key event to the first frame after it (the update runs on the input event).
  await page.evaluate(() => {
    window.reactions = [];
    document.querySelector('[data-testid=input]').addEventListener('keydown', (event) => {
      const start = event.timeStamp;
      requestAnimationFrame(() => setTimeout(() => window.reactions.push(performance.now() - start)));
    });
  });
  const keys = ['Space', 'x', 'Backspace', 'Backspace', '}', 'Backspace', 'Space', 'Backspace', 'Enter', 'Backspace'];
  for (let i = 0; i < keys.length; i++) {
    await page.keyboard.press(keys[i]);
    await page.waitForFunction((n) => window.reactions.length >= n, i + 1);
  }
  const reactions = (await page.evaluate(() => window.reactions)).sort((a, b) => a - b);
  assert.equal(await output(page), cliOutput(records, []));
  t.diagnostic(`reaction to a keystroke with 1,000 records: median ${reactions[reactions.length >> 1].toFixed(1)} ms, max ${reactions[reactions.length - 1].toFixed(1)} ms (target 50 ms)`);
  await page.close();
});

test('the web build is an ES module that loads its .wasm next to it', async () => {
  const page = await browser.newPage();
  await page.goto(server.url + 'web/package.json');
  const record = '{"method":"GET","path":"/x","response_code":200,"x_b3_traceid":"80f198ee56343ba864fe8b2a57d3eff7","x_b3_spanid":"e457b5a2e4d86bd1"}';
  const got = await page.evaluate(async ([url, record]) => {
    const envoyDd = await import(url);
    await envoyDd.init();
    const result = new envoyDd.Transformer({ hash: 'abc', traceId128: 'hex' }).transform(record);
    let format;
    try {
      envoyDd.parseFormat('%REQ(');
    } catch (error) {
      format = [error.name, error.position];
    }
    const context = envoyDd.traceContext(new Headers({ b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' }));
    return { output: result.output, source: result.traceSource, format, context };
  }, [server.url + 'web/index.js', record]);
  assert.equal(got.output + '\n', cliOutput([record], ['--hash', 'abc', '--trace-id-128', 'hex']));
  assert.equal(got.source, 'b3multi');
  assert.equal(got.format[0], 'FormatError');
  assert.equal(got.context.source, 'b3');
  assert.equal(got.context.traceId128, '80f198ee56343ba864fe8b2a57d3eff7');
  await page.close();
});

test('the playground also works opened from disk (file://)', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  await page.goto(pathToFileURL(join(root, 'js', 'dist', 'playground', 'index.html')).href);
  await page.waitForSelector('body[data-ready=true]');
  const records = fixture('fixtures/input/app-logs.jsonl');
  await page.fill('[data-testid=input]', records.join('\n'));
  assert.equal(await output(page), cliOutput(records, []));
  assert.deepEqual(errors, []);
  await page.close();
});
