// Benchmarks of the JavaScript package (BENCHMARKS.md, "JavaScript"), after `npm run build`:
//
//   node js/bench.mjs                 Transformer.transform in Node against a plain-JS baseline
//   node js/bench.mjs --playground    also the playground's reaction to a keystroke, 1,000 records
//
// The baseline is the trace-id part alone, written the straightforward way: JSON.parse the
// record (and a JSON `log` in it), pick the Datadog ids, JSON.stringify. Both run over every
// record of the fixtures in one process, in alternating rounds; the best round of each counts.
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { Transformer } = require(join(root, 'js', 'dist', 'node'));

const files = [
  ...readdirSync(join(root, 'fixtures', 'input')).filter((f) => f.endsWith('.jsonl')).map((f) => join(root, 'fixtures', 'input', f)),
  ...readdirSync(join(root, 'fixtures', 'text')).filter((f) => f.endsWith('.input.jsonl')).map((f) => join(root, 'fixtures', 'text', f)),
];
const records = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter((line) => line.trim() !== ''));

const TRACE_KEYS = ['trace_id', 'x_datadog_trace_id', 'x-datadog-trace-id'];
const SPAN_KEYS = ['span_id', 'parent_id', 'x_datadog_parent_id', 'x-datadog-parent-id'];
const pick = (record, keys) => {
  for (const key of keys) {
    const value = record[key];
    if ((typeof value === 'string' && value !== '' && value !== '-') || typeof value === 'number') return String(value);
  }
  return undefined;
};

// The baseline: parse, pick the ids, stringify (no validation, no other attributes).
function baseline(line) {
  let record;
  try {
    record = JSON.parse(line);
  } catch {
    return line;
  }
  if (record === null || typeof record !== 'object') return line;
  if (typeof record.log === 'string' && record.log.startsWith('{')) {
    try {
      const log = JSON.parse(record.log);
      delete record.log;
      Object.assign(record, log);
    } catch { /* kept as it is */ }
  }
  const traceId = pick(record, TRACE_KEYS);
  if (traceId !== undefined) record.dd = { trace_id: traceId, span_id: pick(record, SPAN_KEYS) };
  try {
    return JSON.stringify(record);
  } catch {
    return line; // nested too deep for JSON.stringify (one edge-case fixture)
  }
}

function round(records, run) {
  const start = process.hrtime.bigint();
  let sink = 0;
  for (let repeat = 0; repeat < 20; repeat++) {
    for (const record of records) sink += run(record).length;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (sink === 0) throw new Error('nothing written');
  return seconds / 20;
}

// Every fixture (some edge cases are large or deeply nested), and the App Mesh records alone
// (what a log router mostly sees).
const appMesh = readFileSync(join(root, 'fixtures', 'input', 'firelens-appmesh.jsonl'), 'utf8').split('\n').filter((line) => line !== '');
const corpora = [['every fixture', records], ['firelens-appmesh.jsonl', appMesh]];
const BASELINE = 'baseline: JSON.parse, pick ids, JSON.stringify';
const runs = {
  [BASELINE]: () => baseline,
  'Transformer.transform(string)': () => {
    const transformer = new Transformer();
    return (r) => transformer.transform(r).output;
  },
};
console.log(`Node ${process.version}; best of 10 alternating rounds of 20 passes each`);
console.log('| corpus | run | ns/record | MB/s | vs baseline |');
console.log('|---|---|---:|---:|---:|');
for (const [corpus, lines] of corpora) {
  const size = lines.reduce((n, r) => n + Buffer.byteLength(r), 0);
  const made = Object.fromEntries(Object.entries(runs).map(([name, make]) => [name, make()]));
  const best = {};
  for (let i = 0; i < 3; i++) for (const run of Object.values(made)) round(lines, run); // warm-up
  for (let i = 0; i < 10; i++) {
    for (const [name, run] of Object.entries(made)) best[name] = Math.min(best[name] ?? Infinity, round(lines, run));
  }
  for (const [name, seconds] of Object.entries(best)) {
    console.log(`| ${corpus} (${lines.length} records, ${(size / 1e6).toFixed(2)} MB) | ${name} | ${((seconds / lines.length) * 1e9).toFixed(0)} | ${(size / seconds / 1e6).toFixed(1)} | ${(best[BASELINE] / seconds).toFixed(2)}x |`);
  }
}
const wasm = readFileSync(join(root, 'js', 'dist', 'web', 'envoy_dd_bg.wasm'));
console.log(`\nweb .wasm: ${(wasm.length / 1024).toFixed(1)} KiB, ${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(1)} KiB gzipped (target 400 KiB)`);

if (process.argv.includes('--playground')) {
  const { chromium } = await import('playwright-core');
  const { serve } = await import('./serve.mjs');
  const server = await serve(join(root, 'js', 'dist', 'playground'));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    // playwright starts Chromium with a new, empty profile of its own (--user-data-dir).
  });
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready=true]');
    const lines = readFileSync(join(root, 'fixtures', 'input', 'firelens-appmesh.jsonl'), 'utf8').split('\n').slice(0, 1000);
    // Pasted at once (Playwright's fill types 1 MB of text through the editing machinery, which takes seconds).
    await page.locator('[data-testid=input]').evaluate((textarea, text) => {
      textarea.value = text;
      textarea.dispatchEvent(new Event('input', { bubbles: true }));
    }, lines.join('\n'));
    await page.focus('[data-testid=input]');
    await page.keyboard.press('Control+End');
    // From the key event to the first frame after it (the page updates on the input event);
    // then the same keystrokes with the page's update switched off: what the browser's own
    // textarea costs, holding 1 MB of text, on this machine in this run.
    await page.evaluate(() => {
      window.reactions = [];
      document.querySelector('[data-testid=input]').addEventListener('keydown', (event) => {
        const start = event.timeStamp;
        requestAnimationFrame(() => setTimeout(() => window.reactions.push(performance.now() - start)));
      });
    });
    const measure = async () => {
      await page.evaluate(() => { window.reactions = []; });
      for (let i = 0; i < 40; i++) {
        await page.keyboard.press(i % 2 ? 'Backspace' : 'Space');
        await page.waitForFunction((n) => window.reactions.length >= n, i + 1);
      }
      const reactions = (await page.evaluate(() => window.reactions)).sort((a, b) => a - b);
      const at = (q) => reactions[Math.min(reactions.length - 1, Math.floor(q * reactions.length))].toFixed(1);
      return `median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms`;
    };
    const page_ = await measure();
    await page.evaluate(() => window.addEventListener('input', (event) => event.stopImmediatePropagation(), true));
    const textarea = await measure();
    console.log('\nplayground, 1,000 records (1 MB), keystroke to the next frame, 40 keystrokes (target 50 ms):');
    console.log(`  the page:                    ${page_}`);
    console.log(`  the textarea alone (no update): ${textarea}`);
  } finally {
    await browser.close();
    await server.close();
    }
}
