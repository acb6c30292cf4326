#!/usr/bin/env bash
# Short fuzz run of every target (default 20 s each; longer runs: pass seconds,
# e.g. tools/fuzz_smoke.sh 3600). Installs cargo-fuzz if missing. Seeds the
# corpora from spec/vectors and from small files generated with the built
# idlat binary (see below). Fails on any crash.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
cd "$ROOT/fuzz"
mkdir -p corpus/container corpus/container_bytes corpus/payload corpus/readers
cp -f "$ROOT"/spec/vectors/*.idl corpus/container/ 2>/dev/null || true
printf '\x02\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00zzyyy' > corpus/payload/seed
printf '\x01ObjectType = Image\nNDims = 3\nDimSize = 2 2 1\nElementType = MET_FLOAT\nElementDataFile = f.raw\n' > corpus/readers/mhd
# Generated seeds: small files idlat itself writes in every input format, and real
# packed containers (lossless, and neural with the shipped model when the binary
# has the codec). The readers target picks the extension from its first byte
# (0 npy, 1 mhd, 4 nhdr, 5 vti, 6 raw.gz) and writes the rest to f.EXT and f.raw.
IDLAT="$ROOT/target/release/idlat"
if [ -x "$IDLAT" ]; then
  gen=$(mktemp -d)
  "$IDLAT" sample vortex --dims 4x4x4 -o "$gen/s.raw" >/dev/null
  "$IDLAT" pack "$gen/s.raw" --dims 4x4x4 --lossless -o "$gen/l.idl" --quiet >/dev/null
  "$IDLAT" pack "$gen/s.raw" --dims 4x4x4 --profile fast -o "$gen/n.idl" --quiet >/dev/null 2>&1 || true
  "$IDLAT" sample vortex --dims 20x20x20 -o "$gen/w.raw" >/dev/null
  "$IDLAT" pack "$gen/w.raw" --dims 20x20x20 --importance iso:5 --tile 16 --error-bound 0.05 -o "$gen/w.idl" --quiet >/dev/null
  cp -f "$gen"/*.idl corpus/container/
  # Real streams of the neural block, in the payload target's ANS layout
  # (selector: low bit 1 for a per-cell level stream; u16 z length; level
  # stream; z; y); spec/FORMAT.md §3 trailer, §5 index, §6 streams.
  if [ -f "$gen/n.idl" ]; then
    python3 - "$gen/w.idl" corpus/payload/gen <<'PY' || true
import struct, sys
b = open(sys.argv[1], 'rb').read()
t = b[-88:]
index_off = struct.unpack_from('<Q', t, 24)[0]
off, ln = struct.unpack_from('<QI', b, index_off)
if b[index_off + 16] == 4:  # kind 4: wavelet, behind three shape bytes (16x16x16 tile)
    open(sys.argv[2] + '_wavelet', 'wb').write(bytes([15, 15, 15]) + b[off:off + ln])
PY
    python3 - "$gen/n.idl" corpus/payload/gen_ans <<'PY' || true
import struct, sys
b = open(sys.argv[1], 'rb').read()
t = b[-88:]
index_off = struct.unpack_from('<Q', t, 24)[0]
off, ln = struct.unpack_from('<QI', b, index_off)
p = b[off:off + ln]
n = struct.unpack_from('<I', p, 0)[0]
lens = struct.unpack_from('<%dI' % n, p, 4)
at, s = 4 + 4 * n, []
for l in lens:
    s.append(p[at:at + l]); at += l
if b[index_off + 16] == 3 and n >= 3:  # kind 3: neural
    sel = bytes([0 if len(s[2]) == 1 else 1])
    open(sys.argv[2], 'wb').write(sel + struct.pack('<H', len(s[0])) + s[2] + s[0] + s[1])
PY
  fi
  for f in npy nhdr vti; do "$IDLAT" unpack "$gen/l.idl" -o "$gen/u.$f" --quiet >/dev/null; done
  { printf '\x00'; cat "$gen/u.npy"; } > corpus/readers/gen_npy
  { printf '\x01'; sed 's/ElementDataFile = .*/ElementDataFile = f.raw/' "$gen/s.mhd"; } > corpus/readers/gen_mhd
  { printf '\x04'; sed 's/^data file: .*/data file: f.raw/' "$gen/u.nhdr"; } > corpus/readers/gen_nhdr
  { printf '\x05'; cat "$gen/u.vti"; } > corpus/readers/gen_vti
  { printf '\x06'; gzip -c "$gen/s.raw"; } > corpus/readers/gen_rawgz
  rm -rf "$gen"
else
  echo "[fuzz] $IDLAT not built: corpora seeded from spec/vectors only"
fi
# Payload seeds: one-byte level stream, z length 8, level 0, then z and y bytes
# that are not valid ANS.
printf '\x00\x08\x00\x00\x01\x00\x00\x00\x00\x00\x00\x80\x02\x00\x00\x00\x00\x00\x01\x00' > corpus/payload/ans
# The in-memory target starts from the same containers.
cp -f corpus/container/* corpus/container_bytes/ 2>/dev/null || true
# Every target runs even after a failure; a failing one prints the crash report
# (what failed and the input), not just the last lines.
fail=0
log=$(mktemp)
for t in container container_bytes payload readers; do
  echo "[fuzz] $t for ${SECS}s"
  if RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" -timeout=60 -rss_limit_mb=2048 -max_len=65536 >"$log" 2>&1; then
    tail -n 2 "$log"
  else
    echo "[fuzz] $t FAILED:"
    grep -v '^#[0-9]' "$log" | grep -E -m 1 -A 25 'ERROR|panicked|SUMMARY|out-of-memory|deadly signal' || tail -n 40 "$log"
    grep -E 'Test unit written|Base64' "$log" || true
    fail=1
  fi
done
rm -f "$log"
exit $fail
