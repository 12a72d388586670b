"""PyTorch: the functional and module forms of each loss, and torch.log_softmax."""
from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: F401 (the calls' source names it)

from .base import VIEW_DTYPES, Adapter, Api, Device, Mode, cpu_model, dtype_name

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32,
                "float16": torch.float16, "bfloat16": torch.bfloat16}
INT_VIEW = {"float64": np.int64, "float32": np.int32, "float16": np.int16, "bfloat16": np.int16}
INT_TORCH = {2: torch.int16, 4: torch.int32, 8: torch.int64}


CE = "weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing"
NLL = "weight=weight, ignore_index=ignore_index, reduction=reduction"
WEIGHT = "weight=weight, reduction=reduction"
LOGITS = "weight=weight, pos_weight=pos_weight, reduction=reduction"


def _both(functional: str, module: str, op: str, kwargs: str, **declared) -> tuple[Api, Api]:
    """A loss's functional form and its module form: two documented APIs, one way to call."""
    return (Api(f"torch.nn.functional.{functional}", op, f"F.{functional}(x, target, {kwargs})", **declared),
            Api(f"torch.nn.{module}", op, f"torch.nn.{module}({kwargs})(x, target)", **declared))


APIS = (
    *_both("cross_entropy", "CrossEntropyLoss", "cross_entropy", CE,
           targets=("index", "probs"), params=frozenset({"weight", "ignore_index", "label_smoothing"})),
    Api("torch.log_softmax", "log_softmax", "torch.log_softmax(x, dim=0 if x.ndim == 1 else 1)"),
    *_both("nll_loss", "NLLLoss", "nll_loss", NLL, targets=("index",), params=frozenset({"weight", "ignore_index"})),
    # the idiom NLLLoss' docs give for probabilities
    Api("torch.nn.functional.nll_loss(torch.log(p))", "cross_entropy_from_probs",
        f"F.nll_loss(torch.log(x), target, {NLL})", targets=("index",), params=frozenset({"weight", "ignore_index"})),
    *_both("binary_cross_entropy", "BCELoss", "binary_cross_entropy", WEIGHT,
           targets=("binary",), params=frozenset({"weight"})),
    *_both("binary_cross_entropy_with_logits", "BCEWithLogitsLoss", "binary_cross_entropy_with_logits", LOGITS,
           targets=("binary",), params=frozenset({"weight", "pos_weight"})),
    *_both("multilabel_soft_margin_loss", "MultiLabelSoftMarginLoss", "multilabel_soft_margin_loss", WEIGHT,
           targets=("binary",), params=frozenset({"weight"})),
)


def _tensor(array: np.ndarray, device: str) -> torch.Tensor:
    """Exact transfer: every float travels as its bit pattern (numpy has no bfloat16)."""
    name = dtype_name(array)
    if name is None:
        return torch.from_numpy(np.asarray(array, order="C")).to(device)
    bits = torch.from_numpy(np.asarray(array, order="C").view(INT_VIEW[name]))
    return bits.to(device).view(TORCH_DTYPES[name])


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    name = next((n for n, d in TORCH_DTYPES.items() if t.dtype == d), None)
    if name is None:
        return t.numpy()
    return t.contiguous().view(INT_TORCH[t.element_size()]).numpy().view(VIEW_DTYPES[name])


REPRO_SETUP = """\
import torch
import torch.nn.functional as F

SIGNED = {"float64": np.int64, "float32": np.int32, "float16": np.int16, "bfloat16": np.int16}


def tensor(bits, dtype, shape):
    signed = np.array(bits, dtype=UNSIGNED[dtype]).reshape(shape).view(SIGNED[dtype])
    return torch.from_numpy(signed).view(getattr(torch, dtype)).to(DEVICE)


def integers(values, dtype, shape):
    return torch.from_numpy(np.array(values, dtype=dtype).reshape(shape)).to(DEVICE)


def bits_of(t):
    t = t.detach().cpu().contiguous()
    signed = t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()]).numpy()
    return signed.view(signed.dtype.str.replace("i", "u"))
"""

# as execute() does: the loss (what a mode compiles), then the gradient of its sum
REPRO_RUN = """\
def program(x, target, weight, pos_weight, mask):
    return {call}


program = {mode}
x.requires_grad_(True)
loss = program(x, target, weight, pos_weight, mask)
(grad,) = torch.autograd.grad(loss.sum(), x)
"""


class NotCompiled(RuntimeError):
    """torch.compile ran the function without compiling a graph (it fell back to eager)."""


def compiled(backend: str, saved: bool = False):
    """torch.compile with this backend, the whole function one graph (fullgraph: a graph break is
    an error, not a silent return to eager), static shapes; its first call must compile a graph.
    `saved`: the compiled function is kept on disk and loaded by later runs (`precompiled`)."""
    def wrap(program):
        from torch._dynamo.utils import counters

        def function():
            return torch.compile(program, backend=backend, fullgraph=True, dynamic=False)

        if saved and not torch._inductor.config.force_disable_caches:
            return precompiled(function, program)
        function = function()
        checked = False

        def run(*args, **kwargs):
            nonlocal checked
            graphs = counters["stats"]["unique_graphs"]
            out = function(*args, **kwargs)
            if not checked and counters["stats"]["unique_graphs"] == graphs:
                raise NotCompiled("torch.compile compiled no graph: the call ran eagerly")
            checked = True
            return out

        return run

    return wrap


def precompiled(function, program):
    """The compiled function of one graph (`function()`: its torch.compile, made only when the
    graph is not saved), from torch.compile's own `aot_compile` (the same Dynamo
    trace, AOTAutograd and Inductor code as the call's first compile; fullgraph: a graph, or an
    error), saved in Inductor's cache folder and loaded there by later processes. A warm run then
    skips the tracing a cached torch.compile still does (here about 57 ms a graph against 17 ms to
    load one: benchmarks/bench_modes.py)."""
    loaded = None

    def run(**arrays):
        nonlocal loaded
        if loaded is None:
            loaded = _load_or_compile(function, program, arrays)
        return loaded(**arrays)

    return run


def _load_or_compile(function, program, arrays: dict):
    from torch._dynamo.aot_compile import AOTCompiledFunction
    from torch._inductor.runtime.cache_dir_utils import cache_dir
    # everything the compiled code depends on: the function (its call and static parameters), the
    # arrays' layout, the compiler and what it compiles for
    graph = [torch.__version__, sys.version, inductor_settings(), program.source,
             {n: None if a is None else [a.shape, a.stride(), str(a.dtype), str(a.device), a.requires_grad]
              for n, a in arrays.items()}]
    path = Path(cache_dir()) / "xent-precompiled" / f"{hashlib.sha256(json.dumps(graph).encode()).hexdigest()}.bin"
    if path.exists():
        try:
            loaded = AOTCompiledFunction.deserialize(path.read_bytes(), f_globals=program.__globals__)
            if loaded.guard_check(**arrays):
                return loaded
        except Exception:  # noqa: BLE001 (a file from another build, or cut short: compiled again below)
            pass
    compiled = function().aot_compile(((), arrays))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        compiled.save_compiled_function(str(path))  # atomic: a temporary file, then os.replace
    except Exception as e:  # noqa: BLE001 (the result stands; only the next run's shortcut is lost)
        warnings.warn(f"the compiled graph was not saved ({e}): the next run compiles it again", stacklevel=2)
    return compiled


def inductor_settings() -> str:
    """What decides compiled code's numbers besides the device: Inductor's vector ISA and threads."""
    from torch._inductor import config
    from torch._inductor.cpu_vec_isa import pick_vec_isa
    return f"inductor {str(pick_vec_isa()) or 'scalar'}, {torch.get_num_threads()} threads" + (
        ", cpp wrapper" if config.cpp_wrapper else "")


def compiler_imported() -> None:
    """What a compiled mode's first call imports (Dynamo, AOTAutograd, Inductor: about 2 s)."""
    import torch._dynamo.aot_compile  # noqa: F401
    import torch._functorch.aot_autograd  # noqa: F401
    import torch._inductor.compile_fx  # noqa: F401


def inductor_ready() -> None:
    """The imports, and Inductor's vector ISA (picked by test builds, each loaded in a subprocess)."""
    compiler_imported()
    inductor_settings()


# the CPU kernels' vector ISA decides accumulation order (ATEN_CPU_CAPABILITY lowers it); made at
# import, touching no device, so that workers forked from a fork server find it made
CPU_NAME = f"{cpu_model()} (torch {torch.backends.cpu.get_cpu_capability()})"

MODES = (
    Mode("eager", "each op runs as it is called"),
    Mode("compile", "torch.compile(backend='inductor', fullgraph=True, dynamic=False): one graph per shape, "
         "forward and backward compiled to C++ (CPU) or Triton (GPU)",
         compiled("inductor", saved=True),
         "torch.compile(program, backend='inductor', fullgraph=True, dynamic=False)",
         inductor_settings, inductor_ready),
    # what compile does short of code generation: a difference here is a decomposition's, one only in
    # `compile` is Inductor's code generation
    Mode("decomp", "torch.compile(backend='aot_eager_decomp_partition'): compile's decompositions and "
         "forward/backward partition, each op then run eagerly",
         compiled("aot_eager_decomp_partition"),
         "torch.compile(program, backend='aot_eager_decomp_partition', fullgraph=True, dynamic=False)",
         preload=compiler_imported),
)


class TorchAdapter(Adapter):
    apis = APIS
    # TORCH_CHECK raises RuntimeError, TORCH_CHECK_INDEX IndexError, TORCH_CHECK_VALUE ValueError
    domain_errors = ("RuntimeError", "IndexError", "ValueError")
    distributions = ("torch",)

    def version(self) -> str:
        return torch.__version__

    def devices(self) -> list[Device]:
        found = [Device("cpu", "cpu", CPU_NAME)]
        for i in range(torch.cuda.device_count()):
            found.append(Device(f"cuda:{i}", f"cuda:{i}", torch.cuda.get_device_name(i)))
        return found

    def array(self, values, device):
        return _tensor(values, device)

    def program(self, loss):
        return loss  # a mode compiles the loss; autograd runs its (compiled) backward

    def run(self, program, arrays):
        x = arrays["x"].requires_grad_(True)
        loss = program(**arrays)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss, grad

    def numpy(self, value):
        return _numpy(value)

    modes = MODES
    repro_setup = REPRO_SETUP
    repro_run = REPRO_RUN

    def is_fatal(self, error: BaseException) -> bool:
        """A CUDA device-side assert poisons the process's CUDA context (pytorch#18014)."""
        return "CUDA error" in str(error) or "device-side assert" in str(error)


ADAPTER = TorchAdapter()
