#!/usr/bin/env python3
"""Where a Fluent Bit pipeline's CPU goes, from `perf script` with call chains, by stage.

    perf record -F 1999 --call-graph dwarf,16384 -o perf.data -- fluent-bit -c envoy-dd.conf
    perf script -i perf.data -F ip,sym | python3 benches/fluent-bit/perf-breakdown.py

(run.py --keep DIR leaves the corpus and modules to run it on; the configuration needs the
BENCH_* and ENVOY_DD_MODULE variables that run.py sets.) Each sample is put in the first
stage whose test its call chain passes. Code compiled by flb-wamrc has no unwind information,
so its samples come without callers: they are the `[unknown]` line (with LuaJIT's traces).
"""
import collections
import sys


def stage(frames):
    leaf, chain = frames[0], " ".join(frames)
    if "cb_wasm_filter" in chain or "wasm_runtime" in chain:
        if "wasm_interp_call_func_bytecode" in leaf:
            if "execute_malloc_function" in chain or "execute_free_function" in chain:
                return "wasm: the module's malloc/free of the host's copies, interpreted"
            return "wasm: the module's code, interpreted"
        if "msgpack2json" in chain or "flb_msgpack_to_json" in chain:
            return "wasm filter: record msgpack -> JSON for the module"
        if "flb_pack_json" in chain or "yyjson" in chain:
            return "wasm filter: the module's JSON -> msgpack"
        return "wasm filter: other host work (copies, checks, record encoder)"
    if "cb_modify" in chain:
        return "modify filter"
    if "cb_lua_filter" in chain:
        return "lua filter"
    if "cb_parser_filter" in chain:
        return "parser filter"
    if "cb_file_flush" in chain:
        if "msgpack2json" in chain or "flb_msgpack_to_json" in chain:
            return "output: msgpack -> JSON text"
        return "output: other (decoding, writing)"
    if "in_tail" in chain or "flb_tail" in chain or "flb_parser" in chain:
        return "input: tail and its JSON parser"
    if leaf.startswith("[unknown]") and len(frames) == 1:
        return "[unknown]: generated code without unwind information (flb-wamrc, LuaJIT)"
    return "other: " + leaf.split("+")[0]


def main():
    counts, frames = collections.Counter(), []
    for line in list(sys.stdin) + [""]:
        parts = line.split(None, 1)
        if len(parts) == 2 and line[:1].isspace():
            frames.append(parts[1].strip())
        elif frames:
            counts[stage(frames)] += 1
            frames = []
    total = sum(counts.values()) or 1
    shown = 0
    for name, n in counts.most_common():
        if n / total < 0.005:
            break
        shown += n
        print(f"{100 * n / total:5.1f} %  {name}")
    print(f"{100 * (total - shown) / total:5.1f} %  (each below 0.5 %)")
    print(f"{total} samples")


if __name__ == "__main__":
    main()
