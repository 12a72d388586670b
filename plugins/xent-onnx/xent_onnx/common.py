"""What both ONNX frameworks share: one ONNX node as a model (onnx.helper), the API table (each
API one operator of the default domain at opset 13, the version that added bfloat16 to the
losses), and the adapter around them. The operators give no gradient: every API is loss-only."""
from __future__ import annotations

from onnx import TensorProto, helper

import numpy as np

from conformance.adapters.base import Adapter, Api, Device, cpu_model

OPSET = 13
# numpy's dtype names (ml_dtypes' bfloat16 included) -> ONNX element types
ELEMENT_TYPES = {"float64": TensorProto.DOUBLE, "float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16,
                 "bfloat16": TensorProto.BFLOAT16, "int64": TensorProto.INT64, "int32": TensorProto.INT32}
INPUT_NAMES = ("x", "target", "weight")


def model(op: str, arrays: dict, **attributes):
    """A model of one node `op` over the arrays given (None: an optional input left out), with
    these attributes (None: left out), whose output `y` has the first input's element type."""
    inputs, names = [], []
    for name, value in arrays.items():
        if value is None:
            names.append("")  # an omitted optional input
            continue
        inputs.append(helper.make_tensor_value_info(name, ELEMENT_TYPES[value.dtype.name], list(value.shape)))
        names.append(name)
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(op, names, ["y"], **{k: v for k, v in attributes.items() if v is not None})
    output = helper.make_tensor_value_info("y", ELEMENT_TYPES[arrays["x"].dtype.name], None)
    graph = helper.make_graph([node], op, inputs, [output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


LOSS = dict(targets=("index",), params=frozenset({"weight", "ignore_index"}), unbatched=False, outputs=("loss",))
APIS = (
    # class axis 1, K-dim (N, C, d1, ...), weights per class, the mean divides by the weights'
    # sum over counted positions; the loss operators take no probability targets and no smoothing
    Api("SoftmaxCrossEntropyLoss", "cross_entropy",
        "node('SoftmaxCrossEntropyLoss', x=x, target=target, weight=weight, reduction=reduction, "
        "ignore_index=ignore_index)", **LOSS),
    Api("NegativeLogLikelihoodLoss", "nll_loss",
        "node('NegativeLogLikelihoodLoss', x=x, target=target, weight=weight, reduction=reduction, "
        "ignore_index=ignore_index)", **LOSS),
    Api("LogSoftmax", "log_softmax", "node('LogSoftmax', x=x, axis=-1)", class_axis="last", outputs=("loss",)),
)


def split(given: dict) -> tuple[dict, dict]:
    """node()'s keywords: the arrays (INPUT_NAMES, in the operator's input order) and the attributes."""
    return {n: given[n] for n in INPUT_NAMES if n in given}, {k: v for k, v in given.items() if k not in INPUT_NAMES}


REPRO_SETUP = """\
from onnx import helper
import ml_dtypes


def tensor(bits, dtype, shape):
    numpy_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    return np.array(bits, dtype=UNSIGNED[dtype]).reshape(shape).view(numpy_dtype)


def integers(values, dtype, shape):
    return np.array(values, dtype=dtype).reshape(shape)


def bits_of(t):
    t = np.asarray(t)
    return t.view({8: np.uint64, 4: np.uint32, 2: np.uint16}[t.dtype.itemsize])
"""

# the operator's output; an ONNX operator has no gradient
REPRO_RUN = """\
def program(x, target, weight, pos_weight, mask):
    return {call}


program = {mode}
loss = program(x, target, weight, pos_weight, mask)
grad = None  # a loss-only operator
"""


class OnnxAdapter(Adapter):
    """numpy arrays in, numpy arrays out, on the CPU; `node` (the subclass module's) runs one node."""

    apis = APIS
    helper_modules = (__name__,)

    def devices(self) -> list[Device]:
        return [Device("cpu", "cpu", f"{cpu_model()} ({self.engine})")]

    engine = ""

    def array(self, values, device):
        return np.asarray(values)

    def program(self, loss):
        return loss

    def run(self, program, arrays):
        return program(**arrays), None

    def numpy(self, value):
        return np.asarray(value)
