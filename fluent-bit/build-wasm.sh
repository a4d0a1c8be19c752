#!/usr/bin/env bash
# Builds the Fluent Bit WASM filter and copies it to dist/envoy_dd.wasm.
#
#   fluent-bit/build-wasm.sh            # prints the module's path
#
# The tests run this too (tests/fluent_bit_wasm.rs), so the module they check is the one
# users ship. It builds in its own target directory, target/wasm, so that it can run while an
# outer `cargo test` holds the lock on target/.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true

# Fluent Bit's WAMR is built without SIMD. simd128 is off by default on this target; say so
# explicitly, so a changed default cannot slip SIMD into the module. Flags from the caller's
# environment would replace these (cargo takes RUSTFLAGS over target rustflags), so drop them.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=-simd128"

# Release profile: LTO and one codegen unit (Cargo.toml), which keep the module small.
"${CARGO:-cargo}" build --release --lib --target wasm32-unknown-unknown --target-dir target/wasm

mkdir -p dist
cp target/wasm/wasm32-unknown-unknown/release/envoy_dd.wasm dist/envoy_dd.wasm
echo "$PWD/dist/envoy_dd.wasm"
