#!/usr/bin/env bash
# Before a GPU slot, here: the wheels of the two packages the lent machine's image lacks (python-flint
# and platformdirs; it has PyTorch and JAX with CUDA, pandas, pyarrow, jinja2, matplotlib, ml_dtypes,
# tqdm and packaging, and reaches no registry), at constraints.txt's versions, into .gpu-wheels/
# (git-ignored; XENT_GPU_WHEELS=DIR elsewhere): the device call carries that folder and runs
# benchmarks/gpu_slot.sh (README, "GPUs").
#
#   benchmarks/gpu_wheels.sh [PYTHON_VERSION]   # the image's Python, default 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-3.12}
wheels=${XENT_GPU_WHEELS:-.gpu-wheels}
pins=$(grep -E '^(python-flint|platformdirs)==' constraints.txt)
rm -rf "$wheels"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$wheels" $pins
ls -l "$wheels"
