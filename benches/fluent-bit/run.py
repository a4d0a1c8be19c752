#!/usr/bin/env python3
"""CPU and bytes per record of envoy-dd in a real Fluent Bit, against the usual Lua glue.

    FLUENT_BIT=/path/to/fluent-bit [FLB_WAMRC=/path/to/flb-wamrc] [WASM=dist/envoy_dd.wasm] \\
        python3 benches/fluent-bit/run.py [--rounds 3] [--repeat 56] [--keep DIR] [PIPELINE ...]

PIPELINE: none, lua (the baseline), modify-nest, identity, interpreted, compiled (FLB_WAMRC).

Each pipeline is one Fluent Bit process: `tail` reads the corpus once from the head and stops
at its end, the pipeline's filters run, `file` writes every record as a JSON line. Pipelines run
one after the other, round after round, so that the host's changes of speed spread over all of
them; the table shows the median round. CPU is the process's user + system time (its
threads included), from wait4.

The corpus is fixtures/input/firelens-appmesh.jsonl repeated --repeat times. With FLB_WAMRC,
the module is also compiled ahead of time for this machine's architecture (`--target`, any CPU
of it) into the work directory, and its output must be identical to the interpreted one's.
Every pipeline must write as many records as it read, each a JSON object, and the same number
of bytes in every round.
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(ROOT, "fixtures", "input", "firelens-appmesh.jsonl")
BASELINE = "parser+lua"
INTERPRETED, COMPILED = "envoy-dd, interpreted", "envoy-dd, compiled (flb-wamrc)"


def identity_module(path):
    """A Wasm module whose filter returns the record it is given (the host's NUL-terminated
    copy): the cost of calling a Wasm filter at all, JSON conversions included."""
    i32 = 0x7F
    sections = [
        (1, [1, 0x60, 6] + [i32] * 6 + [1, i32]),  # type: (i32 x6) -> i32
        (3, [1, 0]),  # one function of type 0
        (5, [1, 0, 2]),  # one memory, two pages
        (7, [2, 6] + list(b"memory") + [2, 0, 15] + list(b"envoy_dd_filter") + [0, 0]),
        (10, [1, 4, 0, 0x20, 4, 0x0B]),  # body: local.get 4 (the record)
    ]
    out = bytearray(b"\0asm\1\0\0\0")
    for sid, body in sections:
        out += bytes([sid, len(body)]) + bytes(body)
    with open(path, "wb") as f:
        f.write(out)


def run_once(fluent_bit, conf, env, out_dir):
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    log_path = os.path.join(out_dir, "..", os.path.basename(out_dir) + ".log")
    with open(log_path, "w") as log:
        start = time.monotonic()
        proc = subprocess.Popen([fluent_bit, "-c", conf], env=env, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
    if status != 0:
        sys.exit(f"{conf} failed (status {status}); see {log_path}")
    return usage.ru_utime + usage.ru_stime, wall, os.path.join(out_dir, "out.jsonl")


def count(path):
    """Records (lines) and bytes of a JSON-lines file, checking each line parses."""
    records, size = 0, 0
    with open(path, "rb") as f:
        for line in f:
            if not isinstance(json.loads(line), dict):
                sys.exit(f"{path}: line {records + 1} is not a JSON object")
            records += 1
            size += len(line)
    return records, size


def digest(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=56, help="copies of the fixture in the corpus")
    ap.add_argument("--keep", help="keep the corpus, modules and outputs in this directory")
    ap.add_argument("pipelines", nargs="*", help="run only these (default: all): none lua "
                    "modify-nest identity interpreted compiled")
    args = ap.parse_args()

    fluent_bit = os.environ.get("FLUENT_BIT") or sys.exit("set FLUENT_BIT=<fluent-bit binary>")
    wamrc = os.environ.get("FLB_WAMRC")
    wasm = os.path.abspath(os.environ.get("WASM", os.path.join(ROOT, "dist", "envoy_dd.wasm")))
    if not os.path.exists(wasm):
        sys.exit(f"{wasm} not found: build it with `bash fluent-bit/build-wasm.sh` or set WASM")
    work = args.keep or tempfile.mkdtemp(prefix="fluent-bit-bench-")
    os.makedirs(work, exist_ok=True)

    corpus = os.path.join(work, "corpus.jsonl")
    with open(FIXTURE, "rb") as f:
        fixture = f.read()
    with open(corpus, "wb") as f:
        f.write(fixture * args.repeat)
    in_records, in_bytes = count(corpus)

    identity = os.path.join(work, "identity.wasm")
    identity_module(identity)
    # id: (name, configuration, module for envoy-dd.conf)
    pipelines = {
        "none": ("no filter", "none.conf", None),
        "lua": (BASELINE, "parser-lua.conf", None),
        "modify-nest": ("parser+modify+nest", "parser-modify-nest.conf", None),
        "identity": ("wasm identity, interpreted", "envoy-dd.conf", identity),
        "interpreted": (INTERPRETED, "envoy-dd.conf", wasm),
    }
    if wamrc:
        aot = os.path.join(work, "envoy_dd.aot")
        # For the architecture, not this machine's CPU model: what an image ships.
        target = {"arm64": "aarch64"}.get(platform.machine(), platform.machine())
        subprocess.run([wamrc, f"--target={target}", "-o", aot, wasm], check=True,
                       stdout=subprocess.DEVNULL)
        pipelines["compiled"] = (COMPILED, "envoy-dd.conf", aot)
    if args.pipelines:
        unknown = set(args.pipelines) - set(pipelines)
        if unknown:
            sys.exit(f"no pipeline {', '.join(sorted(unknown))} (compiled needs FLB_WAMRC)")
        pipelines = {k: v for k, v in pipelines.items() if k in args.pipelines}
    pipelines = {name: (conf, module) for name, conf, module in pipelines.values()}
    if BASELINE not in pipelines:
        sys.exit(f"the ratios need the {BASELINE!r} pipeline (lua)")

    version = subprocess.run([fluent_bit, "--version"], capture_output=True, text=True)
    print(version.stdout.splitlines()[0] if version.stdout else fluent_bit)
    print(f"module: {wasm} ({os.path.getsize(wasm)} bytes)")
    print(f"corpus: {in_records} records, {in_bytes} bytes; {args.rounds} rounds; work dir {work}")

    env = dict(os.environ, BENCH_DIR=HERE, BENCH_INPUT=corpus,
               GIT_COMMIT_SHA="4f9c2a17e0b3", DEPLOY_PHASE="stable")
    cpu = {name: [] for name in pipelines}
    outputs = {}  # name: (records, bytes) of the first round
    failed = set()
    for r in range(args.rounds):
        digests = {}
        for i, (name, (conf, module)) in enumerate(pipelines.items()):
            out_dir = os.path.join(work, f"out-{i}")
            run_env = dict(env, BENCH_OUTPUT_DIR=out_dir, ENVOY_DD_MODULE=module or "")
            c, w, out = run_once(fluent_bit, os.path.join(HERE, conf), run_env, out_dir)
            cpu[name].append(c)
            # Lua's tables do not keep key order, so only the counts must repeat.
            counted = count(out)
            outputs.setdefault(name, counted)
            if counted[0] != in_records or counted != outputs[name]:
                failed.add(name)
            digests[name] = digest(out)
            print(f"  round {r + 1} {name}: {c:.2f} s CPU, {w:.2f} s wall", file=sys.stderr)
        if COMPILED in digests and INTERPRETED in digests and digests[COMPILED] != digests[INTERPRETED]:
            failed.add(COMPILED)

    base = statistics.median(cpu[BASELINE])
    print()
    print("| pipeline | CPU s (median) | µs per record | vs parser+lua "
          "| bytes in / record | bytes out / record | out / in | records in / out |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in pipelines:
        c = statistics.median(cpu[name])
        out_records, out_bytes = outputs[name]
        print(f"| {name} | {c:.2f} | {c / in_records * 1e6:.1f} | {c / base:.2f} "
              f"| {in_bytes / in_records:.0f} | {out_bytes / max(out_records, 1):.0f} "
              f"| {out_bytes / in_bytes:.2f} | {in_records} / {out_records} |")
    print("\nCPU s per round: " + "; ".join(
        f"{n} " + " ".join(f"{c:.2f}" for c in cpu[n]) for n in pipelines))
    if COMPILED in pipelines and INTERPRETED in pipelines:
        same = COMPILED not in failed
        print(f"interpreted and compiled outputs identical: {'yes' if same else 'NO'}")
    if not args.keep:
        shutil.rmtree(work)
    if failed:
        sys.exit(f"records lost, or outputs differ: {', '.join(sorted(failed))}")


if __name__ == "__main__":
    main()
