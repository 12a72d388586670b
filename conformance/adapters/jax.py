"""JAX: jax.nn.log_softmax and optax's softmax cross-entropies. Class axis last.
optax returns per-position losses: a reduction is jnp.mean / jnp.sum over them, and
ignore_index is optax's documented `where` mask, used by the mean too."""
from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # otherwise float64 inputs silently become float32

import inspect  # noqa: E402
import os  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from packaging.version import Version  # noqa: E402

from .base import Adapter, Api, Device, Mode, cpu_model  # noqa: E402


def reduce(loss, reduction: str, mask):
    """optax's losses are per position: a reduction is jnp.mean (over the unmasked positions) or jnp.sum."""
    if reduction == "mean":
        return jnp.mean(loss, where=mask) if mask is not None else jnp.mean(loss)
    if reduction == "sum":
        return jnp.sum(loss)
    return loss


# optax added `where` in 0.2.4 (google-deepmind/optax#912) with the logits' shape; labels-shaped
# masks are accepted from 0.2.6 (google-deepmind/optax#1336)
OPTAX_WHERE = "where" in inspect.signature(optax.softmax_cross_entropy_with_integer_labels).parameters
WHERE_LABELS_SHAPE = Version(optax.__version__).release >= (0, 2, 6)


def where(mask) -> dict:
    """ignore_index as optax's `where=(labels != ignore_index)`, in the shape the version takes."""
    if mask is None:
        return {}
    return {"where": mask if WHERE_LABELS_SHAPE else mask[..., None]}


APIS = (
    Api("jax.nn.log_softmax", "log_softmax", "jax.nn.log_softmax(x, axis=-1)", class_axis="last"),
    Api("optax.softmax_cross_entropy_with_integer_labels", "cross_entropy",
        "reduce(optax.softmax_cross_entropy_with_integer_labels(x, target, **where(mask)), reduction, mask)",
        targets=("index",), params=frozenset({"ignore_index"}), class_axis="last",
        absent=() if OPTAX_WHERE else (("ignore_index", f"optax {optax.__version__} has no `where` parameter "
                                                        "(added in 0.2.4): it cannot ignore a target value"),)),
    # label smoothing through optax.smooth_labels
    Api("optax.softmax_cross_entropy", "cross_entropy",
        "reduce(optax.softmax_cross_entropy(x, optax.smooth_labels(target, label_smoothing) if label_smoothing "
        "else target), reduction, mask)",
        targets=("probs",), params=frozenset({"label_smoothing"}), class_axis="last"),
    Api("optax.sigmoid_binary_cross_entropy", "binary_cross_entropy_with_logits",
        "reduce(optax.sigmoid_binary_cross_entropy(x, target), reduction, mask)", targets=("binary",)),
)

REPRO_SETUP = """\
import jax

jax.config.update("jax_enable_x64", True)  # otherwise float64 inputs silently become float32
import jax.numpy as jnp
import optax

PLACE = {d.platform + ":" + str(d.id): d for d in jax.devices("cpu")[:1] + jax.devices()}[DEVICE]


def tensor(bits, dtype, shape):
    unsigned = jnp.asarray(np.array(bits, dtype=UNSIGNED[dtype]).reshape(shape))
    return jax.device_put(jax.lax.bitcast_convert_type(unsigned, getattr(jnp, dtype)), PLACE)


def integers(values, dtype, shape):
    return jax.device_put(np.array(values, dtype=dtype).reshape(shape), PLACE)


def bits_of(t):
    return np.asarray(jax.lax.bitcast_convert_type(t, {8: jnp.uint64, 4: jnp.uint32, 2: jnp.uint16}[t.dtype.itemsize]))
"""

# as execute() does: one program gives the loss and the gradient of its sum (what a mode jits)
REPRO_RUN = """\
def total(x, target, weight, pos_weight, mask):
    loss = {call}
    return jnp.sum(loss), loss


def program(x, target, weight, pos_weight, mask):
    (_, loss), grad = jax.value_and_grad(total, has_aux=True)(x, target, weight, pos_weight, mask)
    return loss, grad


program = {mode}
loss, grad = program(x, target, weight, pos_weight, mask)
"""


def without_jit(program):
    """The program op by op: jax.disable_jit, which also runs the jitted functions it calls eagerly."""
    def run(*args, **kwargs):
        with jax.disable_jit():
            return program(*args, **kwargs)
    return run


MODES = (
    Mode("jit", "jax.jit: the loss and gradient compiled by XLA as one program, as JAX programs run in practice",
         jax.jit, "jax.jit(program)"),
    Mode("eager", "jax.disable_jit(): op by op, each primitive dispatched on its own", without_jit,
         "without_jit(program)"),
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
    repro_setup = REPRO_SETUP
    repro_run = REPRO_RUN

    def version(self) -> str:
        return f"{jax.__version__} (optax {optax.__version__})"

    def devices(self) -> list[Device]:
        return [Device(key, "cpu" if d.platform == "cpu" else key, cpu_model() if d.platform == "cpu" else d.device_kind)
                for key, d in _all_devices().items()]

    modes = MODES

    def array(self, values, device):
        return jax.device_put(values, _all_devices()[device])

    def program(self, loss):
        def total(x, target, weight, pos_weight, mask):
            value = loss(x, target, weight, pos_weight, mask)
            return jnp.sum(value), value

        def loss_and_grad(x, target, weight, pos_weight, mask):
            (_, value), grad = jax.value_and_grad(total, has_aux=True)(x, target, weight, pos_weight, mask)
            return value, grad

        return loss_and_grad

    def run(self, program, arrays):
        loss, grad = program(**arrays)
        loss.block_until_ready()
        return loss, grad

    def numpy(self, value):
        return np.asarray(value)


def _persistent_cache() -> None:
    """JAX's persistent compilation cache, so a second run compiles nothing: the folder in
    XENT_JAX_CACHE, which the runner gives every worker (default: jax/ in the user cache,
    conformance.suites.cache_dir); "off", or unset outside a run, turns it off."""
    folder = os.environ.get("XENT_JAX_CACHE", "off")
    if folder == "off":
        return
    try:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    except (AttributeError, KeyError, ValueError):  # an older JAX without these options
        pass


_persistent_cache()
ADAPTER = JaxAdapter()
