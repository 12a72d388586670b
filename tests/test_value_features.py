"""Features of a case's values in one dtype (reference.golden.value_features): the triggers the
expectations file keys its causes by, checked on hand-made cases against hand-derived answers,
and the task-level naming of variants (conformance.verdicts.classify_task)."""
import numpy as np
import pytest

from conformance.verdicts import VARIANT, Observed, classify, classify_task, prepare
from reference.casefile import parse_cases
from pathlib import Path

from reference.golden import GoldenCase, build_case, value_features


def _written(value):
    """Numbers as a case file holds them: floats as their decimal text (TOML floats are read so)."""
    if isinstance(value, list):
        return [_written(v) for v in value]
    return repr(value) if isinstance(value, float) else value


def _spec(dtype: str, case: dict):
    (spec,) = parse_cases([{"id": "c", "dtypes": [dtype], **{k: _written(v) if k in ("input", "target") else v
                                                             for k, v in case.items()}}], "test.toml")
    return spec


def features(dtype: str, **case) -> set[str]:
    spec = _spec(dtype, case)
    arrays, entry = build_case(spec)
    return set(value_features(entry, arrays, dtype))


def test_labels_the_dtype_cannot_hold():
    # bfloat16 holds every integer up to 256 = 2**8, then every other one: 257 rounds to 256
    wide = [[0.0] * 300]
    assert "labels_inexact" not in features("bfloat16", op="cross_entropy", input=wide, target=[256])
    assert "labels_inexact" in features("bfloat16", op="cross_entropy", input=wide, target=[257])
    assert "labels_inexact" not in features("float32", op="cross_entropy", input=wide, target=[257])
    assert "labels_inexact" not in features("bfloat16", op="cross_entropy", input=wide, target=[-100],
                                            ignore_index=-100)  # -100 is exact in every dtype


def test_labels_outside_the_classes_that_are_not_ignored():
    rows = [[0.0, 1.0, 2.0], [0.5, 0.25, 0.0]]
    assert "labels_out_of_range" not in features("float32", op="cross_entropy", input=rows, target=[0, 2])
    assert "labels_out_of_range" in features("float32", op="cross_entropy", input=rows, target=[0, 3])
    assert "labels_out_of_range" in features("float32", op="cross_entropy", input=rows, target=[-1, 0])
    assert "labels_out_of_range" not in features("float32", op="cross_entropy", input=rows, target=[-100, 0],
                                                 ignore_index=-100)  # ignored, not out of range
    # probabilities outside [0, 1] are another domain error: not a label's
    assert "labels_out_of_range" not in features("float32", op="cross_entropy_from_probs", input=[[1.5, -0.5]],
                                                 target=[0])


def test_class_counts_beyond_the_dtypes_integers():
    assert "class_count_inexact" not in features("bfloat16", op="log_softmax", input=[[0.0] * 256])
    found = features("bfloat16", op="log_softmax", input=[[0.0] * 257])
    assert "class_count_inexact" in found and "class_count_overflows" not in found and "wide_rows" not in found
    assert "class_count_inexact" not in features("float16", op="log_softmax", input=[[0.0] * 2048])
    assert "class_count_inexact" in features("float16", op="log_softmax", input=[[0.0] * 2049])
    assert "wide_rows" in features("float32", op="log_softmax", input=[[0.0] * 4096])


def test_probability_rows_that_do_not_sum_to_one_in_the_dtype():
    one_hot = dict(op="cross_entropy", input=[[0.0, 1.0, 2.0]], target=[[0.0, 1.0, 0.0]], target_kind="probs")
    soft = dict(op="cross_entropy", input=[[0.0, 1.0, 2.0]], target=[[0.25, 0.25, 0.5]], target_kind="probs")
    tenths = dict(op="cross_entropy", input=[[0.0, 1.0, 2.0]], target=[[0.1, 0.2, 0.7]], target_kind="probs")
    for dtype in ("float64", "float32", "float16", "bfloat16"):
        assert "targets_unnormalised" not in features(dtype, **one_hot)
        assert "targets_unnormalised" not in features(dtype, **soft)  # quarters are exact everywhere
    # 0.1 + 0.2 + 0.7 with each term rounded: float16 0.0999755859375 + 0.199951171875 +
    # 0.7001953125 = 1.0001220703125; float64's nearest values sum to 1 - 2**-54... exactly checked
    assert "targets_unnormalised" in features("float16", **tenths)
    assert "targets_unnormalised" in features("bfloat16", **tenths)


def test_an_infinite_row_maximum_and_the_special_values_the_dtype_holds():
    assert "row_max_infinite" in features("float32", op="log_softmax", input=[[0.0, "inf", 1.0]])
    assert "row_max_infinite" in features("float32", op="log_softmax", input=[["-inf"]])  # a lone -inf: C = 1
    assert "row_max_infinite" not in features("float32", op="log_softmax", input=[[1.0]])  # one class, finite
    assert "row_max_infinite" not in features("float32", op="log_softmax", input=[[0.0, "-inf", 1.0]])
    # 1e39 is finite as written, +inf in float32 and bfloat16's neighbour... float32 rounds it to inf
    big = features("float32", op="log_softmax", input=[[0.0, 1e39]])
    assert {"value:+inf", "row_max_infinite"} <= big
    assert "value:+inf" not in features("float64", op="log_softmax", input=[[0.0, 1e39]])


def _golden(case: dict, dtype: str):
    """The case's golden arrays and {semantics: {output: Expected}} in the dtype."""
    arrays, entry = build_case(_spec(dtype, case))
    return arrays, entry, GoldenCase(Path("."), entry).expected(arrays, dtype)


def test_a_variant_is_not_named_where_the_other_output_shows_another_mechanism():
    """torch's BCE at p = t in {0, 1}: gradient 0 by its own formula, which Keras' clipping also
    gives; torch's loss there is the canonical 0, where the clipping gives about 1e-7. Judged
    output by output the gradient is called `clip_eps_1e-7` too; judged as a task, it is not
    (in float64, where the tolerance tells 0 from 1e-7; in float32 it does not, and both names
    stay)."""
    from conformance.verdicts import Prepared
    dtype = "float64"
    arrays, entry, expected = _golden(dict(op="binary_cross_entropy", input=[[0.0, 1.0]], target=[[0.0, 1.0]],
                                           reduction="none"), dtype)
    torch_like = "log_clamp_100+bce_grad_eps_1e-12"
    assert {"clip_eps_1e-7", torch_like} <= set(expected)
    observed = {"loss": Observed("ok", dtype, expected["canonical"]["loss"].bits),
                "grad": Observed("ok", dtype, expected[torch_like]["grad"].bits)}
    alone = classify({n: e["grad"] for n, e in expected.items()}, None, observed["grad"], dtype)
    assert alone.verdict == VARIANT and "clip_eps_1e-7" in alone.variants  # the coincidence
    prepared = {o: Prepared({n: e[o] for n, e in expected.items()}, dtype) for o in ("loss", "grad")}
    task = classify_task(prepared, None, observed, dtype)
    assert task["grad"].verdict == VARIANT and "clip_eps_1e-7" not in task["grad"].variants
    assert torch_like in task["grad"].variants
    # the other output diverging by no known mechanism contradicts nothing: the names stay
    garbage = Observed("ok", dtype, np.array([[0x400921FB54442D18] * 2], dtype=np.uint64))  # pi, pi
    kept = classify_task(prepared, None, {**observed, "loss": garbage}, dtype)
    assert "clip_eps_1e-7" in kept["grad"].variants


def test_mean_sum_overflows_when_the_finite_mean_times_its_denominator_does_not_fit():
    """Two positions whose losses are about 3e38 each: their float32 sum is beyond max (3.4e38)
    although the mean is finite; one such position, or the sum reduction, is not flagged."""
    big = [[0.0, -3e38], [0.0, -3e38]]
    assert "mean_sum_overflows" in features("float32", op="cross_entropy", input=big, target=[1, 1])
    assert "mean_sum_overflows" not in features("float32", op="cross_entropy", input=big[:1], target=[1])
    assert "mean_sum_overflows" not in features("float64", op="cross_entropy", input=big, target=[1, 1])
    assert "mean_sum_overflows" not in features("float32", op="cross_entropy", input=big, target=[1, 1],
                                                reduction="none")
    # a class weight of 1/4 on the target: the denominator is sum w[y] = 1/2, the sum fits
    assert "mean_sum_overflows" not in features("float32", op="cross_entropy", input=big, target=[1, 1],
                                                weight=["0.25", "0.25"])


def test_subnormal_inputs_are_a_value_feature():
    assert "value:subnormal" in features("float32", op="log_softmax", input=[["0x1p-140", 1.0]])
    assert "value:subnormal" not in features("float32", op="log_softmax", input=[["0x1p-126", 1.0]])
    assert "value:subnormal" in features("bfloat16", op="log_softmax", input=[["0x1p-130", 1.0]])


def test_a_probability_row_whose_sum_squared_is_below_the_smallest_normal():
    """S * S < min normal: S < 2^-63 in float32 (2^-126), 2^-7 in float16 (2^-14); a row of zeros
    (S = 0) and a row with a larger entry are not; the feature is the input's, rows along the
    class axis."""
    def has(dtype, row):
        return "row_sum_square_underflows" in features(dtype, op="cross_entropy_from_probs", input=[row],
                                                       target=[0], target_kind="index")
    assert has("float32", [0, 0, "0x1p-123"])
    assert has("float32", ["0x1p-65", "0x1p-65"])  # S = 2^-64
    assert not has("float32", ["0x1p-64", "0x1p-64"])  # S = 2^-63: S * S = 2^-126, normal
    assert not has("float32", [0, 0, 0])
    assert not has("float32", [0, "0x1p-123", 1])
    assert has("float16", ["0x1p-8", 0])
    assert not has("float16", ["0x1p-7", 0])
    assert not has("float64", ["0x1p-123", 0])
