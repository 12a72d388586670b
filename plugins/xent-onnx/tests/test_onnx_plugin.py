"""The plugin's own tests: the contract check xent-conformance gives every plugin, and the ONNX
parts that are this plugin's alone."""
import numpy as np
import pytest

from conformance.adapters import registry
from conformance.contract import check_adapter


@pytest.mark.parametrize("framework", ["onnxruntime", "onnx-reference"])
def test_the_plugin_keeps_the_adapter_contract(framework, tmp_path):
    assert check_adapter(framework, tmp_path) == []


def test_both_frameworks_are_found_through_the_entry_point_group():
    assert {"onnxruntime", "onnx-reference"} <= set(registry())
    assert registry()["onnxruntime"].module == "xent_onnx.onnxruntime_adapter"


def test_a_graph_leaves_out_the_optional_inputs_not_given():
    from xent_onnx.common import model
    x, target = np.zeros((2, 3), np.float32), np.array([0, 2])
    graph = model("SoftmaxCrossEntropyLoss", {"x": x, "target": target, "weight": None}, reduction="mean",
                  ignore_index=None).graph
    assert list(graph.node[0].input) == ["x", "target"] and [a.name for a in graph.node[0].attribute] == ["reduction"]
    weighted = model("SoftmaxCrossEntropyLoss", {"x": x, "target": target, "weight": np.ones(3, np.float32)}).graph
    assert list(weighted.node[0].input) == ["x", "target", "weight"]
