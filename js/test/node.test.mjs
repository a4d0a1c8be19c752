// The Node build (js/dist/node) against the CLI: every fixture, line for line and byte for byte,
// with the options each fixture's golden test uses and with every option changed; then options
// errors, format errors, trace contexts and the explanations of a result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const envoyDd = require(join(root, 'js', 'dist', 'node'));
const { Transformer, transform, parseFormat, traceContext, OptionsError, FormatError } = envoyDd;

// The CLI to compare with: $ENVOY_DD_CLI, or the debug build (built here if missing or stale).
function cli() {
  if (process.env.ENVOY_DD_CLI) return process.env.ENVOY_DD_CLI;
  execFileSync(process.env.CARGO || 'cargo', ['build', '--quiet', '--bin', 'envoy-dd'], { cwd: root, stdio: 'inherit' });
  return join(root, 'target', 'debug', 'envoy-dd');
}
const CLI = cli();

// The CLI's flags for an options object.
function flags(options) {
  const args = [];
  if (options.hash != null) args.push('--hash', options.hash);
  if (options.phase != null) args.push('--phase', options.phase);
  if (options.traceId128) args.push('--trace-id-128', options.traceId128);
  if (options.textFormat != null) args.push('--text-format', options.textFormat);
  if (options.standardAttributes === false) args.push('--no-standard-attributes');
  if (options.status === false) args.push('--no-status');
  if (options.message === false) args.push('--no-message');
  if (options.derivePhase === false) args.push('--no-derive-phase');
  if (options.keepSourceAttributes) args.push('--keep-source-attributes');
  if (options.requestIdJoin != null) args.push('--request-id-join', String(options.requestIdJoin));
  for (const route of options.routes || []) args.push('--route', route);
  return args;
}

// What the CLI writes for `input` (a file or bytes on standard input), as lines of bytes.
function cliLines(options, input) {
  const env = { ...process.env };
  delete env.GIT_COMMIT_SHA;
  delete env.DEPLOY_PHASE;
  const args = ['transform', '--quiet', ...flags(options)];
  const out = typeof input === 'string'
    ? execFileSync(CLI, [...args, input], { env, maxBuffer: 1 << 30 })
    : execFileSync(CLI, args, { env, input, maxBuffer: 1 << 30 });
  return splitLines(out);
}

// Lines as the CLI reads them: no `\n` or `\r\n`, a final newline starts no line.
function splitLines(bytes) {
  const lines = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length ? i > start : bytes[i] === 0x0a) {
      let end = i;
      if (end > start && bytes[end - 1] === 0x0d) end--;
      lines.push(bytes.subarray(start, end));
      start = i + 1;
    }
  }
  return lines;
}

// Every fixture with the options of its golden test (tests/golden.rs, tests/text_formats.rs).
const HASH = '4f9c2a17e0b3';
function fixtures() {
  const all = [];
  for (const name of readdirSync(join(root, 'fixtures', 'input')).filter((f) => f.endsWith('.jsonl')).sort()) {
    const options = { hash: HASH };
    if (name === 'app-logs.jsonl') options.phase = 'stable';
    if (name === 'trace-128-hex.jsonl') options.traceId128 = 'hex';
    all.push({ file: join(root, 'fixtures', 'input', name), options });
  }
  for (const name of readdirSync(join(root, 'fixtures', 'text')).filter((f) => f.endsWith('.input.jsonl')).sort()) {
    const options = { hash: HASH };
    const format = join(root, 'fixtures', 'text', name.replace('.input.jsonl', '.format'));
    const shared = name === 'not-matching.input.jsonl' ? join(root, 'fixtures', 'text', 'datadog-trace.format') : format;
    if (existsSync(shared)) options.textFormat = readFileSync(shared, 'utf8').replace(/\n+$/, '');
    all.push({ file: join(root, 'fixtures', 'text', name), options });
  }
  return all;
}
const FIXTURES = fixtures();

// Everything off or changed from the default, on top of a fixture's options.
const CHANGED = { phase: 'canary', traceId128: 'hex', standardAttributes: false, status: false, message: false, derivePhase: false };
// The options that shape the standard attributes, changed while those are on.
const ATTRIBUTES_CHANGED = { keepSourceAttributes: true, requestIdJoin: 0, routes: ['GET /api/v1/users/{id}', '* /ping'] };

function assertSameAsCli(file, options) {
  const input = readFileSync(file);
  const expected = cliLines(options, file);
  const lines = splitLines(input);
  if (lines.length && lines[0][0] === 0xef && lines[0][1] === 0xbb && lines[0][2] === 0xbf) lines[0] = lines[0].subarray(3);
  assert.equal(lines.length, expected.length, `${file}: line count`);
  const bytes = new Transformer(options);
  const strings = new Transformer(options);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let i = 0; i < lines.length; i++) {
    const where = `${file}:${i + 1} with ${JSON.stringify(options)}`;
    const got = bytes.transform(lines[i]);
    assert.ok(Buffer.from(got.output).equals(expected[i]), `${where}\n  js:  ${Buffer.from(got.output)}\n  cli: ${expected[i]}`);
    let text;
    try {
      text = decoder.decode(lines[i]);
    } catch {
      strings.transform(' '); // keep both transformers' streams in step
      continue;
    }
    const fromString = strings.transform(text);
    assert.equal(fromString.output, expected[i].toString('utf8'), where);
    assert.equal(fromString.outcome, got.outcome, where);
  }
  bytes.free();
  strings.free();
}

test('a Transformer gives the CLI output for every fixture, with each fixture\'s options', () => {
  assert.ok(FIXTURES.length >= 10);
  for (const { file, options } of FIXTURES) assertSameAsCli(file, options);
});

test('a Transformer gives the CLI output for every fixture with every option changed', () => {
  for (const { file, options } of FIXTURES) assertSameAsCli(file, { ...options, ...CHANGED });
});

test('a Transformer gives the CLI output for every fixture with source keys kept, no join and routes', () => {
  for (const { file, options } of FIXTURES) assertSameAsCli(file, { ...options, ...ATTRIBUTES_CHANGED });
});

test('transform() of a single record is the CLI output for that record alone', () => {
  for (const { file, options } of FIXTURES) {
    for (const line of splitLines(readFileSync(file)).slice(0, 4)) {
      const expected = cliLines(options, Buffer.concat([line, Buffer.from('\n')]));
      assert.ok(Buffer.from(transform(line, options).output).equals(expected[0]), `${file}: ${line}`);
    }
  }
});

test('results say what happened and why', () => {
  const enriched = transform('{"method":"GET","path":"/x","response_code":200,"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}');
  assert.equal(enriched.outcome, 'enriched');
  assert.equal(enriched.shape, 'bare');
  assert.equal(enriched.accessLog, true);
  assert.equal(enriched.traceSource, 'w3c');
  assert.equal(enriched.traceId, '9532127138774266268');
  assert.equal(enriched.spanId, String(0xb7ad6b7169203331n));
  assert.deepEqual(enriched.traceKeys.map((k) => [k.key, k.kind]), [['traceparent', 'traceparent']]);
  assert.ok(enriched.datadogAttributes.includes('dd.trace_id'));
  assert.ok(enriched.datadogAttributes.includes('http.status_code'));
  assert.equal(enriched.reason, null);

  const text = transform(JSON.stringify({ log: '[2022-08-04T23:00:29.383Z] "GET /ping HTTP/1.1" 200 - 0 0 1 0 "-" "Envoy/HC" "05ba7454" "blue.local:9080" "127.0.0.1:9080"' }));
  assert.equal(text.shape, 'log_text');
  assert.equal(text.traceSource, null);

  const kept = transform('{"log":"hello world"}', { hash: 'abc' });
  assert.equal(kept.shape, 'log_kept');
  assert.equal(kept.logKept, 'not_json');
  assert.equal(kept.accessLog, false);

  const broken = transform('{"method":"GET",');
  assert.equal(broken.outcome, 'passed_through');
  assert.equal(broken.output, '{"method":"GET",');
  assert.equal(broken.reason, 'invalid_json');
  assert.match(broken.because, /at byte \d+/);
  assert.equal(broken.shape, null);

  const twice = transform('{"a":1,"a":2}');
  assert.equal(twice.reason, 'duplicate_key');

  const bytes = transform(Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d));
  assert.equal(bytes.reason, 'invalid_utf8');
  assert.deepEqual([...bytes.output], [0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]);
});

test('an unknown option or a wrong type is an error naming it', () => {
  const cases = [
    [{ standardAttribute: false }, 'standardAttribute'],
    [{ hash: 5 }, 'hash'],
    [{ status: 'yes' }, 'status'],
    [{ standardAttributes: null }, 'standardAttributes'],
    [{ traceId128: '128' }, 'traceId128'],
    [{ traceId128: true }, 'traceId128'],
    [{ derivePhase: () => true }, 'derivePhase'],
    [{ message: NaN }, 'message'],
    [{ textFormat: ['%RESPONSE_CODE%'] }, 'textFormat'],
  ];
  for (const [options, key] of cases) {
    for (const make of [() => new Transformer(options), () => transform('{}', options)]) {
      assert.throws(make, (error) => {
        assert.ok(error instanceof OptionsError, `${JSON.stringify(options)}: ${error}`);
        assert.ok(error instanceof TypeError);
        assert.ok(error.message.includes(key), `${error.message} names ${key}`);
        assert.equal(error.option, key);
        return true;
      });
    }
  }
  assert.throws(() => new Transformer('hash=abc'), OptionsError);
  assert.throws(() => new Transformer([]), OptionsError);
  assert.throws(() => new Transformer(new Map([['hash', 'abc']])), OptionsError);
  // Absent, undefined and null (for the strings) are the defaults.
  const plain = transform('{"response_code":200}').output;
  assert.equal(transform('{"response_code":200}', { hash: undefined, phase: null, textFormat: null }).output, plain);
  assert.equal(transform('{"response_code":200}', null).output, plain);
});

test('parseFormat gives the fields of a format, or the position of its error', () => {
  const ok = parseFormat('[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%" %DURATION%');
  assert.deepEqual(ok.fields, ['start_time', 'method', 'path', 'duration']);

  assert.throws(() => parseFormat('%RESPONSE_CODE% %REQ(USER-AGENT %DURATION%'), (error) => {
    assert.ok(error instanceof FormatError);
    assert.ok(error instanceof SyntaxError);
    assert.equal(error.position, 20);
    assert.equal(error.index, 20);
    assert.equal(error.format, '%RESPONSE_CODE% %REQ(USER-AGENT %DURATION%');
    assert.ok(error.reason.length > 0);
    assert.match(error.message, /at byte 20/);
    assert.match(error.message, /\n {22}\^$/);
    return true;
  });
  // Bytes and JavaScript string indexes differ after non-ASCII text.
  assert.throws(() => parseFormat('größe=%BYTES_SENT% %req(:path)%'), (error) => {
    assert.equal(error.format.slice(error.index, error.index + 2), '%r');
    assert.equal(error.position, Buffer.byteLength('größe=%BYTES_SENT% '));
    return true;
  });
  assert.throws(() => parseFormat('no operator at all'), FormatError);
  assert.throws(() => new Transformer({ textFormat: '%RESPONSE_CODE%%DURATION%' }), (error) => {
    assert.ok(error instanceof FormatError);
    assert.equal(error.option, 'textFormat');
    assert.match(error.message, /^`textFormat`: invalid Envoy format at byte/);
    return true;
  });
  assert.throws(() => parseFormat(42), TypeError);
});

// dd of what the filter writes for a record that logged these headers.
function filterDd(headers, traceId128) {
  const record = { response_code: 200 };
  for (const [name, value] of Object.entries(headers)) record[name] = value;
  return transform(JSON.stringify(record), { traceId128 }).record.dd;
}

test('traceContext reads every header kind as the filter reads the same logged values', () => {
  const cases = [
    { 'x-datadog-trace-id': '1234', 'x-datadog-parent-id': '5678' },
    { 'x-datadog-trace-id': '1234', 'x-datadog-parent-id': '5678', 'x-datadog-tags': '_dd.p.dm=-1,_dd.p.tid=66a1b2c300000000' },
    { 'x-datadog-trace-id': '18446744073709551615' },
    { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    { 'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7', 'x-b3-spanid': 'e457b5a2e4d86bd1' },
    { b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' },
    { 'x-amzn-trace-id': 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1' },
    { 'x-datadog-trace-id': '-', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  ];
  for (const headers of cases) {
    const context = traceContext(headers);
    assert.ok(context, JSON.stringify(headers));
    for (const format of ['decimal', 'hex']) {
      const dd = filterDd(headers, format);
      assert.equal(format === 'hex' ? context.traceId128 : context.traceId, dd.trace_id, `${format} ${JSON.stringify(headers)}`);
      assert.equal(context.spanId, dd.span_id ?? null);
    }
    assert.equal(typeof context.traceId, 'string');
  }
  assert.equal(traceContext({ 'x-datadog-trace-id': '1234' }).source, 'datadog');
  assert.equal(traceContext({ 'x-datadog-tags': '_dd.p.tid=66a1b2c300000000', 'x-datadog-trace-id': '1234' }).traceId128, '66a1b2c30000000000000000000004d2');
  assert.equal(traceContext({ traceparent: '00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01' }), null);
  assert.equal(traceContext({ 'x-datadog-trace-id': '0' }), null);
  assert.equal(traceContext({}), null);
  // Only the trace headers' own names count, whatever else normalises like them.
  assert.equal(traceContext({ 'trace-id': '1234' }), null);
});

test('traceContext takes Fetch Headers, Maps, pairs and any name case', () => {
  const w3c = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const expected = { source: 'w3c', traceId: '9532127138774266268', traceId128: '0af7651916cd43dd8448eb211c80319c', spanId: String(0xb7ad6b7169203331n) };
  assert.deepEqual(traceContext(new Headers({ TraceParent: w3c })), expected);
  assert.deepEqual(traceContext(new Map([['traceparent', w3c]])), expected);
  assert.deepEqual(traceContext([['Traceparent', w3c]]), expected);
  assert.deepEqual(traceContext({ TRACEPARENT: w3c }), expected);
  // A repeated header: the first valid value counts.
  assert.equal(traceContext({ 'x-datadog-trace-id': ['-', '77'] }).traceId, '77');
});

test('traceContext reads a real request\'s IncomingMessage.headers', async () => {
  const server = createServer((req, res) => res.end(JSON.stringify(traceContext(req.headers))));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const body = await new Promise((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port: server.address().port,
        headers: { 'X-Datadog-Trace-Id': '9007199254740993', 'X-Datadog-Parent-Id': '1234567890123456789' },
      }, (res) => {
        let text = '';
        res.on('data', (chunk) => { text += chunk; });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(JSON.parse(body), { source: 'datadog', traceId: '9007199254740993', traceId128: '9007199254740993', spanId: '1234567890123456789' });
  } finally {
    server.close();
  }
});

test('ES modules import the Node build by name', async () => {
  const named = await import(join(root, 'js', 'dist', 'node', 'index.js'));
  assert.equal(typeof named.transform, 'function');
  assert.equal(typeof named.Transformer, 'function');
  assert.equal(named.transform('{"response_code":200}').output, transform('{"response_code":200}').output);
  await named.init();
});
