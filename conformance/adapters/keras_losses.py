"""Keras 3's losses, one table for every backend Keras runs on (TensorFlow: the `tensorflow`
framework's Keras rows; JAX and torch: the `keras-jax` and `keras-torch` frameworks). Source only:
each backend's adapter module imports keras (on its backend) and evaluates these calls."""
from __future__ import annotations

import os

from .base import Api


def choose_backend(name: str) -> None:
    """Keras reads KERAS_BACKEND once, at its first import: set it before (one backend a process)."""
    os.environ["KERAS_BACKEND"] = name


def check_backend(keras, name: str) -> None:
    """Fails when keras was imported earlier in this process on another backend."""
    if keras.backend.backend() != name:
        raise ImportError(f"keras runs on {keras.backend.backend()!r} in this process, not {name!r}: "
                          f"Keras on {name} needs a process of its own (KERAS_BACKEND={name} before keras is imported)")


def repro_prelude(name: str) -> str:
    """A reproducer's first lines: Keras on this backend."""
    return f'import os\n\nos.environ["KERAS_BACKEND"] = "{name}"\nimport keras\n'

KERAS_REDUCTION = {"none": None, "mean": "sum_over_batch_size", "sum": "sum"}


# a Keras loss in the case's dtype (Keras' default would be float32) and reduction
KERAS = "reduction=KERAS_REDUCTION[reduction], dtype=dtype"
SPARSE = dict(targets=("index",), params=frozenset({"weight", "ignore_index"}), class_axis="last",
              unbatched=False, weight_as="sample_weight")  # class weights as sample_weight=w[y] (Keras' class_weight idiom)
CATEGORICAL = dict(targets=("probs",), class_axis="last", unbatched=False)


def _keras_sparse(from_logits: bool) -> str:
    return (f"keras.losses.SparseCategoricalCrossentropy(from_logits={from_logits}, ignore_class=ignore_index, "
            f"{KERAS})(target, x, sample_weight=weight)")


def _keras_categorical(from_logits: bool) -> str:
    return (f"keras.losses.CategoricalCrossentropy(from_logits={from_logits}, label_smoothing=label_smoothing, "
            f"{KERAS})(target, x)")


def _keras_binary(from_logits: bool) -> str:
    return (f"keras.losses.BinaryCrossentropy(from_logits={from_logits}, label_smoothing=label_smoothing, "
            f"{KERAS})(target, x)")


KERAS_APIS = (
    Api("keras.losses.SparseCategoricalCrossentropy", "cross_entropy", _keras_sparse(True), **SPARSE),
    Api("keras.losses.CategoricalCrossentropy", "cross_entropy", _keras_categorical(True),
        params=frozenset({"label_smoothing"}), **CATEGORICAL),
    Api("keras.losses.SparseCategoricalCrossentropy(from_logits=False)", "cross_entropy_from_probs",
        _keras_sparse(False), **SPARSE),
    Api("keras.losses.CategoricalCrossentropy(from_logits=False)", "cross_entropy_from_probs",
        _keras_categorical(False), **CATEGORICAL),
    Api("keras.losses.BinaryCrossentropy(from_logits=False)", "binary_cross_entropy", _keras_binary(False),
        targets=("binary",), params=frozenset({"label_smoothing"})),
    Api("keras.losses.BinaryCrossentropy", "binary_cross_entropy_with_logits", _keras_binary(True),
        targets=("binary",), params=frozenset({"label_smoothing"})),
    # BinaryCrossentropy(from_logits=True) averages over the last axis: Keras' documented equivalent
    Api("keras.losses.BinaryCrossentropy (multi-label)", "multilabel_soft_margin_loss", _keras_binary(True),
        targets=("binary",)),
)
