// Builds the npm package into js/dist/ from the crate (feature `js`):
//
//   dist/node/        CommonJS for Node (require('./js/dist/node') from the repository root)
//   dist/web/         an ES module for browsers and bundlers (call `init()` once first)
//   dist/playground/  the playground page, static files only (works from file:// too)
//
// It adds the wasm32 target with rustup and installs the wasm-bindgen CLI of exactly the
// version in Cargo.lock with `cargo install --locked` into js/.tools (kept for the next build),
// so it needs a Rust toolchain and crates.io, and downloads no prebuilt binary. wasm-opt comes
// from the `binaryen` npm package (a devDependency, pinned; Binaryen compiled to JavaScript).
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const js = dirname(fileURLToPath(import.meta.url));
const root = dirname(js);
const dist = join(js, 'dist');
const tools = join(js, '.tools');
const targetDir = join(root, 'target', 'js');
const cargo = process.env.CARGO || 'cargo';

function run(command, args, options = {}) {
  console.error(`> ${command} ${args.join(' ')}`);
  return execFileSync(command, args, { stdio: ['ignore', options.capture ? 'pipe' : 'inherit', 'inherit'], cwd: root, ...options });
}

// The wasm-bindgen CLI must be the version of the crate that generated the module's
// custom sections, to the patch.
function lockedVersion(name) {
  const lock = readFileSync(join(root, 'Cargo.lock'), 'utf8');
  const match = new RegExp(`\\[\\[package\\]\\]\\nname = "${name}"\\nversion = "([^"]+)"`).exec(lock);
  if (!match) throw new Error(`${name} is not in Cargo.lock`);
  return match[1];
}

function wasmBindgen() {
  const version = lockedVersion('wasm-bindgen');
  const bin = join(tools, 'bin', process.platform === 'win32' ? 'wasm-bindgen.exe' : 'wasm-bindgen');
  if (existsSync(bin)) {
    const have = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
    if (have === `wasm-bindgen ${version}`) return bin;
  }
  run(cargo, ['install', 'wasm-bindgen-cli', '--version', version, '--locked', '--root', tools, '--force']);
  return bin;
}

function buildModule() {
  try {
    run('rustup', ['target', 'add', 'wasm32-unknown-unknown'], { stdio: ['ignore', 'ignore', 'inherit'] });
  } catch {
    console.error('rustup failed; going on in case the wasm32 target is there already');
  }
  // Flags from the caller's environment would replace these. simd128: every browser and Node
  // since 2021 runs Wasm SIMD (Fluent Bit's module is built without it, by its own script).
  const env = { ...process.env, CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS: '-C target-feature=+simd128' };
  delete env.RUSTFLAGS;
  delete env.CARGO_ENCODED_RUSTFLAGS;
  run(cargo, ['build', '--release', '--lib', '--features', 'js', '--target', 'wasm32-unknown-unknown', '--target-dir', targetDir], { env });
  return join(targetDir, 'wasm32-unknown-unknown', 'release', 'envoy_dd.wasm');
}

// wasm-opt after wasm-bindgen, as wasm-pack does: rustc's output shrinks by about a seventh
// (BENCHMARKS.md, "JavaScript") at the same speed. The features are those rustc enables for
// wasm32-unknown-unknown, plus simd128 (above); naming them keeps wasm-opt from using others.
// wasm-bindgen writes the same module for every target, so each distinct input runs once.
const WASM_OPT_FEATURES = ['--enable-simd', '--enable-bulk-memory', '--enable-nontrapping-float-to-int',
  '--enable-sign-ext', '--enable-mutable-globals', '--enable-multivalue', '--enable-reference-types'];
const optimized = new Map();
function optimize(file) {
  const key = createHash('sha256').update(readFileSync(file)).digest('hex');
  if (!optimized.has(key)) {
    const out = join(targetDir, `opt-${key.slice(0, 16)}.wasm`);
    run(process.execPath, [join(js, 'node_modules', 'binaryen', 'bin', 'wasm-opt'), '-O3', ...WASM_OPT_FEATURES, file, '-o', out]);
    optimized.set(key, out);
  }
  copyFileSync(optimized.get(key), file);
}

const api = readFileSync(join(js, 'src', 'api.js'), 'utf8');
const types = readFileSync(join(js, 'src', 'index.d.ts'), 'utf8');
const EXPORTS = ['transform', 'Transformer', 'TransformResult', 'parseFormat', 'traceContext', 'OptionsError', 'FormatError'];

function writeNode(bindgen, wasm) {
  const out = join(dist, 'node');
  run(bindgen, ['--target', 'nodejs', '--no-typescript', '--out-dir', out, '--out-name', 'envoy_dd', wasm]);
  optimize(join(out, 'envoy_dd_bg.wasm'));
  // One `exports.name =` per export, which Node's ES module loader recognises as named exports.
  writeFileSync(join(out, 'index.js'), `'use strict';\n${api}\nconst api = makeApi(require('./envoy_dd.js'));\n` +
    EXPORTS.map((name) => `exports.${name} = api.${name};\n`).join('') +
    `/** Nothing to load in Node: the module is compiled when this file is required. */\nexports.init = () => Promise.resolve();\n`);
  writeFileSync(join(out, 'index.d.ts'), types);
  writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'commonjs', main: 'index.js', types: 'index.d.ts' }, null, 2) + '\n');
}

function writeWeb(bindgen, wasm) {
  const out = join(dist, 'web');
  run(bindgen, ['--target', 'web', '--no-typescript', '--out-dir', out, '--out-name', 'envoy_dd', wasm]);
  optimize(join(out, 'envoy_dd_bg.wasm'));
  writeFileSync(join(out, 'index.js'), `import initWasm, * as wasm from './envoy_dd.js';\n${api}\n` +
    `const api = makeApi(wasm);\nlet ready;\n` +
    `/** Loads the module (from envoy_dd_bg.wasm next to this file, or what you pass); call once before the rest. */\n` +
    `export function init(input) {\n  return (ready ||= initWasm(input === undefined ? undefined : { module_or_path: input }));\n}\n` +
    `export const { ${EXPORTS.join(', ')} } = api;\n`);
  writeFileSync(join(out, 'index.d.ts'), types);
  writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'module', main: 'index.js', types: 'index.d.ts' }, null, 2) + '\n');
}

// The playground loads as classic scripts with the module inlined, so that index.html also
// works opened from disk (browsers refuse ES modules and fetch() on file:// pages).
function writePlayground(bindgen, wasm) {
  const out = join(dist, 'playground');
  const tmp = join(targetDir, 'no-modules');
  run(bindgen, ['--target', 'no-modules', '--no-typescript', '--out-dir', tmp, '--out-name', 'envoy_dd', wasm]);
  optimize(join(tmp, 'envoy_dd_bg.wasm'));
  const glue = readFileSync(join(tmp, 'envoy_dd.js'), 'utf8');
  const bytes = readFileSync(join(tmp, 'envoy_dd_bg.wasm')).toString('base64');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'envoy-dd.js'), `${glue}\n${api}\n` +
    `window.envoyDd = (function () {\n  const bytes = Uint8Array.from(atob(${JSON.stringify(bytes)}), (c) => c.charCodeAt(0));\n` +
    `  const ready = wasm_bindgen({ module_or_path: bytes }).then(() => makeApi(wasm_bindgen));\n  return { ready };\n})();\n`);
  for (const file of ['index.html', 'style.css', 'app.js', 'setup.js']) {
    copyFileSync(join(js, 'playground', file), join(out, file));
  }
}

rmSync(dist, { recursive: true, force: true });
const bindgen = wasmBindgen();
const wasm = buildModule();
writeNode(bindgen, wasm);
writeWeb(bindgen, wasm);
writePlayground(bindgen, wasm);

const size = readFileSync(join(dist, 'web', 'envoy_dd_bg.wasm'));
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.error(`dist/web/envoy_dd_bg.wasm: ${kib(size.length)} (${kib(gzipSync(size, { level: 9 }).length)} gzipped)`);
