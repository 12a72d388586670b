"""ONNX Runtime: each API's node run by an InferenceSession on the CPU execution provider. Its CPU
provider has no kernel for SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss: it runs their
function bodies (the spec's decomposition into LogSoftmax, Gather, ReduceSum, ...)."""
from __future__ import annotations

import onnxruntime

from conformance.adapters.base import Mode

from .common import REPRO_RUN, REPRO_SETUP, OnnxAdapter, model, split  # noqa: F401 (the calls' source names them)


def node(op, **given):
    """The operator's output on these inputs (None: an optional input left out), as ONNX Runtime computes it."""
    arrays, attributes = split(given)
    feeds = {name: value for name, value in arrays.items() if value is not None}
    session = onnxruntime.InferenceSession(model(op, arrays, **attributes).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


class OnnxRuntimeAdapter(OnnxAdapter):
    modes = (Mode("session", "an InferenceSession on the CPU execution provider, with its default graph "
                             "optimisations (ORT_ENABLE_ALL)", repro="program"),)
    # an InferenceSession rejects inputs by these (onnxruntime's pybind exceptions)
    domain_errors = ("Fail", "InvalidArgument", "RuntimeException")
    distributions = ("onnxruntime", "onnx")
    dtypes = ("float64", "float32", "float16")
    dtypes_missing = "onnxruntime's CPU provider implements these operators in float, double and float16 only"
    engine = "onnxruntime CPUExecutionProvider"
    repro_setup = "import onnxruntime\n" + REPRO_SETUP
    repro_run = REPRO_RUN

    def version(self) -> str:
        import onnx
        return f"{onnxruntime.__version__} (onnx {onnx.__version__})"


ADAPTER = OnnxRuntimeAdapter()
