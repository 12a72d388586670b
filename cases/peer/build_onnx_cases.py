#!/usr/bin/env python3
"""Build onnx_softmax_cross_entropy.toml from ONNX's backend node tests.

Reproduces the inputs of every SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss backend
test the way ONNX makes them (same np.random.seed(0), same np.random.rand / randint calls in the
same order, same in-place label edits for ignore_index, same weights) and writes each as a
[[case]] of this project's case format (docs/cases.md). Every float32 value is written exactly,
as a C99 hex float, so the cases are bit-exact in float32 and float64.

Sources (read at onnx/onnx v1.22.0, commit 2bb50465112feca9003e1ed654d77f01ff1415ca; the test
definitions are unchanged on main at f7546912001bc31e92a238b17068a21b373d882e, where the first
file is renamed softmax_cross_entropy_loss.py):
  onnx/backend/test/case/node/softmaxcrossentropy.py
  onnx/backend/test/case/node/negativeloglikelihoodloss.py

Not reproduced: ONNX's *_expanded tests (the same inputs run through the op's function body,
made by the test harness, not by these files). The *_log_prob tests are kept: their inputs and
loss output are those of their twin without the suffix; the second output (log_prob) has no
counterpart here and is dropped.

Usage: python cases/peer/build_onnx_cases.py [--out PATH]   (from a checkout: the package's case
loader checks every case and its writer prints them, reference/casefile.py)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout's packages
from reference.casefile import parse_cases, write_case_file  # noqa: E402

ONNX_TAG = "v1.22.0"
ONNX_COMMIT = "2bb50465112feca9003e1ed654d77f01ff1415ca"
ONNX_MAIN_COMMIT = "f7546912001bc31e92a238b17068a21b373d882e"
SCE_FILE = "onnx/backend/test/case/node/softmaxcrossentropy.py"
NLL_FILE = "onnx/backend/test/case/node/negativeloglikelihoodloss.py"

W_SCE_A = [0.9, 0.7, 0.8, 0.9, 0.9]  # np.array([...], dtype=np.float32) in the sce tests
W_SCE_B = [0.2, 0.3, 0.6, 0.1, 0.5]
RAND = "rand"  # weight = np.random.rand(C).astype(np.float32), drawn after the labels
BIG = (3, 5, 6, 6, 5, 3, 4)  # N, C, dim1..dim5 of the NCd1d2d3d4d5 tests

# (ONNX test name, shape (N, C, d...), reduction, weight, ignore_index, label edit (index, value))
# weight: None, RAND, or a literal list (made float32 as ONNX does).
SCE = [
    ("test_sce_none", (3, 5), "none", None, None, None),
    ("test_sce_none_weights", (3, 5), "none", W_SCE_A, None, None),
    ("test_sce_sum", (3, 5), "sum", None, None, None),
    ("test_sce_mean", (3, 5), "mean", None, None, None),
    ("test_sce_mean_3d", (3, 5, 2), "mean", None, None, None),
    ("test_sce_mean_weight", (3, 5), "mean", W_SCE_A, None, None),
    ("test_sce_mean_weight_ii", (3, 5), "mean", W_SCE_A, 0, ((0,), 0)),
    ("test_sce_mean_no_weight_ii", (3, 5), "mean", None, 2, ((0,), 2)),
    ("test_sce_mean_weight_ii_3d", (3, 5, 2), "mean", W_SCE_B, 1, ((0, 0), 1)),
    ("test_sce_mean_no_weight_ii_3d", (3, 5, 2), "mean", None, 2, ((0, 0), 2)),
    ("test_sce_mean_weight_ii_4d", (3, 5, 2, 7), "mean", W_SCE_B, 2, ((0, 0, 0), 2)),
    ("test_sce_mean_no_weight_ii_4d", (3, 5, 2, 7), "mean", None, 2, ((0, 0, 0), 2)),
    ("test_sce_NCd1d2d3d4d5_mean_weight", BIG, "mean", RAND, None, None),
    ("test_sce_NCd1d2d3d4d5_none_no_weight", BIG, "none", None, None, None),
    ("test_sce_NCd1_mean_weight_negative_ii", (3, 5, 6), "mean", RAND, -1, ((0, 0), -1)),
    ("test_sce_NCd1d2d3_none_no_weight_negative_ii", (3, 5, 6, 6, 5), "none", None, -5, ((0, 0, 0, 0), -5)),
    # despite its name this one is (N, C) = (3, 5), as in ONNX
    ("test_sce_NCd1d2d3_sum_weight_high_ii", (3, 5), "sum", RAND, 10, ((0,), 10)),
]

NLL = [
    ("test_nllloss_NC", (3, 5), "none", None, None, None),
    ("test_nllloss_NCd1d2", (3, 5, 6, 6), "none", None, None, None),
    ("test_nllloss_NCd1d2_reduction_mean", (3, 5, 6, 6), "mean", None, None, None),
    ("test_nllloss_NCd1d2_reduction_sum", (3, 5, 6, 6), "sum", None, None, None),
    ("test_nllloss_NCd1d2_with_weight", (3, 5, 6, 6), "none", RAND, None, None),
    ("test_nllloss_NCd1d2_with_weight_reduction_mean", (3, 5, 6, 6), "mean", RAND, None, None),
    ("test_nllloss_NCd1d2_with_weight_reduction_sum", (3, 5, 6, 6), "sum", RAND, None, None),
    ("test_nllloss_NCd1d2_with_weight_reduction_sum_ii", (3, 5, 6, 6), "sum", RAND, 0, ((0, 0, 0), 0)),
    ("test_nllloss_NCd1d2_no_weight_reduction_mean_ii", (3, 5, 6, 6), "mean", None, 1, ((0, 0, 0), 1)),
    ("test_nllloss_NCd1", (3, 5, 2), "mean", None, None, None),
    ("test_nllloss_NCd1_weight", (3, 5, 2), "mean", RAND, None, None),
    ("test_nllloss_NCd1_ii", (3, 5, 2), "mean", None, 1, ((0, 0), 1)),
    ("test_nllloss_NCd1_weight_ii", (3, 5, 2), "mean", RAND, 1, ((0, 0), 1)),
    ("test_nllloss_NCd1d2d3d4d5_mean_weight", BIG, "mean", RAND, None, None),
    ("test_nllloss_NCd1d2d3d4d5_none_no_weight", BIG, "none", None, None, None),
    ("test_nllloss_NCd1_mean_weight_negative_ii", (3, 5, 6), "mean", RAND, -1, ((0, 0), -1)),
    ("test_nllloss_NCd1d2d3_none_no_weight_negative_ii", (3, 5, 6, 6, 5), "none", None, -5, ((0, 0, 0, 0), -5)),
    ("test_nllloss_NCd1d2d3_sum_weight_high_ii", (3, 5), "sum", RAND, 10, ((0,), 10)),
]


def onnx_inputs(shape, weight, edit):
    """x, labels, weight exactly as the ONNX test body makes them."""
    n, c, *dims = shape
    np.random.seed(0)
    x = np.random.rand(*shape).astype(np.float32)
    labels = np.random.randint(0, high=c, size=(n, *dims)).astype(np.int64)
    if edit is not None:
        index, value = edit
        labels[index] = np.int64(value)
    if weight is None:
        w = None
    elif weight == RAND:
        w = np.random.rand(c).astype(np.float32)
    else:
        w = np.array(weight, dtype=np.float32)
    return x, labels, w


def case_table(name, op, shape, reduction, weight, ignore_index, edit, twin_of=None) -> dict:
    """The case as a table of the case format; float32 values exactly (the package's writer
    prints them as C99 hex floats)."""
    x, labels, w = onnx_inputs(shape, weight, edit)
    table = {"id": f'onnx-{name.replace("_", "-")}', "op": op, "dtypes": ["float32", "float64"],
             "reduction": reduction, "tags": ["onnx", op] + (["onnx-log-prob-twin"] if twin_of else []),
             "target": labels.tolist(), "input": [float(v).hex() for v in x.reshape(-1)]}
    table["input"] = np.array(table["input"], dtype=object).reshape(x.shape).tolist()
    if ignore_index is not None:
        table["ignore_index"] = ignore_index
    if w is not None:
        table["weight"] = [float(v).hex() for v in w]
    return table


def comment(name, shape, reduction, weight, ignore_index, edit, source, twin_of=None) -> str:
    head = f"{name}: {source}, shape {shape}, reduction {reduction}"
    if weight is not None:
        head += ", weight " + ("np.random.rand(C)" if weight == RAND else str(weight))
    if ignore_index is not None:
        head += f", ignore_index {ignore_index} (labels{list(edit[0])} = {edit[1]})"
    if twin_of:
        head += f"\nsame inputs and loss as {twin_of}; ONNX's log_prob output is not checked here"
    return head


HEADER = (
    "Cases rebuilt from ONNX's backend node tests (a peer's suite), by build_onnx_cases.py.\n"
    f"ONNX sources: {SCE_FILE} and {NLL_FILE}\n"
    f"at onnx/onnx {ONNX_TAG} (commit {ONNX_COMMIT}); unchanged on main at\n"
    f"{ONNX_MAIN_COMMIT} (first file renamed softmax_cross_entropy_loss.py there).\n"
    "Inputs reproduced with ONNX's own np.random.seed(0) / rand / randint calls and label edits;\n"
    "every float32 value is written exactly as a C99 hex float. SoftmaxCrossEntropyLoss ->\n"
    "cross_entropy (logits), NegativeLogLikelihoodLoss -> nll_loss (ONNX feeds uniform [0, 1)\n"
    "values as the log-probabilities). Do not edit by hand: rerun the script.\n")


def build() -> tuple[list, dict]:
    """The cases, validated by the package's loader, and a comment per case."""
    tables, comments = [], {}
    for name, shape, reduction, weight, ii, edit in SCE:
        for suffix in ("", "_log_prob"):
            twin = name if suffix else None
            table = case_table(name + suffix, "cross_entropy", shape, reduction, weight, ii, edit, twin)
            tables.append(table)
            comments[table["id"]] = comment(name + suffix, shape, reduction, weight, ii, edit,
                                            "SoftmaxCrossEntropyLoss", twin)
    for name, shape, reduction, weight, ii, edit in NLL:
        table = case_table(name, "nll_loss", shape, reduction, weight, ii, edit)
        tables.append(table)
        comments[table["id"]] = comment(name, shape, reduction, weight, ii, edit, "NegativeLogLikelihoodLoss")
    return parse_cases(tables, "build_onnx_cases.py"), comments


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(Path(__file__).with_name("onnx_softmax_cross_entropy.toml")))
    args = p.parse_args()
    specs, comments = build()
    write_case_file(specs, args.out, HEADER, comments, npy_from=None)  # text, as ONNX wrote them
    print(f"{len(specs)} cases -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
