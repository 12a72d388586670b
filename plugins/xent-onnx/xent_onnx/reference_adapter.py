"""The ONNX reference evaluator: onnx.reference.ReferenceEvaluator, the spec's own Python
implementation of each operator, in numpy."""
from __future__ import annotations

import onnx
from onnx.reference import ReferenceEvaluator

from conformance.adapters.base import Mode

from .common import REPRO_RUN, REPRO_SETUP, OnnxAdapter, model, split  # noqa: F401 (the calls' source names them)


def node(op, **given):
    """The operator's output on these inputs (None: an optional input left out), as the reference evaluator computes it."""
    arrays, attributes = split(given)
    feeds = {name: value for name, value in arrays.items() if value is not None}
    return ReferenceEvaluator(model(op, arrays, **attributes)).run(None, feeds)[0]


class OnnxReferenceAdapter(OnnxAdapter):
    modes = (Mode("evaluate", "onnx.reference.ReferenceEvaluator: each operator's Python implementation, in numpy",
                  repro="program"),)
    domain_errors = ("IndexError", "ValueError")  # numpy's, as the Python implementations raise them
    distributions = ("onnx",)
    engine = "onnx.reference, numpy"
    repro_setup = "from onnx.reference import ReferenceEvaluator\n" + REPRO_SETUP
    repro_run = REPRO_RUN

    def version(self) -> str:
        return onnx.__version__


ADAPTER = OnnxReferenceAdapter()
