"""Keras 3 on the torch backend: the Keras loss table (keras_losses), run eagerly (Keras' torch
trainer compiles only when asked: jit_compile defaults to False there) with torch's autograd."""
from __future__ import annotations

from .keras_losses import KERAS_APIS, KERAS_REDUCTION, check_backend, choose_backend, repro_prelude  # noqa: F401

choose_backend("torch")
import keras  # noqa: E402

from . import torch as on_torch  # noqa: E402

check_backend(keras, "torch")


class KerasTorchAdapter(on_torch.TorchAdapter):
    apis = KERAS_APIS
    modes = on_torch.MODES[:1]  # eager
    # Keras' argument checks, and the torch kernels' under them
    domain_errors = ("ValueError", *on_torch.TorchAdapter.domain_errors)
    distributions = ("keras", "torch")
    repro_setup = repro_prelude("torch") + on_torch.REPRO_SETUP

    def version(self) -> str:
        return f"{keras.__version__} (torch {on_torch.torch.__version__})"


ADAPTER = KerasTorchAdapter()
