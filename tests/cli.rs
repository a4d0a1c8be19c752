//! The `envoy-dd` binary, run as a user runs it: files and standard input in, lines out,
//! reports on standard error, exit codes.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;

use serde_json::Value;

/// A FireLens record holding a seed-format Envoy JSON access log.
const ACCESS: &str = r#"{"source":"stdout","log":"{\"method\":\"GET\",\"path\":\"/users/42\",\"response_code\":200,\"duration\":12,\"response_flags\":\"-\",\"trace_id\":\"4321\",\"span_id\":\"8765\"}","ecs_task_definition":"api-canary:7"}"#;

/// A scratch directory for one test, emptied first.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `contents` to `dir/name` and returns the path as a string, for use as an argument.
fn file(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `envoy-dd ARGS`, without the test runner's GIT_COMMIT_SHA / DEPLOY_PHASE.
fn envoy_dd(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_envoy-dd"));
    command
        .args(args)
        .env_remove("GIT_COMMIT_SHA")
        .env_remove("DEPLOY_PHASE");
    command
}

/// Runs `command` with `stdin` as its standard input.
fn run_with(mut command: Command, stdin: impl AsRef<[u8]>) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let stdin = stdin.as_ref().to_vec();
    // From another thread, so that a full stdout pipe cannot deadlock the test.
    let writer = thread::spawn(move || {
        let _ = pipe.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// Runs `envoy-dd ARGS` with `stdin` as its standard input.
fn run(args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
    run_with(envoy_dd(args), stdin)
}

fn stdout(output: &Output) -> &str {
    std::str::from_utf8(&output.stdout).unwrap()
}

fn stderr(output: &Output) -> &str {
    std::str::from_utf8(&output.stderr).unwrap()
}

/// Each output line as JSON.
fn records(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// An access log for `path` with a response code, so it gets every attribute (the path moves
/// to `http.url`).
fn access(path: &str) -> String {
    format!(r#"{{"method":"GET","path":"{path}","response_code":200,"trace_id":"7"}}"#)
}

#[test]
fn keeps_every_line_in_order_across_files() {
    let dir = scratch("order");
    let a = file(
        &dir,
        "a.jsonl",
        format!("{}\n{}\n{}\n", access("/a1"), access("/a2"), access("/a3")),
    );
    let b = file(
        &dir,
        "b.jsonl",
        format!("{}\n{}\n", access("/b1"), access("/b2")),
    );
    let output = run(&["transform", &a, &b], "");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let paths: Vec<_> = records(&output)
        .iter()
        .map(|r| r["http"]["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["/a1", "/a2", "/a3", "/b1", "/b2"]);
    for record in records(&output) {
        assert_eq!(record["dd"]["trace_id"], "7");
        assert_eq!(record["http"]["status_code"], 200);
    }
}

#[test]
fn reports_a_bad_line_and_passes_it_through() {
    let dir = scratch("bad_line");
    let bad = r#"{"method":"GET","path":"#;
    let input = file(
        &dir,
        "in.jsonl",
        format!("{}\n{bad}\n{}\n", access("/1"), access("/3")),
    );
    let output = run(&["transform", &input], "");
    assert_eq!(output.status.code(), Some(0));
    let lines: Vec<_> = stdout(&output).lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1], bad);
    assert!(lines[2].contains(r#""path":"/3""#));
    let expected = format!("envoy-dd: {input}:2: passed through: truncated JSON at byte");
    assert!(
        stderr(&output).starts_with(&expected),
        "{}",
        stderr(&output)
    );
    assert_eq!(stderr(&output).lines().count(), 1);
}

#[test]
fn passes_invalid_utf8_through_byte_for_byte() {
    let bad = b"{\"log\":\"caf\xe9 au lait\"}";
    let mut input = bad.to_vec();
    input.extend_from_slice(b"\n{\"log\":\"ok\"}\n");
    let output = run(&["transform"], &input);
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.starts_with(&[&bad[..], b"\n"].concat()));
    assert_eq!(
        output.stdout.split(|&b| b == b'\n').count(),
        3,
        "two lines and the empty rest"
    );
    assert_eq!(
        stderr(&output),
        "envoy-dd: <stdin>:1: passed through: invalid UTF-8 at byte 11\n"
    );
}

#[test]
fn hash_and_phase_come_from_the_environment_and_options_win() {
    let record = "{\"log\":\"hello\"}\n";
    let mut from_env = envoy_dd(&["transform"]);
    from_env
        .env("GIT_COMMIT_SHA", "4f9c2a1")
        .env("DEPLOY_PHASE", "stable");
    let output = run_with(from_env, record);
    assert_eq!(
        stdout(&output),
        "{\"log\":\"hello\",\"hash\":\"4f9c2a1\",\"phase\":\"stable\"}\n"
    );

    let mut overridden = envoy_dd(&["transform", "--hash", "b7e1d00", "--phase=canary"]);
    overridden
        .env("GIT_COMMIT_SHA", "4f9c2a1")
        .env("DEPLOY_PHASE", "stable");
    let output = run_with(overridden, record);
    assert_eq!(
        stdout(&output),
        "{\"log\":\"hello\",\"hash\":\"b7e1d00\",\"phase\":\"canary\"}\n"
    );

    // An empty option switches the environment's value off.
    let mut unset = envoy_dd(&["transform", "--hash", ""]);
    unset.env("GIT_COMMIT_SHA", "4f9c2a1");
    let output = run_with(unset, record);
    assert_eq!(stdout(&output), record);
    assert_eq!(stderr(&output), "");
}

#[test]
fn warns_about_a_strange_phase_but_uses_it() {
    let output = run(&["transform", "--phase", "blue"], "{}\n");
    assert_eq!(stdout(&output), "{\"phase\":\"blue\"}\n");
    assert_eq!(
        stderr(&output),
        "envoy-dd: warning: phase 'blue' is neither 'stable' nor 'canary'; using it anyway\n"
    );

    let output = run(&["transform", "--phase", "${DEPLOY_PHASE}"], "{}\n");
    assert_eq!(stdout(&output), "{}\n");
    assert_eq!(
        stderr(&output),
        "envoy-dd: warning: ignoring phase '${DEPLOY_PHASE}': a placeholder counts as unset\n"
    );
}

#[test]
fn options_switch_additions_off() {
    let all = run(&["transform"], format!("{ACCESS}\n"));
    let all = &records(&all)[0];
    for key in ["http", "status", "message", "phase"] {
        assert!(all.get(key).is_some(), "{key} missing from {all}");
    }
    assert_eq!(all["duration"], 12_000_000);

    let args = [
        "transform",
        "--no-standard-attributes",
        "--no-status",
        "--no-message",
        "--no-derive-phase",
    ];
    let none = run(&args, format!("{ACCESS}\n"));
    let none = &records(&none)[0];
    for key in ["http", "status", "message", "phase", "_log"] {
        assert!(none.get(key).is_none(), "{key} in {none}");
    }
    assert_eq!(none["duration"], 12, "the Envoy value stays");
    assert_eq!(none["dd"]["trace_id"], "4321");
}

#[test]
fn text_format_reads_text_access_logs() {
    let input = "{\"log\":\"GET /users/42 503 trace=4321\"}\n";
    let format = "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% trace=%REQ(X-DATADOG-TRACE-ID)%";
    let output = run(&["transform", "--stats", "--text-format", format], input);
    assert_eq!(output.status.code(), Some(0));
    let record = &records(&output)[0];
    assert_eq!(record["http"]["status_code"], 503);
    assert_eq!(record["status"], "error");
    assert_eq!(record["dd"]["trace_id"], "4321");
    let stats = stderr(&output);
    assert!(
        stats
            .lines()
            .any(|l| l.split_whitespace().eq(["log_text", "1"])),
        "{stats}"
    );

    // Without the format the line is not recognised, and kept as it is.
    let output = run(&["transform"], input);
    assert!(records(&output)[0].get("http").is_none());

    let output = run(
        &[
            "transform",
            "--text-format",
            "%REQ(:METHOD) %RESPONSE_CODE%",
        ],
        input,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("envoy-dd: --text-format: invalid Envoy format at byte"));
}

#[test]
fn text_format_from_a_file() {
    let path = scratch("text_format_from_a_file").join("format.txt");
    std::fs::write(&path, "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE%\n").unwrap();
    let path = path.to_str().unwrap();
    let output = run(
        &["transform", "--text-format-file", path],
        "{\"log\":\"GET /x 404\"}\n",
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(records(&output)[0]["status"], "warn");

    let output = run(
        &["transform", "--text-format-file", "/nonexistent/format"],
        "",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--text-format-file: cannot read /nonexistent/format"));
}

#[test]
fn stats_summarise_the_run() {
    let input = [
        ACCESS,
        r#"{"log":"{\"response_code\":503,\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}"}"#,
        r#"{"log":"[info][main] starting"}"#,
        r#"{"method":"GET","response_code":404}"#,
        "",
        "not json",
        r#"{"a":1,"a":2}"#,
    ]
    .join("\n");
    let output = run(&["transform", "--stats", "--quiet"], input);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output).lines().count(), 7);
    let expected = "\
records            6
  enriched         4
  passed through   2
    invalid_json   1
    duplicate_key  1
blank lines        1
shapes (enriched)
  log_json         2
  log_text         0
  log_kept         1
    not_json       1
  bare             1
access logs        3
trace ids by source
  datadog          1
  w3c              1
  none             2
";
    assert_eq!(stderr(&output), expected);
}

#[test]
fn caps_reports_and_quiet_silences_them() {
    let input = "nope\n".repeat(103);
    let output = run(&["transform"], &input);
    let lines: Vec<_> = stderr(&output).lines().collect();
    assert_eq!(lines.len(), 101);
    assert_eq!(
        lines[99],
        "envoy-dd: <stdin>:100: passed through: not a JSON object at byte 0"
    );
    assert_eq!(
        lines[100],
        "envoy-dd: 3 more passed-through lines not shown"
    );
    assert_eq!(stdout(&output), input);

    let output = run(&["transform", "-q"], &input);
    assert_eq!(stderr(&output), "");
    assert_eq!(stdout(&output), input);
}

#[test]
fn a_missing_file_is_an_io_error_but_the_others_are_done() {
    let dir = scratch("missing");
    let missing = dir.join("missing.jsonl").to_str().unwrap().to_owned();
    let present = file(&dir, "present.jsonl", "{}\n");
    let output = run(&["transform", &missing, &present], "");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("envoy-dd: cannot open {missing}: No such file or directory\n")
    );
    assert_eq!(stdout(&output), "{}\n");
}

#[cfg(target_os = "linux")]
#[test]
fn a_directory_cannot_be_read() {
    let dir = scratch("directory");
    let path = dir.to_str().unwrap();
    let output = run(&["transform", path], "");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("envoy-dd: cannot read {path}: Is a directory\n")
    );
}

#[test]
fn bad_usage_exits_2_with_usage() {
    for (args, message) in [
        (
            &["transform", "--bogus"][..],
            "envoy-dd: unknown option '--bogus'",
        ),
        (
            &["transform", "--trace-id-128", "octal"],
            "envoy-dd: --trace-id-128 must be 'decimal' or 'hex', not 'octal'",
        ),
        (
            &["transform", "--hash"],
            "envoy-dd: option '--hash' needs a value",
        ),
        (&["frobnicate"], "envoy-dd: unknown command 'frobnicate'"),
        (&["--bogus"], "envoy-dd: unknown option '--bogus'"),
        (&[], "envoy-dd: missing command"),
    ] {
        let output = run(args, "{}\n");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_eq!(stdout(&output), "", "{args:?}");
        let err = stderr(&output);
        assert!(err.starts_with(&format!("{message}\n")), "{args:?}: {err}");
        assert!(err.contains("Usage: envoy-dd "), "{args:?}: {err}");
    }
}

#[test]
fn help_and_version() {
    let output = run(&["--version"], "");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        format!("envoy-dd {}\n", env!("CARGO_PKG_VERSION"))
    );

    let output = run(&["help"], "");
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("transform [OPTIONS] [FILE...]"));

    let output = run(&["transform", "--help"], "");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(run(&["help", "transform"], "").stdout, output.stdout);
    let help = stdout(&output);
    for option in [
        "--hash SHA",
        "--phase PHASE",
        "--trace-id-128 FORMAT",
        "--no-standard-attributes",
        "--no-status",
        "--no-message",
        "--no-derive-phase",
        "--text-format FORMAT",
        "--stats",
        "--quiet",
        "--progress",
        "--no-progress",
        "GIT_COMMIT_SHA",
        "DEPLOY_PHASE",
    ] {
        assert!(help.contains(option), "{option} is not in the help");
    }
}

#[test]
fn dash_is_standard_input() {
    let dir = scratch("dash");
    let a = file(&dir, "a.jsonl", format!("{}\n", access("/file-a")));
    let b = file(&dir, "b.jsonl", format!("{}\n", access("/file-b")));
    let output = run(
        &["transform", &a, "-", &b],
        format!("{}\n", access("/stdin")),
    );
    let paths: Vec<_> = records(&output)
        .iter()
        .map(|r| r["http"]["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["/file-a", "/stdin", "/file-b"]);
}

#[test]
fn crlf_line_ends_are_removed() {
    let input = format!("{}\r\nbad\r\n{}\r\n", access("/1"), access("/3"));
    let output = run(&["transform"], input);
    let out = stdout(&output);
    assert!(!out.contains('\r'), "{out:?}");
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1], "bad");
    assert_eq!(
        stderr(&output),
        "envoy-dd: <stdin>:2: passed through: not a JSON object at byte 0\n"
    );
    assert!(lines[2].contains(r#""path":"/3""#));
}

#[test]
fn a_byte_order_mark_before_a_first_line_is_dropped() {
    let dir = scratch("bom");
    let a = file(&dir, "a.jsonl", format!("\u{feff}{}\n", access("/a")));
    let output = run(
        &["transform", &a, "-"],
        format!("\u{feff}{}\n{}\n", access("/stdin"), access("/2")),
    );
    assert_eq!(stderr(&output), "");
    assert!(!stdout(&output).contains('\u{feff}'), "{}", stdout(&output));
    let paths: Vec<_> = records(&output)
        .iter()
        .map(|r| r["http"]["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["/a", "/stdin", "/2"]);
}

#[test]
fn a_last_line_without_newline_counts() {
    let output = run(
        &["transform"],
        format!("{}\n{}", access("/1"), access("/2")),
    );
    let paths: Vec<_> = records(&output)
        .iter()
        .map(|r| r["http"]["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["/1", "/2"]);
    assert!(stdout(&output).ends_with("}\n"));
}

#[test]
fn blank_lines_stay_blank() {
    let output = run(&["transform"], "{}\n\n  \n{}\n");
    assert_eq!(stdout(&output), "{}\n\n  \n{}\n");
    assert_eq!(stderr(&output), "");
}

#[test]
fn trace_id_128_hex() {
    let input = r#"{"response_code":200,"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#;
    let low64 = u64::from_str_radix("a3ce929d0e0e4736", 16)
        .unwrap()
        .to_string();

    let decimal = run(&["transform"], input);
    assert_eq!(records(&decimal)[0]["dd"]["trace_id"], low64.as_str());
    let decimal = run(&["transform", "--trace-id-128", "decimal"], input);
    assert_eq!(records(&decimal)[0]["dd"]["trace_id"], low64.as_str());

    let hex = run(&["transform", "--trace-id-128", "hex"], input);
    assert_eq!(
        records(&hex)[0]["dd"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        records(&hex)[0]["dd"]["span_id"],
        u64::from_str_radix("00f067aa0ba902b7", 16)
            .unwrap()
            .to_string()
    );
}

#[test]
fn progress_never_touches_standard_output() {
    let input = format!("{}\n", access("/p")).repeat(100);
    let with = run(&["transform", "--progress"], &input);
    let without = run(&["transform", "--no-progress"], &input);
    assert_eq!(with.stdout, without.stdout);
    assert_eq!(with.status.code(), Some(0));
}

#[test]
fn a_closed_output_pipe_ends_the_run_quietly() {
    // Far more output than a pipe holds, so envoy-dd must find the pipe closed.
    let dir = scratch("closed_pipe");
    let line = format!("{ACCESS}\n");
    let input = file(&dir, "big.jsonl", line.repeat((8 << 20) / line.len()));
    let mut child = envoy_dd(&["transform", &input])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stderr(&output), "");
}

#[test]
fn a_closed_standard_output_is_an_error() {
    // `envoy-dd transform FILE >&-`: nothing can be written, so the run fails and says why
    // instead of reporting the records as enriched.
    let dir = scratch("closed_stdout");
    let input = file(&dir, "in.jsonl", format!("{ACCESS}\n"));
    for args in [&["transform", input.as_str()][..], &["--version"]] {
        let output = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" "$@" >&-"#)
            .arg(env!("CARGO_BIN_EXE_envoy-dd"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output).contains("cannot write to standard output"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // Output sent to /dev/null on purpose is written there without complaint.
    let output = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" "$@" >/dev/null"#)
        .arg(env!("CARGO_BIN_EXE_envoy-dd"))
        .args(["transform", input.as_str()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn a_full_output_is_an_error() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let dir = scratch("full_output");
    let input = file(&dir, "in.jsonl", format!("{ACCESS}\n"));
    let output = envoy_dd(&["transform", &input])
        .stdout(
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot write to standard output"));
}

/// How a request of a generated stream is logged (see [`service_connect_stream`]).
#[derive(Clone, Copy, PartialEq)]
enum AppLogs {
    First,
    After,
    Twice,
    Untraced,
    Never,
}

/// One Service Connect task's stream of `requests` requests: the app's lograge lines (with
/// `request_id` and `dd`) and the proxy's access lines (TEXT or JSON), a few requests
/// interleaved at a time. 86 % of the requests the app logs first, 4 % after the proxy, 4 %
/// twice, 3 % without a trace id, 3 % never. Deterministic (a fixed-seed xorshift).
fn service_connect_stream(requests: usize) -> String {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let app = |id: &str, dd: Option<(u64, u64)>| {
        let mut log = serde_json::json!({"method": "GET", "path": "/users/42", "format": "json",
            "controller": "UsersController", "action": "show", "status": 200, "duration": 3.2,
            "request_id": id});
        if let Some((trace, span)) = dd {
            log["dd"] =
                serde_json::json!({"trace_id": trace.to_string(), "span_id": span.to_string()});
        }
        serde_json::json!({"container_name": "app", "source": "stdout", "log": format!("{log}\n")})
            .to_string()
    };
    let (mut lines, mut pending): (Vec<String>, Vec<Vec<String>>) = (vec![], vec![]);
    for n in 0..requests {
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            next() as u32,
            next() as u16,
            next() & 0xfff,
            next() & 0xfff,
            next() & 0xffff_ffff_ffff
        );
        let (trace, span) = (next() >> 1 | 1, next() >> 1 | 1);
        let log = match n % 2 {
            0 => format!(
                r#"[2025-11-11T07:40:46.216Z] "GET /users/42 HTTP/1.1" 200 0 11 13 12 "-" "okhttp/4.12.0" "{id}" "api.prod.local:8080" "127.0.0.1:8080""#
            ),
            _ => serde_json::json!({"start_time": "2025-11-11T07:40:46.216Z", "method": "GET",
                "path": "/users/42", "protocol": "HTTP/1.1", "response_code": 200,
                "bytes_received": 0, "bytes_sent": 11, "duration": 13, "upstream_service_time": 12,
                "forwarded_for": null, "user_agent": "okhttp/4.12.0", "request_id": id,
                "authority": "api.prod.local:8080", "upstream_host": "127.0.0.1:8080"})
            .to_string(),
        };
        let proxy =
            serde_json::json!({"container_name": "ecs-service-connect-7Hc2Qa", "source": "stdout",
            "log": format!("{log}\n")})
            .to_string();
        let logged = match next() % 100 {
            0..86 => AppLogs::First,
            86..90 => AppLogs::After,
            90..94 => AppLogs::Twice,
            94..97 => AppLogs::Untraced,
            _ => AppLogs::Never,
        };
        let events = match logged {
            AppLogs::First => vec![app(&id, Some((trace, span))), proxy],
            AppLogs::After => vec![proxy, app(&id, Some((trace, span)))],
            AppLogs::Twice => vec![
                app(&id, Some((trace, span))),
                app(&id, Some((trace, next() >> 1 | 1))),
                proxy,
            ],
            AppLogs::Untraced => vec![app(&id, None), proxy],
            AppLogs::Never => vec![proxy],
        };
        pending.push(events);
        while pending.len() > 3 || (n + 1 == requests && !pending.is_empty()) {
            let at = next() as usize % pending.len();
            lines.push(pending[at].remove(0));
            if pending[at].is_empty() {
                pending.remove(at);
            }
        }
    }
    lines.join("\n") + "\n"
}

/// Runs `input` (an interleaved app and proxy stream) through `envoy-dd transform --stats`
/// and checks the request-id join against what the input says: every access line whose
/// request the app logged first with a trace id gets that trace and span id (the target is
/// 99 %), no access line gets ids that are not its request's, and `--stats` counts the joined
/// lines as `request_id`. Returns (eligible, joined, access lines).
fn check_request_id_join(input: &str, args: &[&str]) -> (usize, usize, usize) {
    let output = run(args, input);
    assert_eq!(output.status.code(), Some(0));
    let out = records(&output);
    let mut logged: std::collections::HashMap<String, (String, String)> = Default::default();
    let (mut eligible, mut joined, mut access_lines) = (0, 0, 0);
    for (record, out) in input.lines().zip(&out) {
        let record: Value = serde_json::from_str(record).unwrap();
        let log = record["log"].as_str().unwrap();
        if record["container_name"] == "app" {
            let log: Value = serde_json::from_str(log).unwrap();
            if let Some(dd) = log.get("dd") {
                let ids = (dd["trace_id"].to_string(), dd["span_id"].to_string());
                let id = log["request_id"].as_str().unwrap().to_owned();
                logged.entry(id).or_insert(ids);
            }
            continue;
        }
        access_lines += 1;
        let id = out["http"]["request_id"].as_str().expect("a request id");
        let got = out
            .get("dd")
            .map(|dd| (dd["trace_id"].to_string(), dd["span_id"].to_string()));
        match logged.get(id) {
            Some(want) => {
                eligible += 1;
                if got.as_ref() == Some(want) {
                    joined += 1;
                } else {
                    assert_eq!(got, None, "request {id}: a trace that is not its own");
                }
            }
            None => assert_eq!(got, None, "request {id}: the app had not logged it"),
        }
    }
    assert!(
        joined * 100 >= eligible * 99,
        "{joined} of {eligible} joined"
    );
    let counted = stderr(&output)
        .lines()
        .find_map(|l| l.strip_prefix("  request_id"))
        .map(|n| n.trim().parse::<usize>().unwrap());
    assert_eq!(counted, Some(joined), "{}", stderr(&output));
    (eligible, joined, access_lines)
}

/// The shipped interleaved stream (`fixtures/input/service-connect-join.jsonl`) through the
/// CLI: every case of it joins as it must.
#[test]
fn request_id_join_on_the_service_connect_fixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/input/service-connect-join.jsonl"
    );
    let input = std::fs::read_to_string(path).unwrap();
    let (eligible, joined, access) = check_request_id_join(&input, &["transform", "--stats"]);
    assert_eq!((eligible, joined, access), (28, 28, 40));
}

/// A generated stream of 5000 requests (86 % logged by the app first) through the CLI: at
/// least 99 % of the access lines the app logged first are joined, none wrongly; with the
/// join off, none.
#[test]
fn request_id_join_on_a_long_interleaved_stream() {
    let input = service_connect_stream(5000);
    let (eligible, joined, access) = check_request_id_join(&input, &["transform", "--stats"]);
    assert_eq!(access, 5000);
    assert!(eligible > 4400, "{eligible}");
    eprintln!("joined {joined} of {eligible} access lines the app logged first");
    // With the join off, only the app's own lines have ids.
    let output = run(&["transform", "--request-id-join", "0"], &input);
    let access_with_ids = records(&output)
        .iter()
        .filter(|r| r.get("dd").is_some() && r["container_name"] != "app")
        .count();
    assert_eq!(access_with_ids, 0);
}
