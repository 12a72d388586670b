"""JAX: jax.nn.log_softmax and optax's softmax cross-entropies. Class axis last.
optax returns per-position losses: a reduction is jnp.mean / jnp.sum over them, and
ignore_index is optax's documented `where` mask, used by the mean too."""
from __future__ import annotations

from dataclasses import replace

import jax

jax.config.update("jax_enable_x64", True)  # otherwise float64 inputs silently become float32

import inspect  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from packaging.version import Version  # noqa: E402

from .base import Adapter, Api, Device, Inputs, cpu_model  # noqa: E402


def _reduce(loss, c: Inputs):
    if c.reduction == "mean":
        return jnp.mean(loss, where=c.mask) if c.mask is not None else jnp.mean(loss)
    if c.reduction == "sum":
        return jnp.sum(loss)
    return loss


# optax added `where` in 0.2.4 (google-deepmind/optax#912) with the logits' shape; labels-shaped
# masks are accepted from 0.2.6 (google-deepmind/optax#1336)
OPTAX_WHERE = "where" in inspect.signature(optax.softmax_cross_entropy_with_integer_labels).parameters
WHERE_LABELS_SHAPE = Version(optax.__version__).release >= (0, 2, 6)


def _integer_labels(c: Inputs):
    if c.mask is None:
        return _reduce(optax.softmax_cross_entropy_with_integer_labels(c.x, c.target), c)
    where = c.mask if WHERE_LABELS_SHAPE else c.mask[..., None]
    return _reduce(optax.softmax_cross_entropy_with_integer_labels(c.x, c.target, where=where), c)


def _probabilities(c: Inputs):
    labels = optax.smooth_labels(c.target, c.label_smoothing) if c.label_smoothing else c.target
    return _reduce(optax.softmax_cross_entropy(c.x, labels), c)


APIS = (
    Api("jax.nn.log_softmax", "log_softmax", lambda c: jax.nn.log_softmax(c.x, axis=-1), class_axis="last"),
    # ignore_index as where=(labels != ignore_index)
    Api("optax.softmax_cross_entropy_with_integer_labels", "cross_entropy", _integer_labels,
        targets=("index",), params=frozenset({"ignore_index"}), class_axis="last",
        absent=() if OPTAX_WHERE else (("ignore_index", f"optax {optax.__version__} has no `where` parameter "
                                                        "(added in 0.2.4): it cannot ignore a target value"),)),
    # label smoothing through optax.smooth_labels
    Api("optax.softmax_cross_entropy", "cross_entropy", _probabilities,
        targets=("probs",), params=frozenset({"label_smoothing"}), class_axis="last"),
    Api("optax.sigmoid_binary_cross_entropy", "binary_cross_entropy_with_logits",
        lambda c: _reduce(optax.sigmoid_binary_cross_entropy(c.x, c.target), c), targets=("binary",)),
)


def _all_devices() -> dict[str, object]:
    found = {}
    for d in jax.devices("cpu")[:1] + [d for d in jax.devices() if d.platform != "cpu"]:
        found[f"{d.platform}:{d.id}"] = d
    return found


class JaxAdapter(Adapter):
    apis = APIS
    domain_errors = ()  # a jitted program cannot raise on values: JAX has no domain errors
    distributions = ("jax", "jaxlib", "optax")

    def version(self) -> str:
        return f"{jax.__version__} (optax {optax.__version__})"

    def devices(self) -> list[Device]:
        return [Device(key, "cpu" if d.platform == "cpu" else key, cpu_model() if d.platform == "cpu" else d.device_kind)
                for key, d in _all_devices().items()]

    def execute(self, api: Api, c: Inputs, device: str) -> dict:
        """Loss and gradient, each compiled with jax.jit as JAX programs run in practice (one
        compilation per task instead of one per primitive and shape: eager is ~10x slower)."""
        dev = _all_devices()[device]
        x = jax.device_put(c.x, dev)
        target = None if c.target is None else jax.device_put(c.target, dev)
        mask = None if c.mask is None else jax.device_put(c.mask, dev)

        def loss_of(xv):
            return api.call(replace(c, x=xv, target=target, mask=mask))

        try:
            loss = jax.jit(loss_of)(x)
            loss.block_until_ready()
        except Exception as e:  # the framework's own error is the observation
            return {"loss": e, "grad": e}
        out = {"loss": np.asarray(loss)}
        try:
            out["grad"] = np.asarray(jax.jit(jax.grad(lambda xv: jnp.sum(loss_of(xv))))(x))
        except Exception as e:
            out["grad"] = e
        return out


ADAPTER = JaxAdapter()
