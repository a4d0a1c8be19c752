// The playground: records in, the CLI's output lines out, on every keystroke. The state (input
// and options) lives in the URL fragment of the share link, so a link restores all of it.
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const input = $('input');
  const output = $('output');
  const CHECKBOXES = ['traceId128', 'standardAttributes', 'keepSourceAttributes', 'status', 'message', 'derivePhase'];
  const TEXTS = ['hash', 'phase', 'taskDefinition', 'textFormat'];
  const DEFAULTS = { traceId128: false, standardAttributes: true, keepSourceAttributes: false, status: true, message: true, derivePhase: true };

  const SAMPLE = [
    '{"container_name":"/ecs-api-canary-42-envoy","source":"stdout","log":"{\\"response_code\\":503,\\"method\\":\\"GET\\",\\"path\\":\\"/users/42?expand=orders\\",\\"duration\\":12,\\"response_flags\\":\\"UF,URX\\",\\"request_id\\":\\"7f3c0c2e-5a8b\\",\\"trace_id\\":\\"9007199254740993\\",\\"span_id\\":\\"1234567890123456789\\",\\"traceparent\\":null}\\n","ecs_task_definition":"api-canary:42"}',
    '[2022-08-04T23:00:29.383Z] "GET /ping HTTP/1.1" 200 - 0 0 1 0 "-" "curl/8.5.0" "05ba7454-6b3c-4b57-a6f4-0b4f1d6e9f2a" "blue.local:9080" "127.0.0.1:9080"',
    '{"method":"POST","path":"/orders","response_code":201,"duration":7,"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}',
    '{"log":"[2026-12-01 10:00:00.000][1][info][main] starting main dispatch loop"}',
  ].join('\n');

  let api = null;
  let results = [];
  let records = [];

  // --- state <-> URL fragment -------------------------------------------------------------

  function state() {
    const s = { input: input.value };
    for (const id of TEXTS) s[id] = $(id).value;
    for (const id of CHECKBOXES) s[id] = $(id).checked;
    return s;
  }

  function fragment(s) {
    const params = new URLSearchParams();
    params.set('input', s.input);
    for (const id of TEXTS) if (s[id]) params.set(id, s[id]);
    for (const id of CHECKBOXES) if (s[id] !== DEFAULTS[id]) params.set(id, s[id] ? '1' : '0');
    return '#' + params.toString();
  }

  function restore(hash) {
    const params = new URLSearchParams(hash.replace(/^#/, ''));
    if (!params.has('input')) return false;
    input.value = params.get('input');
    for (const id of TEXTS) $(id).value = params.get(id) || '';
    for (const id of CHECKBOXES) $(id).checked = params.has(id) ? params.get(id) === '1' : DEFAULTS[id];
    return true;
  }

  // --- the transform ----------------------------------------------------------------------

  function options(s) {
    return {
      hash: s.hash || null,
      phase: s.phase || null,
      traceId128: s.traceId128 ? 'hex' : 'decimal',
      standardAttributes: s.standardAttributes,
      keepSourceAttributes: s.keepSourceAttributes,
      status: s.status,
      message: s.message,
      derivePhase: s.derivePhase,
      textFormat: s.textFormat || null,
    };
  }

  // A plain text line is what Envoy writes to stdout; FireLens hands it on in `log`.
  const BLANK = /^[\t\n\f\r ]*$/; // ASCII white space only, as the CLI tests it
  function record(line, taskDefinition) {
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (BLANK.test(text) || /^[\t\n\f\r ]*\{/.test(text)) return text;
    let wrapped = '{"source":"stdout","log":' + JSON.stringify(text);
    if (taskDefinition) wrapped += ',"ecs_task_definition":' + JSON.stringify(taskDefinition);
    return wrapped + '}';
  }

  function escapeHtml(text) {
    return text.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
  }

  function blank(text) {
    return {
      output: text, outcome: 'blank', because: 'a blank line, not a record: written as it is',
      traceSource: null, traceKeys: [], datadogAttributes: [], displaced: [],
    };
  }

  // What the CLI would be given: the input's lines as records.
  let lines = [];
  let outputs = [];
  let transformerOptions = null;

  // Options changed: the transformer, the setup panel, then the records.
  function updateOptions() {
    const s = state();
    transformerOptions = options(s);
    $('setup').innerHTML = window.envoyDdSetup(s, transformerOptions);
    showFormatError(null);
    if (api) {
      try {
        new api.Transformer(transformerOptions).free();
      } catch (error) {
        showFormatError(error instanceof api.FormatError ? error : { message: error.message });
        transformerOptions = null;
      }
    }
    updateRecords();
  }

  // Input changed: every record again, through one transformer as one CLI run; only the
  // output lines that changed are replaced in the page.
  function updateRecords() {
    scheduleLink();
    if (!api) return;
    if (!transformerOptions) {
      render([]);
      results = [];
      records = [];
      $('summary').textContent = '';
      explain();
      return;
    }
    const text = input.value;
    // Lines as the CLI reads them: a final line end does not start another line, and a byte
    // order mark before the first line is not data.
    lines = text === '' ? [] : text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    if (lines.length > 0 && lines[0].startsWith('\ufeff')) lines[0] = lines[0].slice(1);
    const taskDefinition = $('taskDefinition').value;
    const transformer = new api.Transformer(transformerOptions);
    records = new Array(lines.length);
    results = new Array(lines.length);
    let enriched = 0;
    let traced = 0;
    let blanks = 0;
    for (let i = 0; i < lines.length; i++) {
      records[i] = record(lines[i], taskDefinition);
      // The CLI writes a blank line as it is, without the transform, to keep lines in step.
      const r = BLANK.test(records[i]) ? blank(records[i]) : transformer.transform(records[i]);
      results[i] = r;
      if (r.outcome === 'enriched') enriched++;
      if (r.outcome === 'blank') blanks++;
      if (r.traceSource) traced++;
    }
    transformer.free();
    render(results);
    $('summary').textContent = results.length
      ? `${results.length - blanks} records: ${enriched} enriched (${traced} with a trace id), ${results.length - blanks - enriched} passed through unchanged` +
        (blanks ? `; ${blanks} blank lines` : '')
      : 'No records yet.';
    explain();
  }

  // The output is one text of lines, each with its line end, so that both its textContent and
  // its innerText are exactly what the CLI writes. Lines come in chunks of CHUNK, each an
  // inline-block as wide as the output: a keystroke replaces only the chunks whose lines
  // changed, and the browser lays out only those again. (CSS content-visibility would skip
  // the chunks off screen, but it takes them out of innerText as well.)
  const CHUNK = 50;
  function render(now) {
    const before = outputs;
    const same = (i) => i < before.length && i < now.length && before[i].output === now[i].output && before[i].outcome === now[i].outcome;
    let first = 0;
    while (same(first)) first++;
    const chunks = output.children;
    const count = Math.ceil(now.length / CHUNK);
    for (let c = 0; c < count; c++) {
      const start = c * CHUNK;
      const end = Math.min(now.length, start + CHUNK);
      // A chunk is kept when all of its lines are; when lines were added or removed, every
      // chunk from the first changed line on moves.
      let kept = c < chunks.length && (before.length === now.length || end <= first);
      for (let i = start; kept && i < end; i++) kept = same(i);
      if (kept) continue;
      const chunk = document.createElement('span');
      chunk.className = 'chunk';
      for (let i = start; i < end; i++) {
        const r = now[i];
        const line = document.createElement('span');
        line.className = r.outcome === 'passed_through' ? 'line passed' : r.traceSource ? 'line traced' : 'line';
        line.textContent = r.output + '\n';
        chunk.append(line);
      }
      if (c < chunks.length) chunks[c].replaceWith(chunk);
      else output.append(chunk);
    }
    while (chunks.length > count) chunks[chunks.length - 1].remove();
    outputs = now.map((r) => ({ output: r.output, outcome: r.outcome }));
  }

  // The line element of output line i.
  function lineAt(i) {
    const chunk = output.children[Math.floor(i / CHUNK)];
    return chunk ? chunk.children[i % CHUNK] : undefined;
  }

  // The share link holds the whole input, so it is written when typing pauses (or when the
  // link is about to be used), not on every keystroke.
  let linkTimer = 0;
  function scheduleLink() {
    clearTimeout(linkTimer);
    linkTimer = setTimeout(writeLink, 150);
  }
  function writeLink() {
    clearTimeout(linkTimer);
    $('shareLink').href = fragment(state());
  }

  // --- explanations -----------------------------------------------------------------------

  const SHAPES = {
    log_json: 'FireLens record whose log held a JSON object: its members are merged into the record',
    log_text: 'FireLens record whose log held an Envoy text access log line: parsed into fields and merged',
    log_kept: 'FireLens record whose log was kept as it is',
    bare: 'a record without a log string: a bare or already flattened Envoy object',
  };
  const KEPT = {
    not_json: 'it is neither JSON nor an Envoy text access log in a known format',
    invalid_json: 'it starts like JSON but is not valid JSON',
    duplicate_key: 'it is a JSON object with a key twice',
    key_conflict: 'merging it would need _log, which the record already uses',
  };
  const SOURCES = {
    existing: 'an existing dd.trace_id', datadog: 'Datadog headers (x-datadog-trace-id)',
    w3c: 'W3C traceparent', b3multi: 'B3 headers (x-b3-traceid)', b3: 'the single b3 header',
    xray: 'AWS X-Ray (x-amzn-trace-id)',
  };
  const FAMILY = {
    existing: [], datadog: ['datadog_trace', 'datadog_span', 'datadog_tags'], w3c: ['traceparent'],
    b3multi: ['b3_trace', 'b3_span'], b3: ['b3'], xray: ['xray'],
  };

  function item(html) {
    return `<li>${html}</li>`;
  }
  const code = (text) => `<code>${escapeHtml(String(text))}</code>`;

  function explain() {
    const list = $('explanation');
    const chosen = $('chosen');
    chosen.max = Math.max(1, results.length);
    const i = Math.min(Math.max(1, Number(chosen.value) || 1), Math.max(1, results.length)) - 1;
    for (const el of output.querySelectorAll('.chosen')) el.classList.remove('chosen');
    const r = results[i];
    if (!r) {
      list.innerHTML = '';
      $('pretty').textContent = '';
      return;
    }
    const line = lineAt(i);
    if (line) line.classList.add('chosen');
    const parts = [];
    if (records[i] !== lines[i].replace(/\r$/, '')) {
      parts.push(item(`Plain text line, wrapped as FireLens would: ${code(records[i])}`));
    }
    if (r.outcome === 'blank') {
      parts.push(item(escapeHtml(r.because)));
    } else if (r.outcome === 'passed_through') {
      parts.push(item(`<strong>Passed through unchanged</strong>: ${escapeHtml(r.because || r.reason)}`));
    } else {
      parts.push(item(`<strong>Enriched</strong>: ${escapeHtml(SHAPES[r.shape] || r.shape)}` +
        (r.logKept ? ` because ${escapeHtml(KEPT[r.logKept] || r.logKept)}` : '') + '.'));
      parts.push(item(r.accessLog ? 'An access log (a response code was found): Datadog attributes were considered.'
        : 'Not an access log (no response code): only dd, hash and phase are added.'));
      if (r.traceSource) {
        const keys = r.traceKeys.filter((k) => FAMILY[r.traceSource].includes(k.kind)).map((k) => code(k.key));
        parts.push(item(`Trace id ${code(r.traceId)}` + (r.spanId ? `, span id ${code(r.spanId)}` : '') +
          ` from ${escapeHtml(SOURCES[r.traceSource])}` + (keys.length ? ` (key ${keys.join(', ')})` : '') + '.'));
      } else {
        parts.push(item('No valid trace id: no dd.trace_id is written.'));
      }
      const other = r.traceKeys.filter((k) => !r.traceSource || !FAMILY[r.traceSource].includes(k.kind));
      if (other.length) {
        parts.push(item('Other trace keys, not used: ' + other.map((k) => `${code(k.key)} = ${code(JSON.stringify(k.value))}`).join(', ')));
      }
      if (r.datadogAttributes.length) parts.push(item('Datadog attributes: ' + r.datadogAttributes.map(code).join(' ')));
      if (r.displaced.length) parts.push(item('Kept under _log (their key was taken): ' + r.displaced.map(code).join(' ')));
    }
    list.innerHTML = parts.join('');
    $('pretty').textContent = pretty(r.output);
  }

  // Indents JSON text without parsing it, so numbers and strings stay exactly as written.
  function pretty(text) {
    let out = '';
    let depth = 0;
    let inString = false;
    const newline = () => '\n' + '  '.repeat(depth);
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        out += c;
        if (c === '\\') out += text[++i] ?? '';
        else if (c === '"') inString = false;
      } else if (c === '"') {
        inString = true;
        out += c;
      } else if (c === '{' || c === '[') {
        const close = c === '{' ? '}' : ']';
        if (text[i + 1] === close) {
          out += c + close;
          i++;
        } else {
          depth++;
          out += c + newline();
        }
      } else if (c === '}' || c === ']') {
        depth--;
        out += newline() + c;
      } else if (c === ',') {
        out += ',' + newline();
      } else if (c === ':') {
        out += ': ';
      } else if (!/\s/.test(c)) {
        out += c;
      }
    }
    return out;
  }

  // The format string's line with the error, and a caret under its position.
  function showFormatError(error) {
    const box = $('formatError');
    if (!error) {
      box.hidden = true;
      box.textContent = '';
      return;
    }
    box.hidden = false;
    box.innerHTML = '';
    const message = document.createElement('p');
    message.textContent = error.reason ? `Invalid Envoy format at byte ${error.position}: ${error.reason}` : error.message;
    box.append(message);
    if (typeof error.index === 'number') {
      const before = error.format.slice(0, error.index);
      const lineStart = before.lastIndexOf('\n') + 1;
      const lineEnd = error.format.indexOf('\n', error.index);
      const pre = document.createElement('pre');
      pre.dataset.testid = 'format-caret';
      pre.textContent = error.format.slice(lineStart, lineEnd < 0 ? undefined : lineEnd) + '\n' +
        ' '.repeat(error.index - lineStart) + '^';
      box.append(pre);
    }
  }

  // --- wiring -----------------------------------------------------------------------------

  function choose(i) {
    $('chosen').value = String(i + 1);
    explain();
  }

  output.addEventListener('click', (event) => {
    const line = event.target.closest('.line');
    if (line) {
      const chunk = line.parentElement;
      choose(Array.prototype.indexOf.call(output.children, chunk) * CHUNK + Array.prototype.indexOf.call(chunk.children, line));
    }
  });
  $('chosen').addEventListener('input', explain);
  input.addEventListener('input', updateRecords);
  $('taskDefinition').addEventListener('input', updateRecords);
  for (const id of TEXTS) if (id !== 'taskDefinition') $(id).addEventListener('input', updateOptions);
  for (const id of CHECKBOXES) $(id).addEventListener('change', updateOptions);
  for (const event of ['pointerenter', 'focus', 'mousedown', 'contextmenu']) $('shareLink').addEventListener(event, writeLink);
  // The record under the input's caret is the one explained.
  input.addEventListener('click', () => choose(input.value.slice(0, input.selectionStart).split('\n').length - 1));
  input.addEventListener('keyup', (event) => {
    if (event.key.startsWith('Arrow')) choose(input.value.slice(0, input.selectionStart).split('\n').length - 1);
  });
  window.addEventListener('hashchange', () => {
    if (restore(location.hash)) updateOptions();
  });
  $('copyLink').addEventListener('click', () => {
    writeLink();
    const link = $('shareLink').href;
    Promise.resolve(navigator.clipboard && navigator.clipboard.writeText(link)).then(
      () => { $('copied').textContent = 'copied'; },
      () => { $('copied').textContent = 'copy failed: use the link'; },
    );
  });

  // Browsers compile WebAssembly in tiers: code starts in a quick baseline compile and is
  // optimised once it has run a while. Running the sample a few thousand times at load gets
  // the optimised code in place before the first keystroke.
  function warmUp() {
    const transformer = new api.Transformer({ hash: 'abc', textFormat: '%REQ(:METHOD)% %RESPONSE_CODE%' });
    const sample = SAMPLE.split('\n').map((line) => record(line, 'api-canary:1'));
    for (let i = 0; i < 3000; i++) transformer.transform(sample[i % sample.length]);
    transformer.free();
  }

  if (!restore(location.hash)) input.value = SAMPLE;
  updateOptions();
  window.envoyDd.ready.then((loaded) => {
    api = loaded;
    warmUp();
    updateOptions();
    document.body.dataset.ready = 'true';
  }, (error) => {
    output.textContent = `The WebAssembly module failed to load: ${error}`;
  });
})();
