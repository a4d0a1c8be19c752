//! Golden tests: every line of `fixtures/input/*.jsonl` through the library, compared byte for
//! byte with `fixtures/expected/` (the options per file are listed in `fixtures/README.md`):
//! `fixtures/expected/default/` with the default options, where Envoy keys move into their
//! standard attributes, and `fixtures/expected/` itself with `--keep-source-attributes`.
//!
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expected files from the current
//! library; review the diff line by line before keeping it.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use envoy_dd::{Config, Outcome, TraceIdFormat, Transformer};

/// The two ways of running the fixtures: with the default options, and keeping source keys.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Default,
    KeepSource,
}

const MODES: [Mode; 2] = [Mode::Default, Mode::KeepSource];

impl Mode {
    fn expected(self) -> PathBuf {
        match self {
            Mode::Default => fixtures().join("expected").join("default"),
            Mode::KeepSource => fixtures().join("expected"),
        }
    }
}

/// The options each fixture runs with, as `envoy-dd transform` flags would set them.
fn config_for(file: &str, mode: Mode) -> Config {
    let mut config = match mode {
        Mode::Default => common::moving_config(),
        Mode::KeepSource => common::default_config(),
    };
    match file {
        "app-logs.jsonl" => config.phase = Some("stable".into()),
        "trace-128-hex.jsonl" => config.trace_id_128 = TraceIdFormat::Hex,
        _ => {}
    }
    config
}

const FILES: &[&str] = &[
    "firelens-appmesh.jsonl",
    "envoy-json-variants.jsonl",
    "trace-sources.jsonl",
    "trace-128-hex.jsonl",
    "app-logs.jsonl",
    "edge-cases.jsonl",
    "service-connect.jsonl",
    "service-connect-join.jsonl",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Lines of a JSONL file, without their `\n`; a final newline does not start another line.
fn lines(data: &[u8]) -> Vec<&[u8]> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    data.split(|&b| b == b'\n').collect()
}

/// Transforms every line of an input file with one reused transformer, as the CLI does.
fn transform_file(name: &str, mode: Mode) -> (Vec<u8>, Vec<Outcome>) {
    let input = std::fs::read(fixtures().join("input").join(name)).expect("read input fixture");
    let mut t = Transformer::new(config_for(name, mode));
    let mut out = Vec::new();
    let mut outcomes = Vec::new();
    for line in lines(&input) {
        outcomes.push(t.transform(line, &mut out));
        out.push(b'\n');
    }
    (out, outcomes)
}

/// A one-paragraph description of how two lines differ.
fn describe(name: &str, n: usize, want: &[u8], got: &[u8]) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let window = |s: &[u8]| {
        let from = at.saturating_sub(60);
        let to = (at + 60).min(s.len());
        String::from_utf8_lossy(&s[from.min(to)..to]).into_owned()
    };
    format!(
        "{name}:{n}: first difference at byte {at} (expected {} bytes, got {})\n  expected: …{}…\n  got:      …{}…\n",
        want.len(),
        got.len(),
        window(want),
        window(got)
    )
}

#[test]
fn golden_files_match() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut report = String::new();
    for (mode, name) in MODES
        .iter()
        .flat_map(|&m| FILES.iter().map(move |n| (m, n)))
    {
        let (got, _) = transform_file(name, mode);
        let path = mode.expected().join(name);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (want, got) = (lines(&want), lines(&got));
        let mut shown = 0;
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            if w != g {
                shown += 1;
                if shown <= 5 {
                    report.push_str(&describe(&format!("{mode:?} {name}"), i + 1, w, g));
                }
            }
        }
        if shown > 5 {
            let _ = writeln!(report, "{name}: {} more lines differ", shown - 5);
        }
        if want.len() != got.len() {
            let _ = writeln!(
                report,
                "{name}: expected {} lines, got {}",
                want.len(),
                got.len()
            );
        }
    }
    assert!(
        report.is_empty(),
        "output differs from fixtures/expected (UPDATE_GOLDEN=1 rewrites):\n{report}"
    );
}

/// Every output line is either the input line unchanged or one valid JSON object without
/// duplicate keys holding every input value, whatever the expected files say.
#[test]
fn golden_outputs_keep_every_value() {
    for (mode, name) in MODES
        .iter()
        .flat_map(|&m| FILES.iter().map(move |n| (m, n)))
    {
        let input = std::fs::read(fixtures().join("input").join(name)).unwrap();
        let (got, outcomes) = transform_file(name, mode);
        let check = match mode {
            Mode::Default => common::check_nothing_lost_moving,
            Mode::KeepSource => common::check_nothing_lost,
        };
        for (n, ((line, out), outcome)) in lines(&input)
            .into_iter()
            .zip(lines(&got))
            .zip(outcomes)
            .enumerate()
        {
            let n = n + 1;
            match outcome {
                Outcome::PassedThrough(_) => {
                    assert_eq!(out, line, "{name}:{n}: passed through but changed")
                }
                Outcome::Enriched(_) => {
                    if let Err(e) = check(line, out) {
                        panic!(
                            "{mode:?} {name}:{n}: {e}\n  in:  {}\n  out: {}",
                            common::preview(line),
                            common::preview(out)
                        );
                    }
                }
            }
        }
    }
}

/// The `expect` member of each trace fixture says what `dd` should be; check it against the
/// output so a wrong golden line cannot slip through review.
#[test]
fn trace_fixtures_meet_their_expectations() {
    let mut report = String::new();
    for (mode, name) in MODES
        .iter()
        .flat_map(|&m| ["trace-sources.jsonl", "trace-128-hex.jsonl"].map(move |n| (m, n)))
    {
        let (got, _) = transform_file(name, mode);
        for (n, line) in lines(&got).into_iter().enumerate() {
            let v: serde_json::Value =
                serde_json::from_slice(line).expect("trace fixtures are valid JSON");
            let want = &v["expect"];
            let dd = v.get("dd").unwrap_or(&serde_json::Value::Null);
            if want != dd {
                let _ = writeln!(
                    report,
                    "{mode:?} {name}:{}: {}: expected dd {want}, got {dd}",
                    n + 1,
                    v["case"]
                );
            }
        }
    }
    assert!(report.is_empty(), "\n{report}");
}

/// Every input fixture is tested and documented.
#[test]
fn every_input_fixture_is_listed() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("input"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    let mut listed: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        names, listed,
        "tests/golden.rs FILES must list every input fixture"
    );
    let readme = std::fs::read_to_string(fixtures().join("README.md")).unwrap();
    for name in FILES {
        assert!(
            readme.contains(name),
            "fixtures/README.md does not describe {name}"
        );
    }
}
