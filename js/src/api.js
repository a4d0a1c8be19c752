// The package's API over the wasm-bindgen exports of src/js.rs. The build wraps this file for
// each target (CommonJS for Node, an ES module for the web, a classic script for the
// playground): `makeApi(wasm)` is given the bindings and returns the exports.

function makeApi(wasm) {
  /** Raised for an options object with an unknown key or a value of the wrong type. */
  class OptionsError extends TypeError {
    constructor(message, option) {
      super(message);
      this.name = 'OptionsError';
      this.option = option;
    }
  }

  /** Raised for an Envoy format string that does not compile, with where and why. */
  class FormatError extends SyntaxError {
    constructor(detail) {
      super(detail.option ? `\`${detail.option}\`: ${detail.message}` : detail.message);
      this.name = 'FormatError';
      this.reason = detail.reason;
      this.position = detail.position;
      this.index = detail.index;
      this.format = detail.format;
      this.option = detail.option;
    }
  }

  // src/js.rs throws errors as JSON text.
  function rethrow(thrown) {
    if (typeof thrown !== 'string') throw thrown;
    const detail = JSON.parse(thrown);
    if (detail.kind === 'format') throw new FormatError(detail);
    const option = /^`([^`]+)`/.exec(detail.message) || /field `([^`]+)`/.exec(detail.message);
    throw new OptionsError(`invalid options: ${detail.message}`, option ? option[1] : undefined);
  }

  // The options object as JSON text for src/js.rs, which checks keys and types. Values JSON
  // cannot carry would vanish from the text, so they are refused here.
  function optionsJson(options) {
    if (options === undefined || options === null) return '';
    const prototype = typeof options === 'object' ? Object.getPrototypeOf(options) : undefined;
    if (prototype !== Object.prototype && prototype !== null) {
      const what = Array.isArray(options) ? 'an array' : typeof options === 'object' ? options.constructor?.name || 'an object' : typeof options;
      throw new OptionsError(`invalid options: expected a plain object, not ${what}`);
    }
    for (const [key, value] of Object.entries(options)) {
      const type = typeof value;
      if (type === 'function' || type === 'symbol' || type === 'bigint' || (type === 'number' && !Number.isFinite(value))) {
        throw new OptionsError(`invalid options: \`${key}\`: invalid type: ${type === 'number' ? String(value) : type}`, key);
      }
    }
    return JSON.stringify(options);
  }

  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  let names;
  function outcomeNames() {
    if (names === undefined) {
      names = JSON.parse(wasm.names());
      names.traceHeaderSet = new Set(names.traceHeaders);
    }
    return names;
  }

  // Leaf paths (`http.status_code`) of the attributes Datadog reads, in an output object.
  const DATADOG_ROOTS = ['dd', 'hash', 'phase', 'http', 'network', 'duration', 'status', 'message'];
  function leafPaths(value, prefix, into) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const key of Object.keys(value)) leafPaths(value[key], `${prefix}.${key}`, into);
    } else {
      into.push(prefix);
    }
    return into;
  }
  function parsed(text) {
    if (text instanceof Uint8Array) text = new TextDecoder().decode(text);
    try {
      const value = JSON.parse(text);
      return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null;
    } catch {
      return null;
    }
  }

  /** What one record became, and why. */
  class TransformResult {
    constructor(input, output, code, because) {
      const n = outcomeNames();
      this.input = input;
      this.output = output;
      if (code & 1) {
        this.outcome = 'passed_through';
        this.reason = n.errors[(code >> 1) & 7];
        this.because = because;
        this.shape = null;
        this.logKept = null;
        this.accessLog = false;
        this.traceSource = null;
      } else {
        this.outcome = 'enriched';
        this.reason = null;
        this.because = null;
        this.shape = n.shapes[(code >> 1) & 7];
        const kept = (code >> 4) & 7;
        this.logKept = kept ? n.logKept[kept - 1] : null;
        this.accessLog = Boolean(code & 0x80);
        const source = (code >> 8) & 15;
        this.traceSource = source ? n.traceSources[source - 1] : null;
      }
    }

    /** The output as an object (numbers beyond 2^53 lose precision; ids are strings). */
    get record() {
      if (this._record === undefined) this._record = parsed(this.output);
      return this._record;
    }

    /** `dd.trace_id` of the output, or null. */
    get traceId() {
      const dd = this.record && this.record.dd;
      return dd && typeof dd.trace_id === 'string' ? dd.trace_id : null;
    }

    /** `dd.span_id` of the output, or null. */
    get spanId() {
      const dd = this.record && this.record.dd;
      return dd && typeof dd.span_id === 'string' ? dd.span_id : null;
    }

    /** The record's keys that the transform reads as trace headers, with their kind. */
    get traceKeys() {
      if (this._traceKeys === undefined) {
        const keys = [];
        const record = this.outcome === 'enriched' ? this.record : parsed(this.input);
        const visit = (object, prefix) => {
          for (const key of Object.keys(object || {})) {
            const kind = wasm.traceKey(key);
            if (kind !== undefined && kind !== null) keys.push({ key: prefix + key, kind, value: object[key] });
          }
        };
        visit(record, '');
        if (record && record._log && typeof record._log === 'object') visit(record._log, '_log.');
        this._traceKeys = keys;
      }
      return this._traceKeys;
    }

    /** Leaf paths of the Datadog attributes in the output (`dd.trace_id`, `http.status_code`, ...). */
    get datadogAttributes() {
      if (this._attributes === undefined) {
        const record = this.outcome === 'enriched' ? this.record : null;
        this._attributes = [];
        for (const root of DATADOG_ROOTS) {
          if (record && Object.prototype.hasOwnProperty.call(record, root)) leafPaths(record[root], root, this._attributes);
        }
      }
      return this._attributes;
    }

    /** Keys of the record whose values were moved under `_log` because another value took the key. */
    get displaced() {
      const log = this.record && this.outcome === 'enriched' ? this.record._log : null;
      return log && typeof log === 'object' ? Object.keys(log).map((key) => `_log.${key}`) : [];
    }

    toJSON() {
      const { input, output, outcome, reason, because, shape, logKept, accessLog, traceSource } = this;
      return { input, output, outcome, reason, because, shape, logKept, accessLog, traceSource };
    }
  }

  /**
   * A reusable transformer: options once, then records in order. Records share state as the
   * CLI's lines of one run do (learned layouts; what a later record may be joined with).
   */
  class Transformer {
    constructor(options) {
      const json = optionsJson(options);
      try {
        this._inner = new wasm.Transformer(json);
      } catch (thrown) {
        rethrow(thrown);
      }
    }

    /** Transforms one record: a string (one line, no line end) or its UTF-8 bytes. */
    transform(record) {
      const inner = this._inner;
      if (!inner) throw new Error('this Transformer was freed');
      if (typeof record === 'string') {
        // As UTF-8 bytes: TextEncoder and TextDecoder are faster than the bindings' own string
        // passing on long records.
        const output = decoder.decode(inner.transform(encoder.encode(record)));
        const code = inner.outcome();
        return new TransformResult(record, output, code, code & 1 ? inner.passedThroughBecause() : null);
      }
      if (record instanceof Uint8Array) {
        const output = inner.transform(record);
        const code = inner.outcome();
        return new TransformResult(record, output, code, code & 1 ? inner.passedThroughBecause() : null);
      }
      throw new TypeError(`transform: expected a string or a Uint8Array, not ${record === null ? 'null' : typeof record}`);
    }

    /** Releases the wasm memory now, rather than when the object is collected. */
    free() {
      if (this._inner) this._inner.free();
      this._inner = undefined;
    }
  }

  /** Transforms one record with the given options (a fresh Transformer each call). */
  function transform(record, options) {
    const transformer = new Transformer(options);
    try {
      return transformer.transform(record);
    } finally {
      transformer.free();
    }
  }

  /** Checks an Envoy format string: its field names, or a FormatError with the position. */
  function parseFormat(format) {
    if (typeof format !== 'string') throw new TypeError(`parseFormat: expected a string, not ${typeof format}`);
    let fields;
    try {
      fields = wasm.parseFormat(format);
    } catch (thrown) {
      rethrow(thrown);
    }
    return { format, fields: JSON.parse(fields) };
  }

  // [name, value] pairs of any of the header collections traceContext takes.
  function headerPairs(headers) {
    const pairs = [];
    const add = (name, value) => {
      if (Array.isArray(value)) value.forEach((v) => add(name, v));
      else if (value !== undefined && value !== null) pairs.push([String(name), String(value)]);
    };
    if (headers === null || headers === undefined) return pairs;
    if (typeof headers.forEach === 'function' && typeof headers.get === 'function') {
      headers.forEach((value, name) => add(name, value)); // Fetch Headers, Map
    } else if (typeof headers[Symbol.iterator] === 'function') {
      for (const [name, value] of headers) add(name, value); // [name, value] pairs
    } else if (typeof headers === 'object') {
      for (const name of Object.keys(headers)) add(name, headers[name]); // IncomingMessage.headers
    } else {
      throw new TypeError(`traceContext: expected headers, not ${typeof headers}`);
    }
    return pairs;
  }

  /**
   * The trace context of an incoming request's headers (Node's `IncomingMessage.headers`, Fetch
   * `Headers`, a Map or [name, value] pairs), by the transform's rules: Datadog, W3C, B3 multi,
   * B3 single, X-Ray, the first valid one. Null when none is valid. Ids are strings.
   */
  function traceContext(headers) {
    const wanted = outcomeNames().traceHeaderSet;
    let text = '';
    for (const [name, value] of headerPairs(headers)) {
      const lower = name.toLowerCase();
      if (wanted.has(lower) && !/[\r\n]/.test(value)) text += `${lower}\n${value}\n`;
    }
    const context = wasm.traceContext(text);
    return context === undefined || context === null ? null : JSON.parse(context);
  }

  return { transform, Transformer, TransformResult, parseFormat, traceContext, OptionsError, FormatError };
}
