"""PaddlePaddle: paddle.nn.functional's cross-entropy family and log_softmax, in dynamic-graph
(eager) mode on the CPU, where its kernels compute in float32 and float64."""
from __future__ import annotations

import os

os.environ.setdefault("GLOG_minloglevel", "2")  # its C++ logging, not the results

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402, F401 (the calls' source names it)

from .base import Adapter, Api, Device, cpu_model  # noqa: E402

paddle.set_device("cpu")
# Paddle's own handler of fatal signals prints a C++ traceback, and after a corrupted heap it can
# hang there (malloc inside a signal handler): without it the worker dies at once, `crashed`
paddle.disable_signal_handler()

CE = "weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing"
APIS = (
    Api("paddle.nn.functional.log_softmax", "log_softmax", "F.log_softmax(x, axis=-1)", class_axis="last"),
    # class indices, or probabilities with soft_label=True; the class axis is `axis` (-1)
    Api("paddle.nn.functional.cross_entropy", "cross_entropy",
        f"F.cross_entropy(x, target, soft_label=target.dtype != paddle.int64, {CE})",
        targets=("index", "probs"), params=frozenset({"weight", "ignore_index", "label_smoothing"}),
        class_axis="last", unbatched=False),
    # use_softmax=False: the input holds probabilities, their log is taken
    Api("paddle.nn.functional.cross_entropy(use_softmax=False)", "cross_entropy_from_probs",
        f"F.cross_entropy(x, target, soft_label=target.dtype != paddle.int64, use_softmax=False, {CE})",
        targets=("index", "probs"), params=frozenset({"weight", "ignore_index", "label_smoothing"}),
        class_axis="last", unbatched=False),
    Api("paddle.nn.functional.nll_loss", "nll_loss",
        "F.nll_loss(x, target, weight=weight, ignore_index=ignore_index, reduction=reduction)",
        targets=("index",), params=frozenset({"weight", "ignore_index"}), unbatched=False),
    Api("paddle.nn.functional.binary_cross_entropy", "binary_cross_entropy",
        "F.binary_cross_entropy(x, target, weight=weight, reduction=reduction)",
        targets=("binary",), params=frozenset({"weight"})),
    Api("paddle.nn.functional.binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits",
        "F.binary_cross_entropy_with_logits(x, target, weight=weight, pos_weight=pos_weight, reduction=reduction)",
        targets=("binary",), params=frozenset({"weight", "pos_weight"})),
    Api("paddle.nn.functional.multi_label_soft_margin_loss", "multilabel_soft_margin_loss",
        "F.multi_label_soft_margin_loss(x, target, weight=weight, reduction=reduction)",
        targets=("binary",), params=frozenset({"weight"})),
)

REPRO_SETUP = """\
import paddle
import paddle.nn.functional as F

paddle.set_device("cpu")


def tensor(bits, dtype, shape):
    return paddle.to_tensor(np.array(bits, dtype=UNSIGNED[dtype]).reshape(shape).view(dtype))


def integers(values, dtype, shape):
    return paddle.to_tensor(np.array(values, dtype=dtype).reshape(shape))


def bits_of(t):
    values = t.numpy()
    return values.view({8: np.uint64, 4: np.uint32, 2: np.uint16}[values.dtype.itemsize])
"""

# as execute() does: the loss, then the gradient of its sum (paddle.grad)
REPRO_RUN = """\
def program(x, target, weight, pos_weight, mask):
    return {call}


program = {mode}
x.stop_gradient = False
loss = program(x, target, weight, pos_weight, mask)
(grad,) = paddle.grad(loss.sum(), x)
"""


class PaddleAdapter(Adapter):
    apis = APIS
    # InvalidArgument and OutOfRange enforcements reach Python as ValueError and IndexError
    domain_errors = ("ValueError", "IndexError")
    distributions = ("paddlepaddle",)
    dtypes = ("float64", "float32")
    dtypes_missing = "Paddle's CPU kernels of these losses are registered for float32 and float64"
    repro_setup = REPRO_SETUP
    repro_run = REPRO_RUN

    def version(self) -> str:
        return paddle.__version__

    def devices(self) -> list[Device]:
        return [Device("cpu", "cpu", cpu_model())]

    def array(self, values, device):
        return paddle.to_tensor(np.ascontiguousarray(values))

    def program(self, loss):
        return loss

    def run(self, program, arrays):
        x = arrays["x"]
        x.stop_gradient = False
        loss = program(**arrays)
        (grad,) = paddle.grad(loss.sum(), x)
        return loss, grad

    def numpy(self, value):
        return value.numpy()


ADAPTER = PaddleAdapter()
