#!/usr/bin/env bash
# Short fuzz run of every target (default 20 s each; longer runs: pass seconds,
# e.g. tools/fuzz_smoke.sh 3600). Installs cargo-fuzz if missing. Seeds the
# corpora from spec/vectors and generated samples. Fails on any crash.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
cd "$ROOT/fuzz"
mkdir -p corpus/container corpus/payload corpus/readers
cp -f "$ROOT"/spec/vectors/*.idl corpus/container/ 2>/dev/null || true
printf '\x02\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00zzyyy' > corpus/payload/seed
printf '\x01ObjectType = Image\nNDims = 3\nDimSize = 2 2 1\nElementType = MET_FLOAT\nElementDataFile = f.raw\n' > corpus/readers/mhd
for t in container payload readers; do
  echo "[fuzz] $t for ${SECS}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=65536 2>&1 | tail -n 3
done
