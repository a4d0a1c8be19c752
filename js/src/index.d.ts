/**
 * envoy-dd for JavaScript: the transform of the envoy-dd CLI and Fluent Bit filter, compiled to
 * WebAssembly. Envoy access logs (FireLens records, bare Envoy JSON objects) in, Datadog-correlated
 * records out: `dd.trace_id`/`dd.span_id`, `hash`, `phase` and Datadog's standard attributes.
 *
 * ```js
 * const { Transformer } = require('envoy-dd');
 * const t = new Transformer({ hash: '4f9c2a1', phase: 'canary' });
 * const { output, outcome, traceSource } = t.transform('{"method":"GET","path":"/x","response_code":200,"trace_id":"42"}');
 * ```
 */

/**
 * Options: envoy-dd's `Config`, in camelCase. Every key is optional; an unknown key or a value
 * of the wrong type throws an {@link OptionsError} naming it.
 */
export interface Options {
  /** Git commit of the running code, written as `hash` when the record has none (`--hash`). */
  hash?: string | null;
  /** `stable` or `canary`, written as `phase` when the record has none (`--phase`). */
  phase?: string | null;
  /**
   * How 128-bit trace ids are written in `dd.trace_id`: `decimal` (the lower 64 bits, the
   * default) or `hex` (32 lower-case hex digits when the upper half is non-zero).
   */
  traceId128?: 'decimal' | 'hex';
  /** Add Datadog standard attributes (`http.*`, `network.*`, `duration`) to access logs. Default true. */
  standardAttributes?: boolean;
  /** Add a Datadog `status` (log level) to access logs that have none. Default true. */
  status?: boolean;
  /** Add a short `message` to access logs that have none. Default true. */
  message?: boolean;
  /** Derive `phase` from an `ecs_task_definition` family ending in `-canary`/`-stable`. Default true. */
  derivePhase?: boolean;
  /**
   * The Envoy format string of text access logs in `log` (App Mesh's `format.text`), tried
   * before the built-in formats. A bad one throws a {@link FormatError}.
   */
  textFormat?: string | null;
  /**
   * Keep each Envoy key next to the standard attribute made from it (`--keep-source-attributes`).
   * Default false: a key the attribute holds whole moves there, as Datadog's remapper does.
   */
  keepSourceAttributes?: boolean;
  /**
   * How many request ids the request-id join remembers (`--request-id-join`): an access line
   * without a trace id gets the trace context of an earlier record with its request id.
   * Default 8192; 0 turns the join off.
   */
  requestIdJoin?: number;
  /**
   * Route templates such as `GET /users/{id}` (`--route`), whose path is `http.endpoint` for the
   * requests they match; other requests get the endpoint Datadog's tracers infer.
   */
  routes?: string[];
}

/** Input shapes, as the Rust API names them. */
export type Shape = 'log_json' | 'log_text' | 'log_kept' | 'bare';
/** Why a FireLens `log` string was kept as it is. */
export type LogKept = 'not_json' | 'invalid_json' | 'duplicate_key' | 'key_conflict';
/** Why a record was passed through unchanged. */
export type PassedThroughReason = 'invalid_utf8' | 'invalid_json' | 'duplicate_key' | 'too_large';
/** The header family a trace id came from. */
export type TraceSource = 'existing' | 'datadog' | 'w3c' | 'b3multi' | 'b3' | 'xray';

/** What one record became, and why. */
export interface TransformResult {
  /** The record given. */
  readonly input: string | Uint8Array;
  /**
   * The output line (no line end), byte for byte what `envoy-dd transform` writes for the
   * record with the same options. A Uint8Array when the input was one.
   */
  readonly output: string | Uint8Array;
  /** `enriched`, or `passed_through` (the output is the input, unchanged). */
  readonly outcome: 'enriched' | 'passed_through';
  /** Why the record was passed through; null when enriched. */
  readonly reason: PassedThroughReason | null;
  /** The same in words, with the byte offset (`invalid JSON: ... at byte 12`); null when enriched. */
  readonly because: string | null;
  /** The input shape; null when passed through. */
  readonly shape: Shape | null;
  /** When `shape` is `log_kept`: why the `log` string was kept. */
  readonly logKept: LogKept | null;
  /** A response code was found, so access-log attributes were considered. */
  readonly accessLog: boolean;
  /** Where `dd.trace_id` came from; null when the output has none. */
  readonly traceSource: TraceSource | null;
  /** The output parsed (computed on first use; numbers beyond 2^53 lose precision, ids are strings). */
  readonly record: Record<string, unknown> | null;
  /** `dd.trace_id` of the output, or null. */
  readonly traceId: string | null;
  /** `dd.span_id` of the output, or null. */
  readonly spanId: string | null;
  /** The record's keys that the transform reads as trace headers (computed on first use). */
  readonly traceKeys: { key: string; kind: string; value: unknown }[];
  /** Leaf paths of the Datadog attributes in the output: `dd.trace_id`, `hash`, `http.status_code`, ... */
  readonly datadogAttributes: string[];
  /** Values moved under `_log` because an added attribute or the envelope took their key. */
  readonly displaced: string[];
}

/**
 * A reusable transformer: options once, then many records, in order. Records share state as the
 * lines of one CLI run do, so a file's lines give the CLI's output for that file.
 */
export class Transformer {
  /** @throws {OptionsError} an unknown key or a wrong type. @throws {FormatError} a bad `textFormat`. */
  constructor(options?: Options);
  /** Transforms one record: one line without its line end, as a string or UTF-8 bytes. */
  transform(record: string | Uint8Array): TransformResult;
  /** Releases the module memory now rather than when the object is garbage-collected. */
  free(): void;
}

/** Transforms one record with the given options (a fresh {@link Transformer} for the call). */
export function transform(record: string | Uint8Array, options?: Options): TransformResult;

/**
 * Checks an Envoy format string (`%REQ(:METHOD)% %RESPONSE_CODE% ...`) as `textFormat` reads it.
 * @returns the format and the JSON keys its fields get, in order.
 * @throws {FormatError} with the position of the problem.
 */
export function parseFormat(format: string): { format: string; fields: string[] };

/** A trace context: ids as decimal strings (or 32 hex digits), never numbers. */
export interface TraceContext {
  source: Exclude<TraceSource, 'existing'>;
  /** The lower 64 bits in decimal: what `dd.trace_id` holds by default. */
  traceId: string;
  /** What `dd.trace_id` holds with `traceId128: 'hex'`: 32 hex digits for a 128-bit id, else decimal. */
  traceId128: string;
  /** The span (parent) id in decimal, or null when the source carried none. */
  spanId: string | null;
}

/** Header collections {@link traceContext} reads. */
export type Headers =
  | { forEach(callback: (value: string, name: string) => void): void; get(name: string): unknown }
  | Iterable<readonly [string, string]>
  | Record<string, string | string[] | undefined>;

/**
 * The trace context of an incoming request's headers: Node's `IncomingMessage.headers`, Fetch
 * `Headers`, a Map or [name, value] pairs. Read by the transform's rules, the first valid of
 * Datadog (`x-datadog-trace-id`, `x-datadog-parent-id`, `x-datadog-tags`), W3C `traceparent`,
 * B3 multi, B3 single, AWS `x-amzn-trace-id`. Null when none is valid.
 */
export function traceContext(headers: Headers): TraceContext | null;

/** Loads the WebAssembly module. Needed once before the rest in the web build; a no-op in Node. */
export function init(input?: string | URL | Request | Response | BufferSource | WebAssembly.Module): Promise<unknown>;

/** An options object with an unknown key or a value of the wrong type. */
export class OptionsError extends TypeError {
  /** The key at fault, when known. */
  readonly option?: string;
}

/** An Envoy format string that does not compile. */
export class FormatError extends SyntaxError {
  /** What is wrong, in words. */
  readonly reason: string;
  /** Byte offset (UTF-8) of the problem in the format string. */
  readonly position: number;
  /** The same place as a JavaScript string index (UTF-16), e.g. for a caret under a textarea. */
  readonly index: number;
  /** The format string. */
  readonly format: string;
  /** `textFormat` when the format came in the options. */
  readonly option?: string;
}
