"""PyTorch: the functional and module forms of each loss, and torch.log_softmax."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F  # noqa: F401 (the calls' source names it)

from .base import VIEW_DTYPES, Adapter, Api, Device, Inputs, cpu_model, dtype_name

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

# as execute() does: the loss, then the gradient of its sum
REPRO_RUN = """\
x.requires_grad_(True)
loss = {call}
(grad,) = torch.autograd.grad(loss.sum(), x)
"""


class TorchAdapter(Adapter):
    apis = APIS
    # TORCH_CHECK raises RuntimeError, TORCH_CHECK_INDEX IndexError, TORCH_CHECK_VALUE ValueError
    domain_errors = ("RuntimeError", "IndexError", "ValueError")
    distributions = ("torch",)

    def version(self) -> str:
        return torch.__version__

    def devices(self) -> list[Device]:
        # the CPU kernels' vector ISA decides accumulation order (ATEN_CPU_CAPABILITY lowers it)
        found = [Device("cpu", "cpu", f"{cpu_model()} (torch {torch.backends.cpu.get_cpu_capability()})")]
        for i in range(torch.cuda.device_count()):
            found.append(Device(f"cuda:{i}", f"cuda:{i}", torch.cuda.get_device_name(i)))
        return found

    def execute(self, api: Api, c: Inputs, device: str) -> dict:
        x = _tensor(c.x, device).requires_grad_(True)
        call = replace(c, x=x, **{name: None if getattr(c, name) is None else _tensor(getattr(c, name), device)
                                  for name in ("target", "weight", "pos_weight")})
        try:  # on CUDA an error surfaces at the first synchronisation: the copy to the host
            loss = self.call(api, call)
            out = {"loss": _numpy(loss)}
        except Exception as e:  # the framework's own error is the observation
            return {"loss": e, "grad": e}
        try:
            (grad,) = torch.autograd.grad(loss.sum(), x)
            out["grad"] = _numpy(grad)
        except Exception as e:
            out["grad"] = e
        return out

    repro_setup = REPRO_SETUP
    repro_run = REPRO_RUN

    def is_fatal(self, error: BaseException) -> bool:
        """A CUDA device-side assert poisons the process's CUDA context (pytorch#18014)."""
        return "CUDA error" in str(error) or "device-side assert" in str(error)


ADAPTER = TorchAdapter()
