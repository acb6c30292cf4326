#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine (root, apt and PyPI reachable).
# Installs: apt packages (FUSE, ParaView, Xvfb, the HDF5, NetCDF and Open MPI libraries
# idlat links), a project venv with the libtorch
# that tch links (torch==2.13.0) plus the Python packages tests and benchmarks use,
# then builds the two release binaries: the full build target/release/idlat and
# the torch-free front end target/notorch/release/idlat, which runs what needs
# no libtorch itself and re-executes the full build for the rest; users run
# target/bin/idlat (the front end) beside target/bin/idlat-torch (the full
# build), both symlinks. A second run only checks and takes seconds.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${IDLAT_VENV:-$ROOT/.venv}
TORCH_VERSION=2.13.0   # the version tch 0.26 expects
PY_PKGS="numpy scipy matplotlib vtk pysz zfpy zstandard h5py hdf5plugin netCDF4"
# Open MPI (with libclang for the rsmpi bindings) for packing across ranks (feature `mpi`).
APT_PKGS="fuse3 pkg-config xvfb xauth paraview python3-paraview libhdf5-dev libnetcdf-dev libopenmpi-dev openmpi-bin libclang-dev time"
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
# rustfmt for the format check of tools/test.sh (best effort: the check says if it is missing).
if ! cargo fmt --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
  log "rustup component add rustfmt"
  rustup component add rustfmt >/dev/null 2>&1 || log "rustfmt could not be installed"
fi
# clippy for the lint check of tools/test.sh (best effort, as rustfmt).
if ! cargo clippy --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
  log "rustup component add clippy"
  rustup component add clippy >/dev/null 2>&1 || log "clippy could not be installed"
fi
# The full build finds libtorch through its RUNPATH (absolute, set by build.rs),
# so it runs the same when executed through target/bin/idlat-torch.
if [ "${IDLAT_SETUP_NO_BUILD:-0}" != 1 ]; then
  log "cargo build --release"
  cargo build --release --quiet
  log "cargo build --release --no-default-features --features mpi (the torch-free front end)"
  cargo build --release --quiet --no-default-features --features mpi --target-dir target/notorch --bin idlat
  mkdir -p target/bin
  # Relative links: the tree can move. The front end finds idlat-torch beside
  # the path it was started as, without resolving the link.
  ln -sfn ../notorch/release/idlat target/bin/idlat
  ln -sfn ../release/idlat target/bin/idlat-torch
fi
log "ready: $ROOT/target/bin/idlat (front end; the full build is $ROOT/target/bin/idlat-torch)"
