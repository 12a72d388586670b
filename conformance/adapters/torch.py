"""PyTorch: the functional and module forms of each loss, and torch.log_softmax."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from .base import VIEW_DTYPES, Adapter, Api, Device, Inputs, cpu_model, dtype_name

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32,
                "float16": torch.float16, "bfloat16": torch.bfloat16}
INT_VIEW = {"float64": np.int64, "float32": np.int32, "float16": np.int16, "bfloat16": np.int16}
INT_TORCH = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _ce_kwargs(c: Inputs) -> dict:
    return dict(weight=c.weight, ignore_index=c.ignore_index, reduction=c.reduction,
                label_smoothing=c.label_smoothing)


def _nll_kwargs(c: Inputs) -> dict:
    return dict(weight=c.weight, ignore_index=c.ignore_index, reduction=c.reduction)


def _weight_kwargs(c: Inputs) -> dict:
    return dict(weight=c.weight, reduction=c.reduction)


def _logits_kwargs(c: Inputs) -> dict:
    return dict(weight=c.weight, pos_weight=c.pos_weight, reduction=c.reduction)


def _class_dim(c: Inputs) -> int:
    return 0 if c.x.ndim == 1 else 1


def _both(functional, module, op: str, kwargs, **declared) -> tuple[Api, Api]:
    """A loss's functional form and its module form: two documented APIs, one way to call."""
    return (Api(f"torch.nn.functional.{functional.__name__}", op, lambda c: functional(c.x, c.target, **kwargs(c)),
                **declared),
            Api(f"torch.nn.{module.__name__}", op, lambda c: module(**kwargs(c))(c.x, c.target), **declared))


APIS = (
    *_both(F.cross_entropy, torch.nn.CrossEntropyLoss, "cross_entropy", _ce_kwargs,
           targets=("index", "probs"), params=frozenset({"weight", "ignore_index", "label_smoothing"})),
    Api("torch.log_softmax", "log_softmax", lambda c: torch.log_softmax(c.x, dim=_class_dim(c))),
    *_both(F.nll_loss, torch.nn.NLLLoss, "nll_loss", _nll_kwargs,
           targets=("index",), params=frozenset({"weight", "ignore_index"})),
    # the idiom NLLLoss' docs give for probabilities
    Api("torch.nn.functional.nll_loss(torch.log(p))", "cross_entropy_from_probs",
        lambda c: F.nll_loss(torch.log(c.x), c.target, **_nll_kwargs(c)),
        targets=("index",), params=frozenset({"weight", "ignore_index"})),
    *_both(F.binary_cross_entropy, torch.nn.BCELoss, "binary_cross_entropy", _weight_kwargs,
           targets=("binary",), params=frozenset({"weight"})),
    *_both(F.binary_cross_entropy_with_logits, torch.nn.BCEWithLogitsLoss, "binary_cross_entropy_with_logits",
           _logits_kwargs, targets=("binary",), params=frozenset({"weight", "pos_weight"})),
    *_both(F.multilabel_soft_margin_loss, torch.nn.MultiLabelSoftMarginLoss, "multilabel_soft_margin_loss",
           _weight_kwargs, targets=("binary",), params=frozenset({"weight"})),
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
            loss = api.call(call)
            out = {"loss": _numpy(loss)}
        except Exception as e:  # the framework's own error is the observation
            return {"loss": e, "grad": e}
        try:
            (grad,) = torch.autograd.grad(loss.sum(), x)
            out["grad"] = _numpy(grad)
        except Exception as e:
            out["grad"] = e
        return out

    def is_fatal(self, error: BaseException) -> bool:
        """A CUDA device-side assert poisons the process's CUDA context (pytorch#18014)."""
        return "CUDA error" in str(error) or "device-side assert" in str(error)


ADAPTER = TorchAdapter()
