"""MLX (Apple's array framework; its CPU backend on Linux): mlx.nn.losses and mlx.nn.log_softmax.
Class axis last. Its `weights` are per element of the loss, not per class: class weights go in
as sample weights w[y] (the Keras idiom), and the mean is a plain mean of the weighted losses."""
from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn  # noqa: F401 (the calls' source names it)
import numpy as np

from .base import VIEW_DTYPES, Adapter, Api, Device, Mode, cpu_model, dtype_name

MX_DTYPES = {"float64": mx.float64, "float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
# exact transfer: each float travels as its bit pattern (mx.array makes float64 input float32)
BITS = {"float64": (np.uint64, mx.uint64), "float32": (np.uint32, mx.uint32),
        "float16": (np.uint16, mx.uint16), "bfloat16": (np.uint16, mx.uint16)}


def elementwise(weight, x):
    """A per-class (or per-element) weight as mlx's `weights`, one per element of the loss."""
    return None if weight is None else mx.broadcast_to(weight, x.shape)


APIS = (
    Api("mlx.nn.log_softmax", "log_softmax", "nn.log_softmax(x, axis=-1)", class_axis="last"),
    Api("mlx.nn.losses.cross_entropy", "cross_entropy",
        "nn.losses.cross_entropy(x, target, weights=weight, label_smoothing=label_smoothing, reduction=reduction)",
        targets=("index", "probs"), params=frozenset({"weight", "label_smoothing"}), class_axis="last",
        weight_as="sample_weight"),
    Api("mlx.nn.losses.nll_loss", "nll_loss", "nn.losses.nll_loss(x, target, reduction=reduction)",
        targets=("index",), class_axis="last"),
    Api("mlx.nn.losses.binary_cross_entropy", "binary_cross_entropy_with_logits",
        "nn.losses.binary_cross_entropy(x, target, weights=elementwise(weight, x), reduction=reduction)",
        targets=("binary",), params=frozenset({"weight"})),
    Api("mlx.nn.losses.binary_cross_entropy(with_logits=False)", "binary_cross_entropy",
        "nn.losses.binary_cross_entropy(x, target, weights=elementwise(weight, x), with_logits=False, "
        "reduction=reduction)", targets=("binary",), params=frozenset({"weight"})),
)

REPRO_SETUP = """\
import mlx.core as mx
import mlx.nn as nn

MLX_UNSIGNED = {"float64": mx.uint64, "float32": mx.uint32, "float16": mx.uint16, "bfloat16": mx.uint16}


def tensor(bits, dtype, shape):
    return mx.view(mx.array(np.array(bits, dtype=UNSIGNED[dtype]).reshape(shape)), getattr(mx, dtype))


def integers(values, dtype, shape):
    return mx.array(np.array(values, dtype=dtype).reshape(shape))


def bits_of(t):
    return np.array(mx.view(t, {8: mx.uint64, 4: mx.uint32, 2: mx.uint16}[t.dtype.size]))
"""

# as execute() does: the loss and the gradient of its sum (mx.value_and_grad), in one function
REPRO_RUN = """\
def total(x, target, weight, pos_weight, mask):
    loss = {call}
    return mx.sum(loss), loss


def program(x, target, weight, pos_weight, mask):
    (_, loss), grad = mx.value_and_grad(total)(x, target, weight, pos_weight, mask)
    return loss, grad


program = {mode}
loss, grad = program(x, target, weight, pos_weight, mask)
mx.eval(loss, grad)
"""

MODES = (
    Mode("eager", "each call builds MLX's lazy graph, evaluated by mx.eval"),
    Mode("compile", "mx.compile: the loss and gradient traced and compiled (fused) as one function",
         mx.compile, "mx.compile(program)"),
)


class MlxAdapter(Adapter):
    apis = APIS
    modes = MODES
    domain_errors = ("ValueError",)  # its shape and argument checks; indices are not checked
    distributions = ("mlx", "mlx-cpu")
    repro_setup = REPRO_SETUP
    repro_run = REPRO_RUN

    def version(self) -> str:
        return mx.__version__

    def devices(self) -> list[Device]:
        return [Device("cpu", "cpu", f"{cpu_model()} (mlx cpu)")]

    def array(self, values, device):
        name = dtype_name(values)
        if name is None:
            return mx.array(values)
        numpy_bits, mx_bits = BITS[name]
        return mx.view(mx.array(np.ascontiguousarray(values).view(numpy_bits), dtype=mx_bits), MX_DTYPES[name])

    def program(self, loss):
        def total(x, target, weight, pos_weight, mask):
            value = loss(x, target, weight, pos_weight, mask)
            return mx.sum(value), value

        def loss_and_grad(x, target, weight, pos_weight, mask):
            (_, value), grad = mx.value_and_grad(total)(x, target, weight, pos_weight, mask)
            return value, grad

        return loss_and_grad

    def run(self, program, arrays):
        loss, grad = program(**arrays)
        mx.eval(loss, grad)
        return loss, grad

    def numpy(self, value):
        name = next((n for n, d in MX_DTYPES.items() if value.dtype == d), None)
        if name is None:
            return np.array(value)
        return np.array(mx.view(value, BITS[name][1])).view(VIEW_DTYPES[name])


ADAPTER = MlxAdapter()
