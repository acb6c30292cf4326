#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine (root, apt and PyPI reachable).
# Installs: apt packages (FUSE, ParaView, Xvfb, the HDF5 and NetCDF libraries
# idlat links), a project venv with the libtorch
# that tch links (torch==2.13.0) plus the Python packages tests and benchmarks use,
# then builds the release binary. A second run only checks and takes seconds.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${IDLAT_VENV:-$ROOT/.venv}
TORCH_VERSION=2.13.0   # the version tch 0.26 expects
PY_PKGS="numpy scipy matplotlib vtk pysz zfpy zstandard h5py hdf5plugin netCDF4"
APT_PKGS="fuse3 pkg-config xvfb xauth paraview python3-paraview libhdf5-dev libnetcdf-dev"
log() { printf '[setup] %s\n' "$*" >&2; }

# --- apt packages -----------------------------------------------------------
missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "apt-get install:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- Python venv with torch and client/benchmark packages ---------------------
stamp="$VENV/.idlat-stamp"
want="torch==$TORCH_VERSION $PY_PKGS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "creating venv $VENV (torch $TORCH_VERSION: about 4.7 GB, a few minutes on a first run)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" $PY_PKGS
  echo "$want" > "$stamp"
fi
# Point tch at the venv's libtorch so plain `cargo build`/`cargo test` work with
# nothing exported (build.rs adds the rpath, so the binary needs no LD_LIBRARY_PATH).
TORCH_DIR=$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
mkdir -p "$ROOT/.cargo"
cfg="# Written by tools/setup.sh: where the libtorch that tch links lives.
[env]
LIBTORCH = \"$TORCH_DIR\"
LIBTORCH_CXX11_ABI = \"1\"
IDLAT_VENV = \"$VENV\"
"
[ -f "$ROOT/.cargo/config.toml" ] && [ "$(cat "$ROOT/.cargo/config.toml")" = "$(printf '%s' "$cfg")" ] || printf '%s' "$cfg" > "$ROOT/.cargo/config.toml"

# --- Rust build ---------------------------------------------------------------
if [ "${IDLAT_SETUP_NO_BUILD:-0}" != 1 ]; then
  log "cargo build --release"
  cargo build --release --quiet
fi
log "ready: $ROOT/target/release/idlat"
