#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), Rust unit and integration tests
# (these include real FUSE mounts and the Python/VTK/ParaView client tests),
# the Python reader cross-check, and a short fuzz smoke run in CI.
# Prints one closing line "N passed, N failed" summing every test binary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
tools/setup.sh
export IDLAT_VENV=${IDLAT_VENV:-$ROOT/.venv}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Formatting (rustfmt.toml): a diff fails the run, and so does a missing rustfmt in CI.
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --check || { echo "cargo fmt --check: the tree is not formatted (run cargo fmt)" >&2; status=1; }
  (cd fuzz && cargo fmt --check) || { echo "cargo fmt --check in fuzz/: not formatted" >&2; status=1; }
elif [ "${CI:-}" = true ]; then
  echo "rustfmt is not installed (rustup component add rustfmt): the format check cannot run" >&2; status=1
else
  echo "note: rustfmt is not installed; the format check was not run" >&2
fi
# Lints (Cargo.toml [lints], clippy.toml): any warning fails the run, and so does a missing clippy in CI.
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --release --all-targets -- -D warnings || { echo "cargo clippy: lint warnings (see above)" >&2; status=1; }
elif [ "${CI:-}" = true ]; then
  echo "clippy is not installed (rustup component add clippy): the lint check cannot run" >&2; status=1
else
  echo "note: clippy is not installed; the lint check was not run" >&2
fi
# Release mode: reuses set-up's build and keeps the numeric tests fast.
cargo test --release --all-targets --no-fail-fast 2>&1 | tee "$log" || status=$?
# --all-targets leaves out the doc tests (the rustdoc examples, e.g. pack::Plan's).
cargo test --release --doc --no-fail-fast 2>&1 | tee -a "$log" || status=$?
if [ -x tools/fuzz_smoke.sh ] && { [ "${CI:-}" = true ] || [ "${IDLAT_FUZZ:-0}" = 1 ]; }; then
  tools/fuzz_smoke.sh "${IDLAT_FUZZ_SECONDS:-20}" || status=1
fi
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "$passed passed, $failed failed"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then echo "test run failed before completing (see above)" >&2; fi
exit "$status"
