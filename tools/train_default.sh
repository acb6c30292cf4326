#!/usr/bin/env bash
# Recipe of the shipped default model (models/idlat-fast.safetensors).
# Trains on generated samples only: seeds 101-103 of each kind, several time
# steps. Benchmarks and tests use other seeds (1-9), so they are held out.
# The fast profile starts as a DCT transform codec (src/codec/net.rs), so a
# short run mostly trains the entropy model and the importance conditioning:
# about 35 minutes on a 2-core CPU. STEPS=N shortens it; extra flags the recipe does not
# set are passed on (e.g. --resume FILE).
# `tools/train_default.sh --baseline` trains the paper's Table 2 baseline with the
# same recipe (no importance, no quantisation, no rate loss) into
# models/idlat-fast-baseline.safetensors, which tools/bench.sh compares against
# (the shipped one: STEPS=600, 24 minutes).
# `PROFILE=paper STEPS=2300 tools/train_default.sh` trains the shipped paper-profile
# model (models/idlat-paper.safetensors; about 50 minutes, 1.3 s a step on 2 cores),
# which tools/bench_codec.sh compares with the fast one at equal ratio.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
tools/setup.sh
PROFILE=${PROFILE:-fast}
SUFFIX=""
for a in "$@"; do [ "$a" = --baseline ] && SUFFIX=-baseline; done
OUT=${OUT:-models/idlat-$PROFILE$SUFFIX.safetensors}
mkdir -p "$(dirname "$OUT")"
exec target/release/idlat train \
  --profile "$PROFILE" \
  --sample vortex:101-103:0-2 --sample nyx:101-103:0-1 --sample isabel:101-103:0-1 \
  --sample-dims 96x96x96 \
  --steps "${STEPS:-2500}" --batch 8 --blocks 1500 --lr 3e-4 --lambda 1000 --a 6 \
  --validate-every 250 --seed 1 --device auto \
  -o "$OUT" --force "$@"
