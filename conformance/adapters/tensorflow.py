"""TensorFlow: tf.nn cross-entropy ops and log_softmax, and Keras' losses on the
TensorFlow backend. Class axis last (TF's layout). tf.nn ops return per-position losses:
a reduction is the documented tf.reduce_mean / tf.reduce_sum over them."""
from __future__ import annotations

import os
from dataclasses import replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from .base import Adapter, Api, Device, Inputs, cpu_model  # noqa: E402

KERAS_REDUCTION = {"none": None, "mean": "sum_over_batch_size", "sum": "sum"}


def _reduce(loss, reduction: str):
    if reduction == "mean":
        return tf.reduce_mean(loss)
    if reduction == "sum":
        return tf.reduce_sum(loss)
    return loss


def _keras(loss_class, c: Inputs, **kwargs):
    """A Keras loss in the case's dtype (Keras' default would be float32) and reduction."""
    return loss_class(reduction=KERAS_REDUCTION[c.reduction], dtype=c.dtype, **kwargs)


def _keras_sparse(c: Inputs, from_logits: bool):
    loss = _keras(keras.losses.SparseCategoricalCrossentropy, c, from_logits=from_logits, ignore_class=c.ignore_index)
    return loss(c.target, c.x, sample_weight=c.weight)


def _keras_categorical(c: Inputs, from_logits: bool):
    loss = _keras(keras.losses.CategoricalCrossentropy, c, from_logits=from_logits, label_smoothing=c.label_smoothing)
    return loss(c.target, c.x)


def _keras_binary(c: Inputs, from_logits: bool):
    loss = _keras(keras.losses.BinaryCrossentropy, c, from_logits=from_logits, label_smoothing=c.label_smoothing)
    return loss(c.target, c.x)


def _weighted_logits(c: Inputs):
    pos_weight = c.pos_weight if c.pos_weight is not None else tf.constant(1.0, dtype=c.x.dtype)
    return _reduce(tf.nn.weighted_cross_entropy_with_logits(labels=c.target, logits=c.x, pos_weight=pos_weight),
                   c.reduction)


SPARSE = dict(targets=("index",), params=frozenset({"weight", "ignore_index"}), class_axis="last",
              unbatched=False, weight_as="sample_weight")  # class weights as sample_weight=w[y] (Keras' class_weight idiom)
CATEGORICAL = dict(targets=("probs",), class_axis="last", unbatched=False)

APIS = (
    Api("tf.nn.sparse_softmax_cross_entropy_with_logits", "cross_entropy",
        lambda c: _reduce(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=c.target, logits=c.x), c.reduction),
        targets=("index",), class_axis="last"),
    Api("tf.nn.softmax_cross_entropy_with_logits", "cross_entropy",
        lambda c: _reduce(tf.nn.softmax_cross_entropy_with_logits(labels=c.target, logits=c.x), c.reduction),
        targets=("probs",), class_axis="last"),
    Api("tf.nn.log_softmax", "log_softmax", lambda c: tf.nn.log_softmax(c.x, axis=-1), class_axis="last"),
    Api("tf.nn.sigmoid_cross_entropy_with_logits", "binary_cross_entropy_with_logits",
        lambda c: _reduce(tf.nn.sigmoid_cross_entropy_with_logits(labels=c.target, logits=c.x), c.reduction),
        targets=("binary",)),
    Api("tf.nn.weighted_cross_entropy_with_logits", "binary_cross_entropy_with_logits", _weighted_logits,
        targets=("binary",), params=frozenset({"pos_weight"})),
    Api("keras.losses.SparseCategoricalCrossentropy", "cross_entropy",
        lambda c: _keras_sparse(c, from_logits=True), **SPARSE),
    Api("keras.losses.CategoricalCrossentropy", "cross_entropy",
        lambda c: _keras_categorical(c, from_logits=True), params=frozenset({"label_smoothing"}), **CATEGORICAL),
    Api("keras.losses.SparseCategoricalCrossentropy(from_logits=False)", "cross_entropy_from_probs",
        lambda c: _keras_sparse(c, from_logits=False), **SPARSE),
    Api("keras.losses.CategoricalCrossentropy(from_logits=False)", "cross_entropy_from_probs",
        lambda c: _keras_categorical(c, from_logits=False), **CATEGORICAL),
    Api("keras.losses.BinaryCrossentropy(from_logits=False)", "binary_cross_entropy",
        lambda c: _keras_binary(c, from_logits=False), targets=("binary",), params=frozenset({"label_smoothing"})),
    Api("keras.losses.BinaryCrossentropy", "binary_cross_entropy_with_logits",
        lambda c: _keras_binary(c, from_logits=True), targets=("binary",), params=frozenset({"label_smoothing"})),
    # BinaryCrossentropy(from_logits=True) averages over the last axis: Keras' documented equivalent
    Api("keras.losses.BinaryCrossentropy (multi-label)", "multilabel_soft_margin_loss",
        lambda c: _keras_binary(c, from_logits=True), targets=("binary",)),
)


class TensorFlowAdapter(Adapter):
    apis = APIS
    # tf.errors.InvalidArgumentError: the kernels' checks; ValueError: Keras' argument checks
    domain_errors = ("InvalidArgumentError", "ValueError")
    distributions = ("tensorflow", "tensorflow-cpu", "keras")

    def version(self) -> str:
        return f"{tf.__version__} (keras {keras.__version__})"

    def devices(self) -> list[Device]:
        found = [Device("/CPU:0", "cpu", cpu_model())]
        for i, gpu in enumerate(tf.config.list_physical_devices("GPU")):
            details = tf.config.experimental.get_device_details(gpu)
            found.append(Device(f"/GPU:{i}", f"gpu:{i}", details.get("device_name", gpu.name)))
        return found

    def execute(self, api: Api, c: Inputs, device: str) -> dict:
        with tf.device(device):
            x = tf.constant(c.x)
            call = replace(c, x=x, **{name: None if getattr(c, name) is None else tf.constant(getattr(c, name))
                                      for name in ("target", "weight", "pos_weight")})
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


ADAPTER = TensorFlowAdapter()
