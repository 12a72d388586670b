"""PyTorch: torch.nn.functional.cross_entropy, torch.nn.CrossEntropyLoss, torch.log_softmax."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import Api, Inputs, STORAGE, VIEW_DTYPES

FRAMEWORK = "torch"
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32,
                "float16": torch.float16, "bfloat16": torch.bfloat16}
INT_VIEW = {"float64": np.int64, "float32": np.int32, "float16": np.int16, "bfloat16": np.int16}
INT_TORCH = {2: torch.int16, 4: torch.int32, 8: torch.int64}
CE_PARAMS = frozenset({"weight", "ignore_index", "label_smoothing"})


def _ce_kwargs(c: Inputs) -> dict:
    return dict(weight=c.weight, ignore_index=c.ignore_index, reduction=c.reduction,
                label_smoothing=c.label_smoothing)


APIS = (
    Api("torch.nn.functional.cross_entropy", "cross_entropy",
        lambda c: F.cross_entropy(c.x, c.target, **_ce_kwargs(c)),
        targets=("index", "probs"), params=CE_PARAMS),
    Api("torch.nn.CrossEntropyLoss", "cross_entropy",
        lambda c: torch.nn.CrossEntropyLoss(**_ce_kwargs(c))(c.x, c.target),
        targets=("index", "probs"), params=CE_PARAMS),
    Api("torch.log_softmax", "log_softmax",
        lambda c: torch.log_softmax(c.x, dim=0 if c.x.ndim == 1 else 1)),
)


def version() -> str:
    return torch.__version__


def devices() -> list[str]:
    found = ["cpu"]
    found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return found


def device_label(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(int(device.split(':')[1]))})"
    return device


def _tensor(array: np.ndarray, device: str) -> torch.Tensor:
    """Exact transfer: bfloat16 travels as its bit pattern (numpy has no bfloat16)."""
    for name, np_dtype in VIEW_DTYPES.items():
        if array.dtype == np.dtype(np_dtype):
            bits = torch.from_numpy(np.asarray(array, order="C").view(INT_VIEW[name]))
            return bits.to(device).view(TORCH_DTYPES[name])
    return torch.from_numpy(np.asarray(array, order="C")).to(device)


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    for name, torch_dtype in TORCH_DTYPES.items():
        if t.dtype == torch_dtype:
            bits = t.contiguous().view(INT_TORCH[t.element_size()]).numpy()
            return bits.view(STORAGE[name]).view(VIEW_DTYPES[name])
    return t.numpy()


def execute(api: Api, c: Inputs, device: str) -> dict:
    """{"loss": array or exception, "grad": array or exception}."""
    x = _tensor(c.x, device).requires_grad_(True)
    call = Inputs(x, None if c.target is None else _tensor(c.target, device),
                  None if c.weight is None else _tensor(c.weight, device),
                  c.mask, c.ignore_index, c.label_smoothing, c.reduction, c.dtype)
    try:
        loss = api.call(call)
    except Exception as e:  # the framework's own error is the observation
        return {"loss": e, "grad": e}
    out = {"loss": _numpy(loss)}
    try:
        (grad,) = torch.autograd.grad(loss.sum(), x)
        out["grad"] = _numpy(grad)
    except Exception as e:
        out["grad"] = e
    return out


def is_fatal(error: BaseException) -> bool:
    """A CUDA device-side assert poisons the process's CUDA context (pytorch#18014)."""
    return "CUDA error" in str(error) or "device-side assert" in str(error)
