#!/usr/bin/env bash
# Build what a lent offline GPU machine (Python 3.12, torch/triton/numba/sklearn/h5py present)
# lacks to run the DAG: open3d (CPU build, stripped), snakemake + its pure-Python closure, and the
# GL/USB shared libraries open3d links. Output: .ship/a/ (about 47 MB, under the 64 MiB carry).
# Run from the repository root after `make setup`; add `/.ship/` to .git/info/exclude.
set -euo pipefail
out=.ship/a; work=$(mktemp -d); mkdir -p "$out/gl"
py312=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_35_x86_64
       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps "${py312[@]}" -d "$work" open3d-cpu==0.20.0
mkdir "$work/o3d" && unzip -q "$work"/open3d_cpu-*.whl -d "$work/o3d" -x 'open3d/examples/*' \
  'open3d/resources/*' 'open3d/labextension/*' 'open3d/nbextension/*' 'open3d/open3d_tf_ops.so' \
  'open3d/open3d_torch_ops.so' 'open3d_cpu-*.data/*'
strip --strip-unneeded "$work"/o3d/open3d/*.so* || true
tar -C "$work/o3d" -cf - . | xz -T0 -6 > "$out/o3d.tar.xz"
# snakemake's closure minus what the GPU image already has: pure packages copied from .venv,
# compiled ones downloaded for cp312; pulp's bundled solver binaries are not needed.
.venv/bin/python dev/lease/snakemake_closure.py "$work/site" "$work/whl"
for w in "$work"/whl/*.whl; do unzip -q -o "$w" -d "$work/site"; done
rm -rf "$work/site/pulp/solverdir"
tar -C "$work" -cf - site | xz -T0 -6 > "$out/smk_site.tar.xz"
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
mkdir -p /tmp/amd64/partial && apt-get $o update -qq
(cd "$out/gl" && apt-get $o download libegl1 libglvnd0 libgl1 libglx0 libopengl0 libx11-6 libxcb1 \
  libxau6 libxdmcp6 libbsd0 libmd0 libxext6 libgomp1 libusb-1.0-0 libudev1)
# Pure-binary pins of requirements.txt the image lacks (orjson: the table reader).
python3 -m pip download -q --no-deps "${py312[@]}" -d "$out/whl" "$(grep '^orjson==' requirements.txt)"
cp dev/lease/unpack.sh "$out/"
du -sh "$out"
