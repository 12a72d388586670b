"""TensorFlow: tf.nn cross-entropy ops and log_softmax, and Keras' losses on the
TensorFlow backend. Class axis last (TF's layout). tf.nn ops return per-position losses:
a reduction is the documented tf.reduce_mean / tf.reduce_sum over them."""
from __future__ import annotations

import os

from .keras_losses import KERAS_APIS, KERAS_REDUCTION, check_backend, choose_backend  # noqa: F401 (the calls name it)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
choose_backend("tensorflow")  # this framework's Keras rows are Keras on TensorFlow, whatever the user's default

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from .base import Adapter, Api, Device, Mode, cpu_model  # noqa: E402

check_backend(keras, "tensorflow")


def reduce(loss, reduction: str):
    """tf.nn's losses are per position: a reduction is tf.reduce_mean or tf.reduce_sum."""
    if reduction == "mean":
        return tf.reduce_mean(loss)
    if reduction == "sum":
        return tf.reduce_sum(loss)
    return loss


APIS = (
    Api("tf.nn.sparse_softmax_cross_entropy_with_logits", "cross_entropy",
        "reduce(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=x), reduction)",
        targets=("index",), class_axis="last"),
    Api("tf.nn.softmax_cross_entropy_with_logits", "cross_entropy",
        "reduce(tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=x), reduction)",
        targets=("probs",), class_axis="last"),
    Api("tf.nn.log_softmax", "log_softmax", "tf.nn.log_softmax(x, axis=-1)", class_axis="last"),
    Api("tf.nn.sigmoid_cross_entropy_with_logits", "binary_cross_entropy_with_logits",
        "reduce(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=x), reduction)", targets=("binary",)),
    Api("tf.nn.weighted_cross_entropy_with_logits", "binary_cross_entropy_with_logits",
        "reduce(tf.nn.weighted_cross_entropy_with_logits(labels=target, logits=x, pos_weight=tf.constant(1.0, "
        "dtype=x.dtype) if pos_weight is None else pos_weight), reduction)",
        targets=("binary",), params=frozenset({"pos_weight"})),
    *KERAS_APIS,
)

REPRO_SETUP = """\
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import tensorflow as tf


def tensor(bits, dtype, shape):
    with tf.device(DEVICE):
        return tf.bitcast(tf.constant(np.array(bits, dtype=UNSIGNED[dtype]).reshape(shape)), getattr(tf, dtype))


def integers(values, dtype, shape):
    with tf.device(DEVICE):
        return tf.constant(np.array(values, dtype=dtype).reshape(shape))


def bits_of(t):
    return tf.bitcast(t, {8: tf.uint64, 4: tf.uint32, 2: tf.uint16}[t.dtype.size]).numpy()
"""

# as execute() does: the loss under a GradientTape and the gradient of its sum, in one
# function (what a mode traces or compiles)
REPRO_RUN = """\
def program(x, target, weight, pos_weight, mask):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = {call}
        total = tf.reduce_sum(loss)
    return loss, tape.gradient(total, x)


program = {mode}
with tf.device(DEVICE):
    loss, grad = program(x, target, weight, pos_weight, mask)
"""


MODES = (
    Mode("eager", "each op runs as it is called (TensorFlow 2's default)"),
    Mode("function", "tf.function: the loss and gradient traced into one graph, which Grappler optimises",
         tf.function, "tf.function(program)"),
    Mode("xla", "tf.function(jit_compile=True): the graph compiled by XLA (Keras' jit_compile='auto' does not on "
         "a CPU-only TensorFlow, so it is asked for)",
         lambda program: tf.function(program, jit_compile=True), "tf.function(program, jit_compile=True)"),
)


class TensorFlowAdapter(Adapter):
    apis = APIS
    # tf.errors.InvalidArgumentError: the kernels' checks; ValueError: Keras' argument checks
    domain_errors = ("InvalidArgumentError", "ValueError")
    distributions = ("tensorflow", "tensorflow-cpu", "keras")
    repro_setup = REPRO_SETUP
    repro_run = REPRO_RUN

    def version(self) -> str:
        return f"{tf.__version__} (keras {keras.__version__})"

    def devices(self) -> list[Device]:
        found = [Device("/CPU:0", "cpu", cpu_model())]
        for i, gpu in enumerate(tf.config.list_physical_devices("GPU")):
            details = tf.config.experimental.get_device_details(gpu)
            found.append(Device(f"/GPU:{i}", f"gpu:{i}", details.get("device_name", gpu.name)))
        return found

    modes = MODES

    def on(self, device):
        return tf.device(device)

    def array(self, values, device):
        return tf.constant(values)

    def program(self, loss):
        def loss_and_grad(x, target, weight, pos_weight, mask):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = loss(x, target, weight, pos_weight, mask)
                total = tf.reduce_sum(value)
            return value, tape.gradient(total, x)

        return loss_and_grad

    def run(self, program, arrays):
        loss, grad = program(**arrays)
        if grad is None:
            raise RuntimeError("no gradient")
        return loss, grad

    def numpy(self, value):
        return np.asarray(value.numpy())


ADAPTER = TensorFlowAdapter()
