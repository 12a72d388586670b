"""TensorFlow: tf.nn softmax cross-entropy ops and log_softmax, and Keras' losses on the
TensorFlow backend. Class axis last (TF's layout). tf.nn ops return per-position losses:
a reduction is the documented tf.reduce_mean / tf.reduce_sum over them."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from .base import Api, Inputs  # noqa: E402

FRAMEWORK = "tensorflow"
TF_DTYPES = {"float64": tf.float64, "float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}
KERAS_REDUCTION = {"none": None, "mean": "sum_over_batch_size", "sum": "sum"}


def _reduce(loss, reduction: str):
    if reduction == "mean":
        return tf.reduce_mean(loss)
    if reduction == "sum":
        return tf.reduce_sum(loss)
    return loss


def _keras_sparse(c: Inputs):
    loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=c.ignore_index, reduction=KERAS_REDUCTION[c.reduction], dtype=c.dtype)
    return loss(c.target, c.x, sample_weight=c.weight)


def _keras_categorical(c: Inputs):
    loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=c.label_smoothing, reduction=KERAS_REDUCTION[c.reduction], dtype=c.dtype)
    return loss(c.target, c.x)


APIS = (
    Api("tf.nn.sparse_softmax_cross_entropy_with_logits", "cross_entropy",
        lambda c: _reduce(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=c.target, logits=c.x), c.reduction),
        targets=("index",), class_axis="last"),
    Api("tf.nn.softmax_cross_entropy_with_logits", "cross_entropy",
        lambda c: _reduce(tf.nn.softmax_cross_entropy_with_logits(labels=c.target, logits=c.x), c.reduction),
        targets=("probs",), class_axis="last"),
    Api("tf.nn.log_softmax", "log_softmax", lambda c: tf.nn.log_softmax(c.x, axis=-1), class_axis="last"),
    Api("keras.losses.SparseCategoricalCrossentropy", "cross_entropy", _keras_sparse,
        targets=("index",), params=frozenset({"weight", "ignore_index"}), class_axis="last",
        unbatched=False, weight_as="sample_weight",
        note="class weights as sample_weight=w[y] (Keras' class_weight idiom)"),
    Api("keras.losses.CategoricalCrossentropy", "cross_entropy", _keras_categorical,
        targets=("probs",), params=frozenset({"label_smoothing"}), class_axis="last", unbatched=False),
)


def version() -> str:
    return f"{tf.__version__} (keras {keras.__version__})"


def devices() -> list[str]:
    return ["/CPU:0"] + [f"/GPU:{i}" for i in range(len(tf.config.list_physical_devices("GPU")))]


def device_label(device: str) -> str:
    return "cpu" if device == "/CPU:0" else device


def execute(api: Api, c: Inputs, device: str) -> dict:
    with tf.device(device):
        x = tf.constant(c.x)
        call = Inputs(x, None if c.target is None else tf.constant(c.target),
                      None if c.weight is None else tf.constant(c.weight),
                      c.mask, c.ignore_index, c.label_smoothing, c.reduction, c.dtype)
        try:
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = api.call(call)
                total = tf.reduce_sum(loss)
        except Exception as e:  # the framework's own error is the observation
            return {"loss": e, "grad": e}
        out = {"loss": np.asarray(loss.numpy())}
        try:
            grad = tape.gradient(total, x)
            out["grad"] = np.asarray(grad.numpy()) if grad is not None else RuntimeError("no gradient")
        except Exception as e:
            out["grad"] = e
    return out


def is_fatal(error: BaseException) -> bool:
    return False
