#!/usr/bin/env bash
# The prepared device check: on a machine with an NVIDIA GPU and PyTorch and JAX built for CUDA
# (no TensorFlow needed), the default suite for torch and JAX on the GPU, the same on the CPU, and
# the CPU-vs-GPU diff per framework, all written into one folder to bring back (README, "GPUs").
# Each command runs under a time limit, so the whole check is sized for a short GPU slot (the aim:
# under 6 minutes; torch's out-of-range cases cost a worker each, replaced by a forked spare; it has
# not yet run on a GPU: README, "GPUs").
#
#   benchmarks/gpu_check.sh [--devices cuda|cpu] [--frameworks torch,jax] [--out DIR] [--limit SECONDS]
#                           [--compile-shard K/N|none]
#
# With torch among the frameworks it also runs torch.compile (`--modes compile`: Inductor, C++ on the
# CPU, Triton on the GPU, where rewrites such as online softmax apply only there) on one shard of the
# suite (default 1/20, about 21 cases: every graph compiles cold in a fresh machine) on both devices,
# and diffs them; `--compile-shard none` leaves it out.
#
# --devices cpu is the dry run CI makes (tests/test_gpu_check.py): the same steps with the CPU in the
# GPU's place, so the script cannot rot. The exit code is that of the first step that failed (124: a
# time limit), else 0; DIR/summary.txt says what ran, how long, and with what exit code.
set -uo pipefail
cd "$(dirname "$0")/.."

devices=cuda frameworks=torch,jax out=gpu-check limit=240 compile_shard=1/20
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) devices=$2; shift 2 ;;
    --frameworks) frameworks=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --compile-shard) compile_shard=$2; shift 2 ;;
    *) echo "gpu_check: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$devices" in cuda|cpu) ;; *) echo "gpu_check: --devices cuda or cpu, not $devices" >&2; exit 2 ;; esac
case "$compile_shard" in none|[1-9]*/[1-9]*) ;; *) echo "gpu_check: --compile-shard K/N or none, not $compile_shard" >&2; exit 2 ;; esac

py=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
missing=$("$py" - "$frameworks" <<'PY'
import importlib.util, sys
need = ["numpy", "flint", "pandas", "pyarrow", "ml_dtypes", "jinja2", "matplotlib", "tqdm", "platformdirs",
        "packaging"]
for f in sys.argv[1].split(","):
    need += {"torch": ["torch"], "jax": ["jax", "optax"]}.get(f, [f])
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
PY
)
if [ -n "$missing" ]; then
  echo "gpu_check: not installed here: $missing (pip install -c constraints.txt -e '.[torch,jax]')" >&2
  exit 3
fi

mkdir -p "$out"
: > "$out/summary.txt"
first_failure=0
step() {  # step NAME COMMAND...: run it under the time limit, its output in DIR/NAME.log
  local name=$1; shift
  local start=$SECONDS
  echo "+ $*" | tee -a "$out/summary.txt"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$out/summary.txt"
  tail -n 12 "$out/$name.log" | sed 's/^/    /'
  if [ "$rc" -ne 0 ] && [ "$first_failure" -eq 0 ]; then first_failure=$rc; fi
}

"$py" -m conformance.cli --version | tee -a "$out/summary.txt"
if [ "$devices" = cuda ]; then
  "$py" -c 'import torch, jax; print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA", "| jax", jax.__version__, jax.devices())' \
    2>&1 | tee -a "$out/summary.txt"
  device_globs=("cuda:*" "gpu:*")
else
  device_globs=(cpu)
fi

step cpu "$py" -m conformance.cli run --frameworks "$frameworks" --devices cpu --out "$out/cpu" --json "$out/cpu.json"
step device "$py" -m conformance.cli run --frameworks "$frameworks" --devices "${device_globs[@]}" \
  --out "$out/device" --json "$out/device.json"
for framework in ${frameworks//,/ }; do
  case "$devices:$framework" in
    cuda:torch) label=cuda:0 ;;
    cuda:*) label=gpu:0 ;;
    *) label=cpu ;;
  esac
  # every CPU-vs-GPU difference, by API and transition; only a framework that did not run fails it
  step "diff-$framework" "$py" -m conformance.cli diff "$out/cpu" "$out/device" --frameworks "$framework" \
    --devices cpu "$label" --fail-on missing --json "$out/diff-$framework.json" --html "$out/diff-$framework.html"
done
# torch.compile on both devices, one shard of the suite, and the diff: what only code generation for the
# GPU changes (the eager diff above holds what the GPU's kernels change)
if [ "$compile_shard" != none ] && [[ ",$frameworks," == *",torch,"* ]]; then
  [ "$devices" = cuda ] && torch_device=cuda:0 || torch_device=cpu
  step cpu-compile "$py" -m conformance.cli run --frameworks torch --modes compile --shard "$compile_shard" \
    --devices cpu --out "$out/cpu-compile" --json "$out/cpu-compile.json"
  step device-compile "$py" -m conformance.cli run --frameworks torch --modes compile --shard "$compile_shard" \
    --devices "$torch_device" --out "$out/device-compile" --json "$out/device-compile.json"
  step diff-torch-compile "$py" -m conformance.cli diff "$out/cpu-compile" "$out/device-compile" --frameworks torch \
    --devices cpu "$torch_device" --fail-on missing --json "$out/diff-torch-compile.json" \
    --html "$out/diff-torch-compile.html"
fi
echo "gpu_check: everything is in $out/ (summary.txt, the runs' results and reports, diff-*.html and .json)"
exit "$first_failure"
