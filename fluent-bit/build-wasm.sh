#!/usr/bin/env bash
# Builds the Fluent Bit WASM filter and copies it to dist/envoy_dd.wasm.
#
#   fluent-bit/build-wasm.sh                          # prints the module's path
#   fluent-bit/build-wasm.sh --text-format-file appmesh-format.txt --trace-id-128 hex
#
# Fluent Bit cannot pass parameters to a filter, so the settings that cannot arrive as
# record keys are built into the module:
#
#   --text-format FORMAT       the Envoy format string of your text access logs (App Mesh's
#                              `format.text`), tried before Envoy's default and Istio's formats
#   --text-format-file PATH    the same, read from a file (trailing newlines dropped)
#   --trace-id-128 decimal|hex how 128-bit trace ids are written (default: decimal)
#   --request-id-join N        how many request ids the request-id join remembers, for
#                              access lines without trace ids (default: 8192, ~1 MiB; 0: off)
#   --route TEMPLATE           a route template such as 'GET /users/{id}' whose path is
#                              http.endpoint for the requests it matches (repeatable)
#   --keep-source-attributes   keep each Envoy key next to the standard attribute made from
#                              it (default: a key the attribute holds whole moves there)
#   --out PATH                 where to put the module (default: dist/envoy_dd.wasm)
#
# The settings are checked with the native `envoy-dd` CLI first, so a bad format string fails
# here, with its position and reason, not in Fluent Bit.
#
# The tests run this too (tests/fluent_bit_wasm.rs), so the module they check is the one
# users ship. It builds in its own target directories under target/, so that it can run while
# an outer `cargo test` holds the lock on target/.
set -euo pipefail

# Paths given as options are relative to where the script is run from; the build itself runs
# in the repository.
text_format=""
trace_id_128=""
request_id_join=""
keep_source=""
routes=()
out="dist/envoy_dd.wasm"
while [ $# -gt 0 ]; do
  case "$1" in
    --text-format) text_format="${2?--text-format needs a value}"; shift 2 ;;
    --text-format-file)
      text_format="$(cat "${2?--text-format-file needs a path}")"; shift 2 ;;
    --trace-id-128) trace_id_128="${2?--trace-id-128 needs a value}"; shift 2 ;;
    --request-id-join) request_id_join="${2?--request-id-join needs a value}"; shift 2 ;;
    --keep-source-attributes) keep_source=1; shift ;;
    --route) routes+=("${2?--route needs a template}"); shift 2 ;;
    --out)
      out="${2?--out needs a path}"
      case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
      shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-wasm.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true

# A module with settings builds apart from the default one, so switching between them does not
# rebuild either.
target_dir="target/wasm"
if [ -n "$text_format$trace_id_128$request_id_join$keep_source" ] || [ ${#routes[@]} -gt 0 ]; then
  target_dir="target/wasm-configured"
  check=(transform)
  [ -n "$text_format" ] && check+=(--text-format "$text_format")
  [ -n "$trace_id_128" ] && check+=(--trace-id-128 "$trace_id_128")
  [ -n "$request_id_join" ] && check+=(--request-id-join "$request_id_join")
  [ -n "$keep_source" ] && check+=(--keep-source-attributes)
  for route in ${routes[@]+"${routes[@]}"}; do check+=(--route "$route"); done
  "${CARGO:-cargo}" run --quiet --release --target-dir target/wasm-check -- "${check[@]}" \
    </dev/null >/dev/null
fi
export ENVOY_DD_TEXT_FORMAT="$text_format" ENVOY_DD_TRACE_ID_128="$trace_id_128"
export ENVOY_DD_REQUEST_ID_JOIN="$request_id_join"
export ENVOY_DD_KEEP_SOURCE_ATTRIBUTES="$keep_source"
ENVOY_DD_ROUTES="$(printf '%s\n' ${routes[@]+"${routes[@]}"})"
export ENVOY_DD_ROUTES

# Fluent Bit's WAMR is built without SIMD. simd128 is off by default on this target; say so
# explicitly, so a changed default cannot slip SIMD into the module. Flags from the caller's
# environment would replace these (cargo takes RUSTFLAGS over target rustflags), so drop them.
#
# WAMR interprets the module, so every call it makes is paid for at run time: a higher inlining
# threshold than LLVM's default (225) saves calls. 500 executes as few instructions per byte as
# 1000 did on App Mesh records (24.8 against 24.7) and fewer on the other fixtures, in a module
# 25 KB smaller (286 KB against 311 KB, over the 300 KiB the tests allow).
# Symbols (the `name` section, some 15 KB) are only for debugging: Fluent Bit never reads them.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=-simd128 -C llvm-args=-inline-threshold=500 -C strip=symbols"

# Release profile: LTO and one codegen unit (Cargo.toml), which keep the module small. No default
# features: the module never sees the CLI's Datadog client.
"${CARGO:-cargo}" build --release --lib --no-default-features --target wasm32-unknown-unknown \
  --target-dir "$target_dir"

mkdir -p "$(dirname "$out")"
cp "$target_dir/wasm32-unknown-unknown/release/envoy_dd.wasm" "$out"
echo "$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
