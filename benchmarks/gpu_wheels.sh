#!/bin/bash
# The wheels benchmarks/gpu_session.sh installs on a lent GPU machine, whose
# image has jax, flax, optax, chex, absl and torch but not these, and which
# reaches no package index: downloaded here into .whl/ (git-ignored), for
# each Python the image may have, then carried with the run tool's
# `carry: [".whl"]`. Run from the repository root:
#   bash benchmarks/gpu_wheels.sh
set -eu
mkdir -p .whl
for py in 3.11 3.12 3.13; do
  python3 -m pip download -q --no-deps --only-binary=:all: \
    --python-version "$py" --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --implementation cp -d .whl grain array_record
done
python3 -m pip download -q --no-deps -d .whl ml_collections portpicker
ls -la .whl
du -sh .whl
