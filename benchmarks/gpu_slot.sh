#!/usr/bin/env bash
# What a lent GPU machine runs, in one call: the carried wheels (benchmarks/gpu_wheels.sh) installed
# beside the image's packages, not into them, then the prepared check (benchmarks/gpu_check.sh, its
# arguments passed on), then its folder packed into $OUT as one file (the device tool brings back a
# few files, two folders deep) with summary.txt beside it. From this machine:
#
#   benchmarks/gpu_wheels.sh
#   device run, carry [".gpu-wheels"], timeout_s 560:  bash benchmarks/gpu_slot.sh
#
# The whole check runs under XENT_GPU_BUDGET seconds (default 480, inside the device call's limit), so
# whatever it measured is packed even when a step runs long. The exit code is the check's (124: the
# budget ran out). Unpack here: tar xzf gpu-check.tgz (results, reports, diffs).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?gpu_slot: OUT (the folder that comes back) is not set}"
py=${PYTHON:-python3}
work=$(mktemp -d)  # the site and the check's folder, outside the checkout
"$py" -m pip install --quiet --no-index --no-deps --find-links "${XENT_GPU_WHEELS:-.gpu-wheels}" --target "$work/site" \
  python-flint platformdirs \
  || { echo "gpu_slot: the carried wheels did not install (run benchmarks/gpu_wheels.sh and carry .gpu-wheels)" >&2; exit 3; }
export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}" PYTHON="$py" PYTHONUNBUFFERED=1
timeout "${XENT_GPU_BUDGET:-480}" bash benchmarks/gpu_check.sh --out "$work/gpu-check" "$@" 2>&1 | tee "$OUT/gpu-check.log"
rc=${PIPESTATUS[0]}
mkdir -p "$work/gpu-check"
tar czf "$OUT/gpu-check.tgz" -C "$work" gpu-check
cp "$work/gpu-check/summary.txt" "$OUT/summary.txt" 2>/dev/null
exit "$rc"
