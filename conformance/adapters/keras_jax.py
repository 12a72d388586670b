"""Keras 3 on the JAX backend: the Keras loss table (keras_losses), run as JAX runs it (jax.jit
by default, or op by op) with JAX's gradient."""
from __future__ import annotations

from .keras_losses import KERAS_APIS, KERAS_REDUCTION, check_backend, choose_backend, repro_prelude  # noqa: F401

choose_backend("jax")
import keras  # noqa: E402

from . import jax as on_jax  # noqa: E402

check_backend(keras, "jax")


class KerasJaxAdapter(on_jax.JaxAdapter):
    apis = KERAS_APIS
    domain_errors = ("ValueError",)  # Keras' argument checks; the JAX ops raise on no value
    distributions = ("keras", "jax", "jaxlib")
    repro_setup = repro_prelude("jax") + on_jax.REPRO_SETUP
    helper_modules = (on_jax.__name__,)  # its modes' helpers (without_jit)

    def version(self) -> str:
        return f"{keras.__version__} (jax {on_jax.jax.__version__})"


ADAPTER = KerasJaxAdapter()
