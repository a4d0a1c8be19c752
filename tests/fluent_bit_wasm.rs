//! The Fluent Bit WASM filter, run inside a host the way Fluent Bit runs it.
//!
//! `fluent-bit/build-wasm.sh` builds `dist/envoy_dd.wasm` (the file users ship); these tests
//! load it into wasmi and call it as `flb_wasm_call_function_format_json` in Fluent Bit's
//! `src/wasm/flb_wasm.c` does: copy tag and record, each with a trailing NUL, into guest memory
//! through the exported `malloc`; call the filter with six `i32`s; check that the result points
//! at a NUL-terminated string inside memory and copy it out (`strdup`); `free` both copies.
//!
//! The last tests check that the files in `fluent-bit/` agree with the module and with each
//! other. Run `cargo test --test fluent_bit_wasm -- --nocapture` to see the interpreter cost,
//! and where it goes per function of the module.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use envoy_dd::{Config, Outcome, Shape, TextFormat, TraceIdFormat, Transformer};
use wasmi::{CompilationMode, Engine, Linker, Memory, Module, Store, TypedFunc};
use wasmparser::{KnownCustom, Name, Operator, Parser, Payload, Validator, WasmFeatures};

/// The generated text-log stream of `benches/text.rs`.
#[path = "../benches/common/one_envelope.rs"]
mod one_envelope;
#[path = "../benches/common/text_stream.rs"]
mod text_stream;

/// The largest module the project ships.
const SIZE_BUDGET: usize = 300 * 1024;
/// The filter function, as `Function_Name` names it.
const FUNCTION: &str = "envoy_dd_filter";
/// Where the log-router image keeps the module (`WASM_Path`).
const WASM_PATH: &str = "/fluent-bit/envoy-dd/envoy_dd.wasm";
/// What Fluent Bit passes besides the record; the filter ignores it.
const TAG: &[u8] = b"envoy-firelens-af5f1b5e4b3c";
const TIME: (u32, u32) = (1_717_423_200, 23_000_000);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Builds the module with the documented command, once per test process.
fn module_bytes() -> &'static [u8] {
    static MODULE: OnceLock<Vec<u8>> = OnceLock::new();
    MODULE.get_or_init(|| build_module(&[], "dist/envoy_dd.wasm"))
}

/// Builds the module with `fluent-bit/build-wasm.sh` and its `options` into `out` (relative to
/// the repository root), and returns its bytes.
fn build_module(options: &[&str], out: &str) -> Vec<u8> {
    let build = Command::new("bash")
        .arg("fluent-bit/build-wasm.sh")
        .args(options)
        .args(["--out", out])
        .current_dir(root())
        .output()
        .expect("run fluent-bit/build-wasm.sh");
    assert!(
        build.status.success(),
        "fluent-bit/build-wasm.sh {options:?} failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    fs::read(root().join(out)).expect("the built module")
}

/// One instance of a module and the exports Fluent Bit uses.
struct Host {
    store: Store<()>,
    instance: wasmi::Instance,
    memory: Memory,
    malloc: TypedFunc<u32, u32>,
    free: TypedFunc<u32, ()>,
    filter: TypedFunc<(u32, u32, u32, u32, u32, u32), u32>,
}

/// What one call of the filter returned, and what it cost: wasmi fuel (0 when not metered) and
/// executed Wasm instructions (0 unless the module comes from [`count_instructions`]).
struct Call {
    output: Vec<u8>,
    fuel: u64,
    executed: u64,
}

impl Host {
    /// The shipped module, as Fluent Bit loads it.
    fn new() -> Host {
        Host::load(module_bytes(), false)
    }

    fn load(bytes: &[u8], metered: bool) -> Host {
        let mut config = wasmi::Config::default();
        // Eager translation, so that no call is charged for translating code on first use.
        config
            .consume_fuel(metered)
            .compilation_mode(CompilationMode::Eager);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, bytes).expect("wasmi accepts the module");
        let mut store = Store::new(&engine, ());
        if metered {
            store.set_fuel(u64::MAX / 2).unwrap();
        }
        let instance = Linker::new(&engine)
            .instantiate_and_start(&mut store, &module)
            .expect("instantiates without imports");
        Host {
            memory: instance
                .get_memory(&store, "memory")
                .expect("exports its memory"),
            malloc: instance
                .get_typed_func(&store, "malloc")
                .expect("exports malloc(i32) -> i32"),
            free: instance
                .get_typed_func(&store, "free")
                .expect("exports free(i32)"),
            filter: instance
                .get_typed_func(&store, FUNCTION)
                .expect("exports the filter, 6 x i32 -> i32"),
            instance,
            store,
        }
    }

    /// Filters one record exactly as Fluent Bit does.
    fn filter(&mut self, record: &[u8]) -> Call {
        self.try_filter(record).expect("the filter does not trap")
    }

    /// [`Host::filter`], returning a trap (which would make Fluent Bit drop the record).
    fn try_filter(&mut self, record: &[u8]) -> Result<Call, wasmi::Error> {
        let tag = self.dup(TAG);
        let copy = self.dup(record);
        let call = self.call(tag, TAG.len() as u32, copy, record.len() as u32);
        self.free(tag);
        self.free(copy);
        call
    }

    /// `wasm_runtime_module_dup_data(data, len + 1)`: a copy with a trailing NUL, or 0 if the
    /// guest's `malloc` fails.
    fn dup(&mut self, data: &[u8]) -> u32 {
        let ptr = self.malloc(data.len() as u32 + 1);
        if ptr != 0 {
            let memory = self.memory.data_mut(&mut self.store);
            memory[ptr as usize..][..data.len()].copy_from_slice(data);
            memory[ptr as usize + data.len()] = 0;
        }
        ptr
    }

    fn malloc(&mut self, size: u32) -> u32 {
        self.malloc
            .call(&mut self.store, size)
            .expect("malloc does not trap")
    }

    fn free(&mut self, ptr: u32) {
        self.free
            .call(&mut self.store, ptr)
            .expect("free does not trap");
    }

    /// Calls the filter and reads its result as the host does.
    fn call(
        &mut self,
        tag: u32,
        tag_len: u32,
        record: u32,
        record_len: u32,
    ) -> Result<Call, wasmi::Error> {
        let (fuel, executed) = (self.store.get_fuel().unwrap_or(0), self.executed());
        let result = self.filter.call(
            &mut self.store,
            (tag, tag_len, TIME.0, TIME.1, record, record_len),
        )?;
        let fuel = fuel - self.store.get_fuel().unwrap_or(0);
        let executed = self.executed() - executed;
        // `wasm_runtime_validate_app_str_addr`, then `strdup`.
        let memory = self.memory.data(&self.store);
        assert!(
            result != 0 && (result as usize) < memory.len(),
            "result pointer {result:#x} is outside linear memory"
        );
        let string = &memory[result as usize..];
        let len = string
            .iter()
            .position(|&b| b == 0)
            .expect("the result is NUL-terminated inside memory");
        assert!(len > 0, "an empty result makes Fluent Bit drop the record");
        Ok(Call {
            output: string[..len].to_vec(),
            fuel,
            executed,
        })
    }

    fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// The instruction counter of a module made by [`count_instructions`], else 0.
    fn executed(&self) -> u64 {
        let counter = self.instance.get_global(&self.store, COUNTER);
        counter.map_or(0, |global| global.get(&self.store).i64().unwrap() as u64)
    }

    /// The counters of a module made by [`count_instructions`] with a counter per function,
    /// by defined function.
    fn executed_per_function(&self) -> Vec<u64> {
        (0..)
            .map_while(|i| {
                self.instance
                    .get_global(&self.store, &format!("{COUNTER}_{i}"))
            })
            .map(|global| global.get(&self.store).i64().unwrap() as u64)
            .collect()
    }
}

/// What the native build of the crate writes for `record` (the filter uses the default config).
fn native(transformer: &mut Transformer, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    transformer.transform(record, &mut out);
    out
}

/// The fixture corpus: every non-empty line of `fixtures/input/*.jsonl`, then of the FireLens
/// records with text access logs, `fixtures/text/*.input.jsonl`, by file.
fn corpus() -> Vec<(String, Vec<Vec<u8>>)> {
    let files_in = |dir: &str, suffix: &str| {
        let mut files: Vec<PathBuf> = fs::read_dir(root().join(dir))
            .expect(dir)
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.to_string_lossy().ends_with(suffix))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no {dir}/*{suffix}");
        files
    };
    let mut files = files_in("fixtures/input", ".jsonl");
    files.extend(files_in("fixtures/text", ".input.jsonl"));
    files
        .into_iter()
        .map(|path| {
            let name = path.strip_prefix(root().join("fixtures")).unwrap();
            let name = name.to_string_lossy().into_owned();
            let data = fs::read(&path).unwrap();
            let records = data
                .split(|&b| b == b'\n')
                .filter(|line| !line.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            (name, records)
        })
        .collect()
}

#[test]
fn module_is_loadable_by_fluent_bit() {
    let bytes = module_bytes();
    assert!(
        bytes.len() <= SIZE_BUDGET,
        "module is {} bytes, budget {SIZE_BUDGET}",
        bytes.len()
    );

    // Fluent Bit's WAMR has the Wasm 2.0 features except SIMD (WAMR_BUILD_SIMD 0).
    let features = WasmFeatures::WASM2 - WasmFeatures::SIMD;
    Validator::new_with_features(features)
        .validate_all(bytes)
        .expect("valid with WAMR's features");

    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.unwrap() {
            Payload::ImportSection(imports) => {
                let names: Vec<_> = imports
                    .into_iter()
                    .map(|i| i.unwrap())
                    .map(|i| format!("{}::{}", i.module, i.name))
                    .collect();
                assert!(
                    names.is_empty(),
                    "the module imports {names:?}; Fluent Bit's filter provides nothing"
                );
            }
            Payload::ExportSection(section) => {
                exports.extend(section.into_iter().map(|e| e.unwrap().name.to_owned()))
            }
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader().unwrap();
                while !ops.eof() {
                    let at = ops.original_position();
                    ops.read().unwrap();
                    // 0xFD prefixes SIMD opcodes, 0xFE atomics; WAMR here has neither.
                    assert!(
                        !matches!(bytes[at], 0xFD | 0xFE),
                        "prefixed opcode {:#x} at byte {at}",
                        bytes[at]
                    );
                }
            }
            _ => {}
        }
    }
    for name in [FUNCTION, "malloc", "free", "memory"] {
        assert!(
            exports.iter().any(|e| e == name),
            "{name} is not exported: {exports:?}"
        );
    }
    // Signatures are checked by `get_typed_func` when the host binds the exports.
    Host::new();
}

#[test]
fn corpus_gives_the_native_output() {
    let mut host = Host::new();
    let mut transformer = Transformer::new(Config::default());
    for (file, records) in corpus() {
        for (line, record) in records.iter().enumerate() {
            let call = host
                .try_filter(record)
                .unwrap_or_else(|trap| panic!("{file}:{}: {trap}", line + 1));
            assert!(
                call.output == native(&mut transformer, record),
                "{file}:{}: wasm output differs from the native transform:\n{}",
                line + 1,
                String::from_utf8_lossy(&call.output)
            );
        }
    }
}

/// Every non-empty line of a file under `fixtures/`.
fn fixture_lines(path: &str) -> Vec<Vec<u8>> {
    read(path)
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.as_bytes().to_vec())
        .collect()
}

#[test]
fn build_time_settings_reach_the_module() {
    let format_file = "fixtures/text/datadog-trace.format";
    let bytes = build_module(
        &[
            "--text-format-file",
            format_file,
            "--trace-id-128",
            "hex",
            "--request-id-join",
            "1",
        ],
        "target/wasm-test/datadog-trace.wasm",
    );
    let mut host = Host::load(&bytes, false);
    let config = Config {
        text_format: Some(TextFormat::parse(read(format_file).trim_end()).unwrap()),
        trace_id_128: TraceIdFormat::Hex,
        request_id_join: 1,
        ..Config::default()
    };
    let mut transformer = Transformer::new(config.clone());
    // The custom-format lines only parse with the format, and the 128-bit ids only come out
    // in hex with the setting: a module without either would differ from the native output.
    let mut records = fixture_lines("fixtures/text/datadog-trace.input.jsonl");
    records.extend(fixture_lines("fixtures/input/trace-128-hex.jsonl"));
    // Remembering one request id joins fewer access lines than the default: a module without
    // the setting would join more.
    let join = fixture_lines("fixtures/input/service-connect-join.jsonl");
    let joined = |entries| {
        let mut t = Transformer::new(Config {
            request_id_join: entries,
            ..Config::default()
        });
        let joins = join.iter().filter(|r| {
            matches!(t.transform(r, &mut Vec::new()), Outcome::Enriched(e) if e.trace == Some(envoy_dd::TraceSource::RequestId))
        });
        joins.count()
    };
    assert!(joined(1) < joined(envoy_dd::Config::default().request_id_join));
    records.extend(join);
    let mut probe = Transformer::new(config);
    let parsed = records
        .iter()
        .filter(|r| {
            let outcome = probe.transform(r, &mut Vec::new());
            matches!(outcome, Outcome::Enriched(e) if e.shape == Shape::LogText)
        })
        .count();
    assert!(
        parsed >= 3,
        "only {parsed} records parsed with the custom format"
    );
    for (i, record) in records.iter().enumerate() {
        let output = host.filter(record).output;
        assert!(
            output == native(&mut transformer, record),
            "record {}: wasm output differs from the native transform with the same settings:\n{}",
            i + 1,
            String::from_utf8_lossy(&output)
        );
    }
}

/// Route templates and `--keep-source-attributes`, built in, give what the native transform
/// gives with the same config.
#[test]
fn route_and_keep_source_settings_reach_the_module() {
    let bytes = build_module(
        &[
            "--route",
            "GET /api/v1/users/{id}",
            "--route",
            "/ping",
            "--keep-source-attributes",
        ],
        "target/wasm-test/routes-keep.wasm",
    );
    let mut host = Host::load(&bytes, false);
    let config = Config {
        routes: envoy_dd::endpoint::Routes::parse("GET /api/v1/users/{id}\n/ping").unwrap(),
        keep_source_attributes: true,
        ..Config::default()
    };
    let mut transformer = Transformer::new(config);
    let mut records = fixture_lines("fixtures/input/firelens-appmesh.jsonl");
    records.truncate(200);
    let routed = br#"{"response_code":200,"method":"GET","path":"/api/v1/users/42"}"#.to_vec();
    let output = host.filter(&routed).output;
    let text = String::from_utf8_lossy(&output);
    assert!(
        text.starts_with(r#"{"response_code":200,"method":"GET""#),
        "{text}"
    );
    assert!(
        text.contains(r#""endpoint":"/api/v1/users/{id}""#),
        "{text}"
    );
    records.push(routed);
    for (i, record) in records.iter().enumerate() {
        let output = host.filter(record).output;
        assert!(
            output == native(&mut transformer, record),
            "record {}: wasm output differs from the native transform with the same settings:\n{}",
            i + 1,
            String::from_utf8_lossy(&output)
        );
    }
}

#[test]
fn build_time_settings_are_checked_before_building() {
    let build = Command::new("bash")
        .args(["fluent-bit/build-wasm.sh", "--text-format", "%REQ(:METHOD"])
        .args(["--out", "target/wasm-test/never.wasm"])
        .current_dir(root())
        .output()
        .expect("run fluent-bit/build-wasm.sh");
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert_eq!(build.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("at byte 4"), "{stderr}");
    assert!(!root().join("target/wasm-test/never.wasm").exists());
}

#[test]
fn unusable_build_time_settings_are_reported_on_every_record() {
    // Built with cargo directly, past the script's check, in a target directory of its own.
    let target = root().join("target/wasm-unusable");
    let build = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .arg("--target-dir")
        .arg(&target)
        .env("ENVOY_DD_TRACE_ID_128", "128")
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            "-C target-feature=-simd128",
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .current_dir(root())
        .output()
        .expect("cargo build");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let bytes = fs::read(target.join("wasm32-unknown-unknown/release/envoy_dd.wasm")).unwrap();
    let mut host = Host::load(&bytes, false);
    for record in &corpus()[0].1[..5] {
        let output = host.filter(record).output;
        let value: serde_json::Value = serde_json::from_slice(&output).expect("a JSON object");
        assert_eq!(
            value["envoy_dd_error"],
            "ENVOY_DD_TRACE_ID_128: expected `decimal` or `hex`"
        );
        assert_eq!(value["log"].as_str().unwrap().as_bytes(), &record[..]);
    }
}

#[test]
fn large_and_invalid_records_come_back_whole() {
    let mut host = Host::new();
    let mut transformer = Transformer::new(Config::default());

    // 1 MiB of request path inside a FireLens-wrapped App Mesh line: enriched, nothing cut.
    let path = "/a".repeat(512 * 1024);
    let log = format!(
        r#"{{"response_code":200,"method":"GET","path":"{path}","duration":3,"trace_id":"42","span_id":"7"}}"#
    );
    let record = serde_json::json!({ "source": "stdout", "log": log, "ecs_task_definition": "api-canary:42" }).to_string();
    let call = host.filter(record.as_bytes());
    assert_eq!(call.output, native(&mut transformer, record.as_bytes()));
    assert!(call.output.len() > record.len(), "the record was enriched");

    // 1 MiB that is not JSON: back unchanged.
    let text = vec![b'x'; 1 << 20];
    assert_eq!(host.filter(&text).output, text);

    // Invalid UTF-8 (a Latin-1 byte): back unchanged.
    let latin1 = b"{\"log\":\"caf\xe9\",\"source\":\"stdout\"}";
    assert_eq!(host.filter(latin1).output, latin1);
}

#[test]
fn a_record_with_a_nul_byte_is_wrapped_not_cut() {
    let mut host = Host::new();
    let record = b"{\"log\":\"a\0b\",\"source\":\"stdout\"}";
    let output = host.filter(record).output;
    let value: serde_json::Value = serde_json::from_slice(&output).expect("a JSON object");
    assert_eq!(value["envoy_dd_error"], "record contains NUL byte");
    assert_eq!(value["log"].as_str().unwrap().as_bytes(), record);
}

#[test]
fn host_edge_cases_do_not_trap() {
    let mut host = Host::new();
    let tag = host.dup(TAG);

    // The host passes 0 when copying the record failed.
    let call = host.call(tag, TAG.len() as u32, 0, 0).unwrap();
    assert_eq!(call.output, br#"{"envoy_dd_error":"record missing"}"#);

    // A record reaching past the end of memory.
    let end = host.memory_bytes() as u32;
    let call = host.call(tag, TAG.len() as u32, end - 4, 8).unwrap();
    assert_eq!(call.output, br#"{"envoy_dd_error":"record out of bounds"}"#);

    // An empty record: passed through unchanged it would be "", which Fluent Bit drops.
    let empty = host.dup(b"");
    let call = host.call(tag, TAG.len() as u32, empty, 0).unwrap();
    assert_eq!(call.output, br#"{"envoy_dd_error":"record empty"}"#);
    host.free(empty);

    // malloc(0) is a real, distinct block; free(0) is a no-op.
    let (a, b) = (host.malloc(0), host.malloc(0));
    assert!(a != 0 && b != 0 && a != b);
    host.free(a);
    host.free(b);
    host.free(0);
    host.free(tag);
}

/// The host's blocks are handed back for its next `malloc`s (a tag and a record copy per
/// record): distinct while held, holding what was written into them, and a larger request
/// gets a block of its own.
#[test]
fn freed_blocks_serve_the_next_records() {
    let mut host = Host::new();
    let (tag, record) = (host.dup(&[b't'; 12]), host.dup(&[b'r'; 999]));
    assert!(tag != 0 && record != 0 && tag != record);
    host.free(tag);
    host.free(record);
    let (tag_again, record_again) = (host.dup(&[b'T'; 12]), host.dup(&[b'R'; 999]));
    assert_eq!(
        (tag_again, record_again),
        (tag, record),
        "the freed blocks are reused"
    );
    let larger = host.dup(&[b'L'; 4999]);
    assert!(larger != 0 && larger != tag && larger != record);
    let memory = host.memory.data(&host.store);
    for (ptr, len, byte) in [(tag, 12, b'T'), (record, 999, b'R'), (larger, 4999, b'L')] {
        let block = &memory[ptr as usize..][..len + 1];
        assert!(block[..len].iter().all(|&b| b == byte) && block[len] == 0);
    }
    for ptr in [tag, record, larger] {
        host.free(ptr);
    }
    // The record's output is still right after the blocks changed hands.
    let record = br#"{"log":"plain text","source":"stdout"}"#;
    assert_eq!(
        host.filter(record).output,
        native(&mut Transformer::new(Config::default()), record)
    );
}

#[test]
fn memory_stays_flat_over_100_000_calls() {
    let mut host = Host::new();
    let records: Vec<Vec<u8>> = corpus()
        .into_iter()
        .flat_map(|(_, records)| records)
        .collect();
    // Warm-up: two passes over the corpus. The first grows the filter's buffers to the largest
    // record while the host's copies come and go around them; the allocator settles into its
    // steady layout during the second.
    for record in records.iter().chain(&records) {
        host.filter(record);
    }
    let warm = host.memory_bytes();
    for record in records.iter().cycle().take(100_000) {
        host.filter(record);
    }
    assert_eq!(
        host.memory_bytes(),
        warm,
        "linear memory grew after warm-up: a leak"
    );
}

/// Name of the counter global that [`count_instructions`] adds and exports.
const COUNTER: &str = "executed_instructions";

/// Returns `module` with a counter of executed Wasm instructions: an exported mutable `i64`
/// global, incremented before every instruction. As in wasmi's and wasmtime's fuel, structural
/// instructions that do no work (`block`, `loop`, `else`, `end`, `nop`, `drop`, `return`,
/// `unreachable`) count nothing. wasmi's own fuel is charged per block on entry, so it also
/// counts instructions that an early branch out of the block skips; this counter does not.
///
/// With `per_function`, each defined function counts in a global of its own, exported as
/// `executed_instructions_N` for the Nth defined function (a profile, with inlined functions
/// counted in their caller).
fn count_instructions(module: &[u8], per_function: bool) -> Vec<u8> {
    fn leb(out: &mut Vec<u8>, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            out.push(if value == 0 { byte } else { byte | 0x80 });
            if value == 0 {
                break;
            }
        }
    }
    fn section(out: &mut Vec<u8>, id: u8, count: u32, items: &[u8]) {
        let mut content = Vec::new();
        leb(&mut content, count.into());
        content.extend_from_slice(items);
        out.push(id);
        leb(out, content.len() as u64);
        out.extend_from_slice(&content);
    }

    let mut out = module[..8].to_vec(); // magic and version
    let (mut counter, mut counters) = (None, 1);
    let (mut bodies, mut total, mut remaining) = (Vec::new(), 0, 0);
    for payload in Parser::new(0).parse_all(module) {
        match payload.unwrap() {
            Payload::GlobalSection(globals) => {
                // The new globals go last, so no existing global index changes.
                let mut items = module[globals.original_position()..globals.range().end].to_vec();
                for _ in 0..counters {
                    items.extend_from_slice(&[0x7e, 0x01, 0x42, 0x00, 0x0b]); // mut i64 = 0
                }
                counter = Some(globals.count());
                section(&mut out, 6, globals.count() + counters, &items);
            }
            Payload::ExportSection(exports) => {
                let mut items = module[exports.original_position()..exports.range().end].to_vec();
                let first = counter.expect("a global section");
                for i in 0..counters {
                    let name = match per_function {
                        true => format!("{COUNTER}_{i}"),
                        false => COUNTER.to_string(),
                    };
                    leb(&mut items, name.len() as u64);
                    items.extend_from_slice(name.as_bytes());
                    items.push(0x03); // a global
                    leb(&mut items, (first + i).into());
                }
                section(&mut out, 7, exports.count() + counters, &items);
            }
            Payload::CodeSectionStart { count, .. } => (total, remaining) = (count, count),
            Payload::CodeSectionEntry(body) => {
                let function = match per_function {
                    true => total - remaining,
                    false => 0,
                };
                let global = (counter.expect("a global section") + function).into();
                let mut ops = body.get_operators_reader().unwrap();
                let mut code = module[body.range().start..ops.original_position()].to_vec(); // locals
                while !ops.eof() {
                    let start = ops.original_position();
                    let op = ops.read().unwrap();
                    let free = matches!(
                        op,
                        Operator::Block { .. }
                            | Operator::Loop { .. }
                            | Operator::Else
                            | Operator::End
                            | Operator::Nop
                            | Operator::Drop
                            | Operator::Return
                            | Operator::Unreachable
                    );
                    if !free {
                        code.push(0x23); // global.get
                        leb(&mut code, global);
                        code.extend_from_slice(&[0x42, 0x01, 0x7c, 0x24]); // i64.const 1, i64.add, global.set
                        leb(&mut code, global);
                    }
                    code.extend_from_slice(&module[start..ops.original_position()]);
                }
                leb(&mut bodies, code.len() as u64);
                bodies.extend_from_slice(&code);
                remaining -= 1;
                if remaining == 0 {
                    section(&mut out, 10, total, &bodies);
                }
            }
            other => {
                if let (Payload::FunctionSection(functions), true) = (&other, per_function) {
                    counters = functions.count();
                }
                if let Some((id, range)) = other.as_section() {
                    out.push(id);
                    leb(&mut out, range.len() as u64);
                    out.extend_from_slice(&module[range]);
                }
            }
        }
    }
    out
}

/// The names of the module's defined functions, in order, from its `name` section (the
/// module imports no functions, so function indices start with the defined ones).
fn function_names(module: &[u8]) -> Vec<&str> {
    let mut names = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        let Payload::CustomSection(custom) = payload.unwrap() else {
            continue;
        };
        let KnownCustom::Name(reader) = custom.as_known() else {
            continue;
        };
        for part in reader {
            if let Name::Function(map) = part.unwrap() {
                for naming in map {
                    let naming = naming.unwrap();
                    let index = naming.index as usize;
                    if names.len() <= index {
                        names.resize(index + 1, "?");
                    }
                    names[index] = naming.name;
                }
            }
        }
    }
    names
}

/// `_ZN8envoy_dd6layout6Layout9read_from17h0123456789abcdefE` → `envoy_dd::layout::Layout::read_from`
/// (Rust's legacy symbol mangling). A symbol in Rust's v0 mangling (the standard library's
/// allocator, `dlmalloc`, has them) becomes its crate, `dlmalloc::…`; other names stay as
/// they are.
fn demangle(symbol: &str) -> String {
    if let Some(v0) = symbol.strip_prefix("_R") {
        // The first identifier is the crate's: `Cs<disambiguator>_<length><name>`.
        let krate = v0.split_once("Cs").and_then(|(_, rest)| {
            let rest = &rest[rest.find('_')? + 1..];
            let digits = rest.find(|c: char| !c.is_ascii_digit())?;
            rest.get(digits..digits + rest[..digits].parse::<usize>().ok()?)
        });
        return format!("{}::…", krate.unwrap_or(symbol));
    }
    let Some(mut rest) = symbol.strip_prefix("_ZN") else {
        return symbol.to_string();
    };
    let mut parts = Vec::new();
    while let Some(len_end) = rest.find(|c: char| !c.is_ascii_digit()).filter(|&i| i > 0) {
        let len: usize = rest[..len_end].parse().unwrap();
        let Some(part) = rest.get(len_end..len_end + len) else {
            return symbol.to_string();
        };
        // `_$LT$T$u20$as$u20$Trait$GT$`: the `_` only keeps the identifier from starting with `$`.
        parts.push(part.strip_prefix("_$").map_or(part, |_| &part[1..]));
        rest = &rest[len_end + len..];
    }
    if parts
        .last()
        .is_some_and(|hash| hash.starts_with('h') && hash.len() == 17)
    {
        parts.pop();
    }
    let path = parts.join("::");
    [
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$RF$", "&"),
        ("$BP$", "*"),
        ("$C$", ","),
        ("$u20$", " "),
        ("$u27$", "'"),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("..", "::"),
    ]
    .iter()
    .fold(path, |path, (from, to)| path.replace(from, to))
}

/// What a set of records cost the filter.
#[derive(Default)]
struct Cost {
    records: usize,
    bytes: usize,
    executed: u64,
    fuel: u64,
}

impl Cost {
    fn add(&mut self, other: &Cost) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.executed += other.executed;
        self.fuel += other.fuel;
    }

    fn row(&self, name: &str) -> String {
        let Cost {
            records,
            bytes,
            executed,
            fuel,
        } = *self;
        let per_record = executed as f64 / records as f64;
        let (per_byte, fuel_per_byte) =
            (executed as f64 / bytes as f64, fuel as f64 / bytes as f64);
        format!("| {name} | {records} | {bytes} | {per_record:.0} | {per_byte:.1} | {fuel_per_byte:.1} |")
    }
}

/// Executed Wasm instructions per record and per input byte, and wasmi's fuel, over the corpus.
///
/// Each file is measured on instances of its own, warmed by one pass over the file (Fluent Bit
/// keeps one instance for its lifetime, and a log router serves one task's containers): what
/// the filter learned from one file would otherwise decide what the next one costs. The last
/// row runs the whole corpus, file after file, through one instance.
#[test]
fn interpreter_cost() {
    let corpus = corpus();
    let counting = count_instructions(module_bytes(), false);
    let measure = |records: &[&Vec<u8>], name: &str| {
        let mut counted = Host::load(&counting, false);
        let mut metered = Host::load(module_bytes(), true);
        for record in records {
            counted.filter(record);
            metered.filter(record);
        }
        let mut cost = Cost {
            records: records.len(),
            ..Cost::default()
        };
        for record in records {
            let (call, check) = (counted.filter(record), metered.filter(record));
            assert!(
                call.output == check.output,
                "{name}: the instruction counter changed the output"
            );
            (cost.bytes, cost.executed, cost.fuel) = (
                cost.bytes + record.len(),
                cost.executed + call.executed,
                cost.fuel + check.fuel,
            );
        }
        cost
    };
    println!("| corpus file | records | input bytes | instructions per record | per input byte | wasmi fuel per input byte |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut all = Cost::default();
    for (file, records) in &corpus {
        let cost = measure(&records.iter().collect::<Vec<_>>(), file);
        println!("{}", cost.row(file));
        all.add(&cost);
    }
    println!("{}", all.row("all, each file alone"));
    let stream: Vec<_> = corpus.iter().flat_map(|(_, records)| records).collect();
    println!("{}", measure(&stream, "all").row("all, one stream"));
    // The App Mesh records as one log router sees them (one container's envelope), as
    // `benches/transform.rs` measures them natively.
    let (_, appmesh) = corpus
        .iter()
        .find(|(file, _)| file.ends_with("firelens-appmesh.jsonl"))
        .expect("the App Mesh records");
    let steady = one_envelope::one_envelope(appmesh.iter().map(Vec::as_slice));
    let name = "input/firelens-appmesh.jsonl, one envelope";
    println!(
        "{}",
        measure(&steady.iter().collect::<Vec<_>>(), name).row(name)
    );
    // The stream of default-format text logs that `benches/text.rs` measures natively.
    let generated: Vec<Vec<u8>> = text_stream::default_lines()
        .iter()
        .map(|line| text_stream::firelens(line))
        .collect();
    let name = "generated text stream (benches/text.rs)";
    println!(
        "{}",
        measure(&generated.iter().collect::<Vec<_>>(), name).row(name)
    );

    // Where the instructions go on the App Mesh records: a counter per function, counted on
    // a second pass over the file (the first one warms the instance up). The shipped module
    // has no symbols; ENVOY_DD_WASM_WITH_SYMBOLS names the same build with its `name`
    // section (build-wasm.sh's flags without `-C strip=symbols`), whose functions this names.
    let (file, records) = corpus
        .iter()
        .find(|(file, _)| file.ends_with("firelens-appmesh.jsonl"))
        .expect("the App Mesh records");
    let named = std::env::var_os("ENVOY_DD_WASM_WITH_SYMBOLS")
        .map(|path| fs::read(path).expect("ENVOY_DD_WASM_WITH_SYMBOLS: a module"));
    let profiled_module = named.as_deref().unwrap_or(module_bytes());
    let mut profiled = Host::load(&count_instructions(profiled_module, true), false);
    records
        .iter()
        .for_each(|record| drop(profiled.filter(record)));
    let before = profiled.executed_per_function();
    records
        .iter()
        .for_each(|record| drop(profiled.filter(record)));
    let after = profiled.executed_per_function();
    let mut by_name = std::collections::HashMap::<String, u64>::new();
    for ((after, before), name) in after
        .iter()
        .zip(&before)
        .zip(function_names(profiled_module))
    {
        *by_name.entry(demangle(name)).or_default() += after - before;
    }
    let mut profile: Vec<(u64, String)> = by_name
        .into_iter()
        .filter(|&(_, executed)| executed > 0)
        .map(|(name, executed)| (executed, name))
        .collect();
    profile.sort_by(|a, b| b.cmp(a));
    let (bytes, executed): (usize, u64) = (
        records.iter().map(|record| record.len()).sum(),
        profile.iter().map(|(executed, _)| executed).sum(),
    );
    println!("\n{file}, per function (with what it inlined), malloc and free included:\n");
    println!("| function | instructions per input byte | share |");
    println!("|---|---:|---:|");
    for (executed_here, name) in &profile[..profile.len().min(12)] {
        println!(
            "| `{name}` | {:.2} | {:.1} % |",
            *executed_here as f64 / bytes as f64,
            100.0 * *executed_here as f64 / executed as f64
        );
    }
    println!("| all | {:.2} | 100 % |", executed as f64 / bytes as f64);

    // What the host adds per record: two `malloc`s and two `free`s.
    let mut counted = Host::load(&counting, false);
    counted.filter(&corpus[0].1[0]);
    let before = counted.executed();
    let (tag, copy) = (counted.dup(TAG), counted.dup(&corpus[0].1[0]));
    counted.free(tag);
    counted.free(copy);
    println!(
        "\nmalloc and free for one record's tag and copy: {} instructions",
        counted.executed() - before
    );
}

/// A Fluent Bit plugin section: its kind (`filter`, `output`) and its options in file order,
/// keys lower-cased (Fluent Bit's keys are case-insensitive).
#[derive(Debug, PartialEq)]
struct Plugin {
    kind: String,
    options: Vec<(String, String)>,
}

impl Plugin {
    fn get(&self, key: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, key: &str) -> &str {
        match self.get(key)[..] {
            [value] => value,
            ref values => panic!("{key}: expected one value, found {values:?} in {self:?}"),
        }
    }
}

/// The `[FILTER]` and `[OUTPUT]` sections of a classic-format configuration.
fn classic_plugins(text: &str) -> Vec<Plugin> {
    let mut plugins: Vec<Plugin> = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            plugins.push(Plugin {
                kind: section.to_lowercase(),
                options: Vec::new(),
            });
        } else {
            let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let plugin = plugins.last_mut().expect("an option outside a section");
            plugin
                .options
                .push((key.to_lowercase(), value.trim().to_owned()));
        }
    }
    plugins
}

/// The `pipeline.filters` and `pipeline.outputs` of a YAML configuration, read just far enough
/// for the shape of `fluent-bit/envoy-dd.yaml`: lists of maps whose values are scalars or lists
/// of scalars.
fn yaml_plugins(text: &str) -> Vec<Plugin> {
    let unquote = |v: &str| v.trim_matches(|c| c == '\'' || c == '"').to_owned();
    let (mut plugins, mut kind, mut list_key) = (Vec::<Plugin>::new(), "", None::<String>);
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (item, entry) = line
            .strip_prefix("- ")
            .map_or((false, line), |rest| (true, rest));
        match entry.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("filters", "")) => kind = "filter",
            Some(("outputs", "")) => kind = "output",
            Some((key, "")) => list_key = Some(key.to_owned()),
            Some((key, value)) if !kind.is_empty() => {
                if item {
                    plugins.push(Plugin {
                        kind: kind.to_owned(),
                        options: Vec::new(),
                    });
                }
                list_key = None;
                plugins
                    .last_mut()
                    .unwrap()
                    .options
                    .push((key.to_owned(), unquote(value)));
            }
            None if item => {
                let key = list_key.clone().expect("a list item under a key");
                plugins
                    .last_mut()
                    .unwrap()
                    .options
                    .push((key, unquote(entry)));
            }
            _ => {}
        }
    }
    plugins
}

/// The options of Fluent Bit's `wasm` filter (config_map in `plugins/filter_wasm/filter_wasm.c`),
/// and those every filter has.
const WASM_FILTER_OPTIONS: &[&str] = &[
    "event_format",
    "wasm_path",
    "accessible_paths",
    "function_name",
    "wasm_heap_size",
    "wasm_stack_size",
    "name",
    "match",
    "match_regex",
    "alias",
    "log_level",
];

#[test]
fn fluent_bit_configs_match_the_module_and_each_other() {
    let classic = classic_plugins(&read("fluent-bit/envoy-dd.conf"));
    let yaml = yaml_plugins(&read("fluent-bit/envoy-dd.yaml"));
    assert_eq!(classic, yaml, "envoy-dd.conf and envoy-dd.yaml differ");

    let names: Vec<_> = classic
        .iter()
        .map(|p| (p.kind.as_str(), p.one("name")))
        .collect();
    assert_eq!(
        names,
        [
            ("filter", "modify"),
            ("filter", "wasm"),
            ("output", "datadog")
        ]
    );
    let (modify, wasm, datadog) = (&classic[0], &classic[1], &classic[2]);

    // hash and phase are record keys by the time the filter runs.
    assert_eq!(
        modify.get("add"),
        ["hash ${GIT_COMMIT_SHA}", "phase ${DEPLOY_PHASE}"]
    );

    for (key, _) in &wasm.options {
        assert!(
            WASM_FILTER_OPTIONS.contains(&key.as_str()),
            "the wasm filter has no option {key}"
        );
    }
    assert_eq!(wasm.one("function_name"), FUNCTION);
    assert_eq!(wasm.one("wasm_path"), WASM_PATH);
    assert_eq!(
        wasm.one("event_format"),
        "json",
        "msgpack output is broken in Fluent Bit"
    );

    assert_eq!(datadog.one("provider"), "ecs");
    for plugin in &classic {
        assert_eq!(
            plugin.one("match"),
            modify.one("match"),
            "every step sees the same records"
        );
    }
}

#[test]
fn real_host_benchmark_runs_the_shipped_filters() {
    // benches/fluent-bit measures what users run: the shipped filters, with only the module's
    // path changed (to the .wasm or its compiled form). Its `@INCLUDE` is for input and output.
    let filters = |path: &str| -> Vec<Plugin> {
        let text = read(path);
        let sections: Vec<&str> = text.lines().filter(|l| !l.starts_with('@')).collect();
        let mut plugins = classic_plugins(&sections.join("\n"));
        plugins.retain(|p| p.kind == "filter");
        for plugin in &mut plugins {
            plugin.options.retain(|(key, _)| key != "wasm_path");
        }
        plugins
    };
    assert_eq!(
        filters("benches/fluent-bit/envoy-dd.conf"),
        filters("fluent-bit/envoy-dd.conf")
    );
}

#[test]
fn log_router_image_and_task_definition_match_the_configs() {
    // The image puts the module at WASM_Path and the classic file where FireLens is told to look.
    let dockerfile = read("fluent-bit/Dockerfile");
    let copies: Vec<(&str, &str)> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .map(|l| {
            l.split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect::<Vec<_>>()
        })
        .map(|words| (words[0], words[1]))
        .collect();
    let has_module = copies
        .iter()
        .any(|&(from, to)| from.ends_with("dist/envoy_dd.wasm") && to == WASM_PATH);
    assert!(has_module, "the image has no {WASM_PATH}: {copies:?}");
    let (_, conf_in_image) = *copies
        .iter()
        .find(|(from, _)| *from == "fluent-bit/envoy-dd.conf")
        .expect("the image has envoy-dd.conf");

    // Fluent Bit 4.2 or later (see the Dockerfile's comment).
    let version = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG FLUENT_BIT_VERSION="))
        .expect("a version");
    let minor: Vec<u32> = version
        .split('.')
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        minor >= vec![4, 2],
        "Fluent Bit {version} is older than 4.2"
    );

    let task: serde_json::Value =
        serde_json::from_str(&read("fluent-bit/task-definition.json")).unwrap();
    let containers = task["containerDefinitions"].as_array().unwrap();
    let router = containers
        .iter()
        .find(|c| c.get("firelensConfiguration").is_some())
        .expect("a log router");
    let options = &router["firelensConfiguration"]["options"];
    assert_eq!(options["config-file-type"], "file");
    assert_eq!(options["config-file-value"], conf_in_image);
    for name in ["app", "envoy"] {
        let container = containers.iter().find(|c| c["name"] == name).unwrap();
        assert_eq!(
            container["logConfiguration"]["logDriver"], "awsfirelens",
            "{name} logs through FireLens"
        );
    }

    assert_sets_every_variable(router);
}

#[test]
fn app_mesh_access_log_format_gets_enriched() {
    let format: serde_json::Value =
        serde_json::from_str(&read("fluent-bit/appmesh-access-log.json")).unwrap();
    let fields = format["logging"]["accessLog"]["file"]["format"]["json"]
        .as_array()
        .unwrap();
    // What Envoy's typed JSON prints for each command on a traced request; a header the request
    // lacks is null.
    let sample = |command: &str| match command {
        "%RESPONSE_CODE%" => serde_json::json!(503),
        "%REQ(:METHOD)%" => serde_json::json!("GET"),
        "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%" => serde_json::json!("/users/42?page=2"),
        "%DURATION%" => serde_json::json!(12),
        "%RESPONSE_DURATION%" => serde_json::json!(11),
        "%RESPONSE_FLAGS%" => serde_json::json!("UF"),
        "%REQ(X-REQUEST-ID)%" => serde_json::json!("9f1c6c1e-3b1a-4b7e-8d53-2f6f0c1a9e11"),
        "%REQ(X-DATADOG-TRACE-ID)%" => serde_json::json!("1234567890123456789"),
        "%REQ(X-DATADOG-PARENT-ID)%" => serde_json::json!("987654321987654321"),
        "%REQ(X-DATADOG-TAGS)%" => serde_json::json!("_dd.p.dm=-0"),
        "%REQ(TRACEPARENT)%" => serde_json::Value::Null,
        other => panic!("no sample value for {other}: add one"),
    };
    let mut line = serde_json::Map::new();
    for field in fields {
        let (key, command) = (
            field["key"].as_str().unwrap(),
            field["value"].as_str().unwrap(),
        );
        line.insert(key.to_owned(), sample(command));
    }
    let seed = [
        "response_code",
        "method",
        "path",
        "duration",
        "response_duration",
        "response_flags",
        "request_id",
    ];
    let trace = ["trace_id", "span_id", "x_datadog_tags", "traceparent"];
    for key in seed.iter().chain(&trace) {
        assert!(
            line.contains_key(*key),
            "the recommended format lacks {key}"
        );
    }

    // As FireLens and the modify filter hand it to the wasm filter.
    let record = serde_json::json!({
        "source": "stdout",
        "log": format!("{}\n", serde_json::Value::Object(line)),
        "ecs_task_definition": "api-canary:42",
        "hash": "4f9c2a17e0b3",
        "phase": "canary",
    });
    let out = native(
        &mut Transformer::new(Config::default()),
        record.to_string().as_bytes(),
    );
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        out["dd"],
        serde_json::json!({ "trace_id": "1234567890123456789", "span_id": "987654321987654321" })
    );
    assert_eq!(out["http"]["status_code"], 503);
    assert_eq!(out["duration"], 12_000_000);
    assert_eq!(out["status"], "error");
    assert_eq!(
        (out["hash"].as_str(), out["phase"].as_str()),
        (Some("4f9c2a17e0b3"), Some("canary"))
    );
}

/// Fluent Bit's tag matching (`flb_router_match`): `*` matches any run of characters.
fn tag_matches(pattern: &str, tag: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == tag,
        Some((head, rest)) => {
            let Some(tail) = tag.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|at| tail.is_char_boundary(at) && tag_matches(rest, &tail[at..]))
        }
    }
}

#[test]
fn service_connect_files_match_the_configs_and_get_enriched() {
    let service: serde_json::Value =
        serde_json::from_str(&read("fluent-bit/service-connect-service.json")).unwrap();
    let task: serde_json::Value =
        serde_json::from_str(&read("fluent-bit/service-connect-task-definition.json")).unwrap();
    let sc = &service["serviceConnectConfiguration"];
    assert_eq!(sc["enabled"], true);
    assert_eq!(service["taskDefinition"], task["family"]);
    // The proxy's logs go through FireLens, with access logs on.
    assert_eq!(sc["logConfiguration"]["logDriver"], "awsfirelens");
    let access = &sc["accessLogConfiguration"];
    let format = access["format"].as_str().unwrap();
    assert!(["TEXT", "JSON"].contains(&format), "{format}");
    assert!(["ENABLED", "DISABLED"].contains(&access["includeQueryParameters"].as_str().unwrap()));

    // Each port Service Connect serves is a named port mapping of the task.
    let containers = task["containerDefinitions"].as_array().unwrap();
    for port in sc["services"].as_array().unwrap() {
        let name = &port["portName"];
        let mapped = containers
            .iter()
            .flat_map(|c| c["portMappings"].as_array().into_iter().flatten())
            .any(|m| &m["name"] == name);
        assert!(mapped, "no port mapping named {name}");
    }
    assert!(
        task.get("proxyConfiguration").is_none(),
        "Service Connect runs its own proxy"
    );

    // The log router reads envoy-dd.conf, and every ${VARIABLE} it uses is set on the router.
    let router = containers
        .iter()
        .find(|c| c.get("firelensConfiguration").is_some())
        .expect("a log router");
    let reference: serde_json::Value =
        serde_json::from_str(&read("fluent-bit/task-definition.json")).unwrap();
    let reference_router = reference["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c.get("firelensConfiguration").is_some())
        .unwrap();
    assert_eq!(
        router["firelensConfiguration"],
        reference_router["firelensConfiguration"]
    );
    assert_sets_every_variable(router);
    let app = containers.iter().find(|c| c["name"] == "app").unwrap();
    assert_eq!(app["logConfiguration"]["logDriver"], "awsfirelens");

    // The app's and the proxy's FireLens tags reach the same wasm filter, and the output.
    let plugins = classic_plugins(&read("fluent-bit/envoy-dd.conf"));
    for tag in [
        "app-firelens-0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
        "ecs-service-connect-7Hc2Qa-firelens-0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
    ] {
        for plugin in &plugins {
            let pattern = plugin.one("match");
            assert!(
                tag_matches(pattern, tag),
                "{} {pattern} misses {tag}",
                plugin.kind
            );
        }
    }

    // The app's line, then the proxy's access line of the same request in the configured
    // format, through one filter: the access line gets the app's trace ids and attributes.
    let request_id = "0f3e8d1c-5b2a-4c7d-9e6f-1a2b3c4d5e6f";
    let path = match access["includeQueryParameters"].as_str() {
        Some("ENABLED") => "/users/42?expand=orders",
        _ => "/users/42",
    };
    let log = match format {
        "TEXT" => format!(
            r#"[2025-11-11T07:40:46.216Z] "GET {path} HTTP/1.1" 200 0 11 13 12 "203.0.113.9" "curl/8.11.1" "{request_id}" "api.prod.local:8080" "127.0.0.1:8080""#
        ),
        _ => serde_json::json!({"start_time": "2025-11-11T07:40:46.216Z", "method": "GET",
            "path": path, "protocol": "HTTP/1.1", "response_code": 200, "bytes_received": 0,
            "bytes_sent": 11, "duration_ms": 13, "upstream_service_time": 12,
            "forwarded_for": "203.0.113.9", "user_agent": "curl/8.11.1", "request_id": request_id,
            "authority": "api.prod.local:8080", "upstream_host": "127.0.0.1:8080"})
        .to_string(),
    };
    let app_line = serde_json::json!({
        "container_name": "app", "source": "stdout", "ecs_task_definition": "api-canary:7",
        "hash": "4f9c2a17e0b3", "phase": "canary",
        "log": serde_json::json!({"method": "GET", "path": "/users/42", "status": 200,
            "request_id": request_id, "dd": {"trace_id": "1234567890123456789", "span_id": "42"}})
            .to_string(),
    });
    let proxy_line = serde_json::json!({
        "container_name": "ecs-service-connect-7Hc2Qa", "source": "stdout",
        "ecs_task_definition": "api-canary:7", "hash": "4f9c2a17e0b3", "phase": "canary", "log": log,
    });
    let mut host = Host::new();
    let mut transformer = Transformer::new(Config::default());
    let mut outs = Vec::new();
    for record in [app_line, proxy_line] {
        let record = record.to_string();
        let out = host.filter(record.as_bytes()).output;
        assert!(out == native(&mut transformer, record.as_bytes()));
        outs.push(serde_json::from_slice::<serde_json::Value>(&out).unwrap());
    }
    let out = &outs[1];
    assert_eq!(
        out["dd"],
        serde_json::json!({"trace_id": "1234567890123456789", "span_id": "42"}),
        "{out}"
    );
    assert_eq!(out["http"]["status_code"], 200);
    assert_eq!(out["http"]["request_id"], request_id);
    assert_eq!(out["network"]["client"]["ip"], "203.0.113.9");
    assert_eq!(out["duration"], 13_000_000);
    assert_eq!(out["status"], "info");
}

/// Every `${VARIABLE}` that `fluent-bit/envoy-dd.conf` uses is set on the log router container
/// of a task definition (its `environment` or `secrets`).
fn assert_sets_every_variable(router: &serde_json::Value) {
    let set: Vec<&str> = ["environment", "secrets"]
        .iter()
        .flat_map(|list| router[list].as_array().into_iter().flatten())
        .map(|variable| variable["name"].as_str().unwrap())
        .collect();
    let conf = read("fluent-bit/envoy-dd.conf");
    for variable in conf
        .split("${")
        .skip(1)
        .map(|rest| &rest[..rest.find('}').unwrap()])
    {
        assert!(
            set.contains(&variable),
            "${{{variable}}} is not set on the log router"
        );
    }
}
