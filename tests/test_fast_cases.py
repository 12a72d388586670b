"""Whole cases through the fast path (reference/fast.py *_case, golden._build_fast) against the
exact path: the same golden files, byte for byte (expected values, variants, condition
scales), on adversarial cases of every kind the gate admits and on the ONNX-derived cases."""
import numpy as np
import pytest

from .conftest import ROOT
from .test_fast import adversarial_rows
from reference import fast, golden
from reference.casefile import load_case_files, parse_cases
from reference.formats import FORMATS

PEER = ROOT / "cases" / "peer" / "onnx_softmax_cross_entropy.toml"
IGNORED = ("precision_bits", "fallback_rows")  # what each path records of its own work


def exact_build(spec, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(golden, "FAST_PATH_MIN_ELEMENTS", 10 ** 9)
        assert not golden._fast_path_applies(spec)
        return golden.build_case(spec)


def fast_build(spec, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(golden, "FAST_PATH_MIN_ELEMENTS", 0)
        assert golden._fast_path_applies(spec)
    built = golden._build_fast(spec)
    assert built is not None
    return built


def assert_same_golden_file(spec, monkeypatch):
    fast_arrays, fast_entry = fast_build(spec, monkeypatch)
    exact_arrays, exact_entry = exact_build(spec, monkeypatch)
    assert sorted(fast_arrays) == sorted(exact_arrays), spec.id
    for name, value in exact_arrays.items():
        got = fast_arrays[name]
        assert got.dtype == value.dtype and got.shape == value.shape, (spec.id, name)
        assert np.array_equal(np.ascontiguousarray(got).view(np.uint8), np.ascontiguousarray(value).view(np.uint8)), \
            (spec.id, name)
    assert golden.npz_bytes(fast_arrays) == golden.npz_bytes(exact_arrays), spec.id
    assert {k: v for k, v in fast_entry.items() if k not in IGNORED} == \
        {k: v for k, v in exact_entry.items() if k not in IGNORED}, spec.id
    return fast_entry


def written(values) -> list:
    """Doubles as exact hex literals, nested like the array."""
    return np.vectorize(float.hex, otypes=[object])(np.asarray(values, dtype=np.float64)).tolist()


def adversarial(shape, fmt_name, seed):
    """Logits exactly representable in fmt, finite in every wider format: rows with ties, a
    dominant class, huge spreads, subnormals, values near log(max) (tests/test_fast.py)."""
    rng = np.random.default_rng(seed)
    classes = shape[0] if len(shape) == 1 else shape[1]
    positions = int(np.prod(shape)) // classes
    rows = adversarial_rows(FORMATS[fmt_name], rng, positions, classes)
    last = (shape[0],) if len(shape) == 1 else (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(rows.reshape(last), -1, 0 if len(shape) == 1 else 1), rng


CASES = [  # op, shape, reduction, weighted, ignore_index (None: none ignored), dtypes
    ("log_softmax", (4, 6), None, False, None, ["float64", "float32", "float16", "bfloat16"]),
    ("log_softmax", (7,), None, False, None, ["float64", "bfloat16"]),
    ("log_softmax", (2, 5, 3), None, False, None, ["float64", "float32"]),
    ("cross_entropy", (6, 5), "none", False, None, ["float64", "float32", "float16", "bfloat16"]),
    ("cross_entropy", (6, 5), "mean", True, 2, ["float64", "float32", "float16", "bfloat16"]),
    ("cross_entropy", (6, 5), "sum", True, -100, ["float64", "float16"]),
    ("cross_entropy", (3, 4, 2), "mean", True, -1, ["float64", "float32"]),
    ("cross_entropy", (3, 4, 2), "none", True, 3, ["float64", "bfloat16"]),
    ("cross_entropy", (5,), "mean", True, None, ["float64", "float32"]),
    ("cross_entropy", (4, 1), "mean", True, None, ["float64", "float32"]),  # one class
    ("nll_loss", (6, 5), "none", True, 2, ["float64", "float32", "float16", "bfloat16"]),
    ("nll_loss", (6, 5), "mean", True, 0, ["float64", "float32"]),
    ("nll_loss", (3, 4, 2), "sum", False, None, ["float64", "bfloat16"]),
]


def build_spec(op, shape, reduction, weighted, ignore_index, dtypes, seed):
    narrowest = min(dtypes, key=lambda d: FORMATS[d].precision * 100 + FORMATS[d].emax)
    x, rng = adversarial(shape, "float16" if "float16" in dtypes else narrowest, seed)
    case = {"id": f"adv-{op}-{seed}", "op": op, "dtypes": dtypes, "input": written(x)}
    if op != "log_softmax":
        classes = shape[0] if len(shape) == 1 else shape[1]
        pos_shape = () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])
        target = rng.integers(0, classes, pos_shape)
        if ignore_index is not None:
            if target.ndim:
                target.reshape(-1)[::3] = ignore_index
            case["ignore_index"] = ignore_index
        case["target"] = target.tolist()
        case["reduction"] = reduction
        if weighted:  # unequal, one of them 0 where there are several classes, some tiny or large
            w = rng.choice([0.5, 3.0, 0.125, 1.0, 7.5, 2.0 ** -9], classes)
            if classes > 2:
                w[1] = 0.0
            case["weight"] = written(w)
    (spec,) = parse_cases([case], "adversarial")
    return spec


@pytest.mark.parametrize("seed, params", list(enumerate(CASES)), ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_fast_golden_file_equals_the_exact_one(seed, params, monkeypatch):
    entry = assert_same_golden_file(build_spec(*params, seed), monkeypatch)
    classes = params[1][0] if len(params[1]) == 1 else params[1][1]
    if params[2] == "mean" and params[3] and classes > 1:  # a weighted mean: Keras' count-based mean separates
        assert "mean_by_count" in entry["variants"].get("float64", [])


def test_float32_logits_of_a_trained_model_decide_without_arb(monkeypatch):
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((16, 40)) * 4).astype(np.float32)
    (spec,) = parse_cases([{"id": "plain", "op": "cross_entropy", "dtypes": ["float64", "float32"],
                            "input": written(x), "target": rng.integers(0, 40, 16).tolist(),
                            "weight": written(rng.uniform(0.1, 2, 40).astype(np.float32)), "reduction": "mean"}], "t")
    entry = assert_same_golden_file(spec, monkeypatch)
    assert entry["fallback_rows"] == {"float64": 0, "float32": 0}


@pytest.mark.parametrize("op, extra", [("log_softmax", {}), ("cross_entropy", {"reduction": "sum"}),
                                       ("cross_entropy", {"reduction": "mean", "ignore_index": 3})])
def test_condition_scales_equal_the_exact_paths_on_random_logits(op, extra, monkeypatch):
    # many unremarkable values: any reordering of the scales' float64 operations shows
    rng = np.random.default_rng(12)
    x = rng.standard_normal((12, 40)) * rng.uniform(0.1, 30, (12, 1))
    case = {"id": "r", "op": op, "dtypes": ["float64", "float32"], "input": written(x)} | extra
    if op == "cross_entropy":
        case |= {"target": rng.integers(0, 40, 12).tolist(), "weight": written(rng.uniform(0.01, 5, 40))}
    (spec,) = parse_cases([case], "t")
    assert_same_golden_file(spec, monkeypatch)


def test_a_reduced_value_the_bound_leaves_undecided_takes_the_exact_path(monkeypatch):
    spec = build_spec(*CASES[4], 4)

    def undecided(*args):
        raise fast.Undecided

    exact_arrays, exact_entry = exact_build(spec, monkeypatch)
    monkeypatch.setattr(fast, "_reduced", undecided)
    monkeypatch.setattr(golden, "FAST_PATH_MIN_ELEMENTS", 0)
    assert golden._fast_path_applies(spec) and golden._build_fast(spec) is None
    arrays, entry = golden.build_case(spec)
    assert golden.npz_bytes(arrays) == golden.npz_bytes(exact_arrays) and entry == exact_entry


@pytest.mark.parametrize("change, applies", [
    ({}, True),
    ({"label_smoothing": "0.1"}, False),
    ({"input": [["inf", "1"], ["0", "1"]]}, False),
    ({"input": [["70000", "1"], ["0", "1"]], "dtypes": ["float16"]}, False),  # inf in float16
    ({"target": [0, 5]}, False),  # a domain error
    ({"target": [2, 2], "ignore_index": 2, "reduction": "mean"}, False),  # an empty mean
    ({"weight": ["0", "1"], "target": [0, 0], "reduction": "mean"}, False),  # weights summing to 0
    ({"weight": ["1e-50", "1"], "target": [0, 0], "reduction": "mean", "dtypes": ["float32"]}, False),
    ({"weight": ["1e-50", "1"], "target": [0, 0], "reduction": "mean", "dtypes": ["float64"]}, True),
    ({"target": [2, 2], "ignore_index": 2, "reduction": "sum"}, True),
])
def test_the_gate(change, applies, monkeypatch):
    case = {"id": "g", "op": "cross_entropy", "input": [["1", "2"], ["3", "-1"]], "target": [0, 1]} | change
    (spec,) = parse_cases([case], "t")
    monkeypatch.setattr(golden, "FAST_PATH_MIN_ELEMENTS", 0)
    assert golden._fast_path_applies(spec) == applies


def test_written_cases_below_the_threshold_keep_the_exact_path():
    # the default suite's cases (at most 12 elements) keep their manifests' working precision
    (spec,) = parse_cases([{"id": "s", "op": "log_softmax", "input": [["1", "2", "3"]] * 4}], "t")
    assert spec.input.size < golden.FAST_PATH_MIN_ELEMENTS and not golden._fast_path_applies(spec)


def test_written_values_round_to_each_dtype_as_resolve_does():
    # the fast build's vectorised rounding of written values: one rounding, however written
    from fractions import Fraction

    from reference.casefile import resolve
    from reference.formats import decode, parse_exact
    rng = np.random.default_rng(13)
    values = [parse_exact(f"{v:.{d}g}") for v, d in zip(rng.standard_normal(600) * 10.0 ** rng.integers(-45, 45, 600),
                                                        rng.integers(1, 20, 600))]
    for name in ("float16", "bfloat16", "float32"):  # halfway between two values, and either side
        fmt = FORMATS[name]
        for b in rng.integers(1, 0x7B00, 60):
            mid = (decode(fmt, int(b)) + decode(fmt, int(b) + 1)) / 2
            values += [mid, mid + Fraction(1, 2 ** 90), mid - Fraction(1, 2 ** 90)]
    values += [Fraction(10 ** 320), Fraction(3, 2 ** 1100), "nan", "-inf", "-0", ("edge", -1, "min_subnormal")]
    array = np.empty(len(values), dtype=object)
    array[:] = values
    for name in ("float64", "float32", "float16", "bfloat16"):
        fmt = FORMATS[name]
        expected = [resolve(v, fmt) for v in values]
        assert golden._written_bits(array, fmt).tolist() == expected, name
        assert golden._written_bits(array[:600], fmt).tolist() == expected[:600], name  # all Fractions


@pytest.fixture(scope="module")
def peer_specs():
    return load_case_files([PEER])


def test_onnx_cases_take_the_fast_path(peer_specs):
    assert len(peer_specs) >= 50
    assert all(golden._fast_path_applies(s) for s in peer_specs if s.input.size >= golden.FAST_PATH_MIN_ELEMENTS)


def test_small_onnx_cases_give_the_exact_paths_golden_files(peer_specs, monkeypatch):
    for spec in (s for s in peer_specs if s.input.size <= 420):
        assert_same_golden_file(spec, monkeypatch)


# of the larger ONNX cases, one for each thing the fast path must get right beyond the small
# ones: both ops, ranks 4, 5 and 7, every reduction, class weights under a mean (the weighted
# denominator), and ignore_index negative, 0 and 1 (benchmarks/bench_peer_cases.py compares
# all 52: the exact path takes most of a minute for them)
LARGER_SAMPLE = ("onnx-test-sce-NCd1d2d3d4d5-mean-weight", "onnx-test-sce-NCd1d2d3-none-no-weight-negative-ii",
                 "onnx-test-nllloss-NCd1d2-with-weight-reduction-mean",
                 "onnx-test-nllloss-NCd1d2-with-weight-reduction-sum-ii",
                 "onnx-test-nllloss-NCd1d2-no-weight-reduction-mean-ii",
                 "onnx-test-nllloss-NCd1d2d3-none-no-weight-negative-ii")


@pytest.mark.slow
def test_a_sample_of_the_larger_onnx_cases_give_the_exact_paths_golden_files(peer_specs, monkeypatch):
    chosen = [s for s in peer_specs if s.id in LARGER_SAMPLE]
    assert len(chosen) == len(LARGER_SAMPLE) and all(s.input.size > 420 for s in chosen)
    for spec in chosen:
        assert_same_golden_file(spec, monkeypatch)


def test_paths_agree_decides_small_cases_both_ways(monkeypatch):
    """golden.paths_agree (xent discover's proof): the fast path at any size against the exact
    path; None where the fast path does not decide; False when one byte differs."""
    (small,) = parse_cases([{"id": "s", "op": "cross_entropy", "dtypes": ["float32", "bfloat16"],
                             "input": [["0x1.8p+0", "-0x1p-3", "0x1p+4"]], "target": [2]}], "t")
    assert golden.paths_agree(small) is True
    agree, (arrays, entry) = golden.paths_agree(small, keep_exact=True)
    assert agree is True and entry["id"] == "s"
    (special,) = parse_cases([{"id": "n", "op": "cross_entropy", "input": [[0, "nan"]], "target": [0]}], "t")
    assert golden.paths_agree(special) is None
    real = golden._build_fast

    def off_by_one(spec, inputs=None):
        arrays, entry = real(spec, inputs)
        name = next(n for n in arrays if n.startswith("expected."))
        arrays[name] = arrays[name] ^ 1
        return arrays, entry

    monkeypatch.setattr(golden, "_build_fast", off_by_one)
    assert golden.paths_agree(small) is False
