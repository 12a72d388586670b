"""The TOML case loader: exact values, edge names, and one clear error per malformed file
that names the file, the case and the field."""
from fractions import Fraction

import numpy as np
import pytest

from .conftest import ROOT
from reference.casefile import CaseFileError, load_case_file, load_case_files, resolve
from reference.formats import FORMATS, decode

GOOD = """
[[case]]
id = "ok.1"
op = "cross_entropy"
dtypes = ["float16"]
input = [[0.1, "0x1.8p-3", -inf], [1, "max", "-min_subnormal"]]
target = [2, -100]
weight = [1.0, 2, 0.5]
label_smoothing = 0.1
reduction = "sum"
"""


def write(tmp_path, text, name="cases.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_file_keeps_exact_values(tmp_path):
    (case,) = load_case_file(write(tmp_path, GOOD))
    assert case.id == "ok.1" and case.dtypes == ("float16",) and case.reduction == "sum"
    assert case.input[0, 0] == Fraction(1, 10)  # the decimal's exact value, not a double
    assert case.input[0, 1] == Fraction(3, 16)
    assert case.input[0, 2] == "-inf"
    assert case.input[1, 1] == ("edge", 1, "max")
    assert case.target.tolist() == [2, -100] and case.target_kind == "index"
    # label smoothing is the float64 a framework receives
    assert case.label_smoothing == Fraction(0.1)
    f16 = FORMATS["float16"]
    assert resolve(case.input[0, 0], f16) == 0x2E66  # 0.1 rounded once, straight to float16
    assert decode(f16, resolve(case.input[1, 1], f16)) == 65504
    assert decode(f16, resolve(case.input[1, 2], f16)) == -Fraction(1, 2**24)


def test_probability_targets_and_unbatched(tmp_path):
    text = """
[[case]]
id = "p"
op = "cross_entropy"
input = [[0.0, 1.0]]
target = [[0.25, 0.75]]

[[case]]
id = "u"
op = "cross_entropy"
input = [0.0, 1.0, 2.0]
target = 1

[[case]]
id = "e"
op = "cross_entropy"
input = []
shape = [0, 4]
target = []
"""
    p, u, e = load_case_file(write(tmp_path, text))
    assert p.target_kind == "probs" and p.target[0, 1] == Fraction(3, 4)
    assert u.target.shape == () and int(u.target) == 1
    assert e.input.shape == (0, 4) and e.target.shape == (0,)


BAD = [
    # (snippet replacing the good case, field the error must name)
    ('id = "bad id!"\nop = "log_softmax"\ninput = [[1.0]]', "id"),
    ('op = "log_softmax"\ninput = [[1.0]]', "id"),
    ('id = "a"\nop = "softmax"\ninput = [[1.0]]', "op"),
    ('id = "a"\nop = "log_softmax"\ninput = [[1.0]]\ncolour = 3', "colour"),
    ('id = "a"\nop = "log_softmax"\ninput = [[1.0]]\ndtypes = ["float8"]', "dtypes"),
    ('id = "a"\nop = "log_softmax"\ninput = [[1.0, 2.0], [3.0]]', "input"),
    ('id = "a"\nop = "log_softmax"\ninput = []', "input"),
    ('id = "a"\nop = "log_softmax"\ninput = [[true, 1.0]]', "input"),
    ('id = "a"\nop = "log_softmax"\ninput = [["one", 1.0]]', "input"),
    ('id = "a"\nop = "log_softmax"\ninput = [[1.0, 2.0]]\nshape = [2, 2]', "shape"),
    ('id = "a"\nop = "log_softmax"\ninput = [[1.0]]\ntarget = [0]', "target"),
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]', "target"),
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [0, 1]', "target"),
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [[0.5]]', "target"),
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [[0.5, nan]]', "target"),
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [0]\ntarget_kind = "soft"', "target_kind"),
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [0]\nweight = [1.0]', "weight"),
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [0]\nweight = [1.0, inf]', "weight"),
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [0]\nignore_index = 1.5', "ignore_index"),
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [0]\nlabel_smoothing = "max"', "label_smoothing"),
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [0]\nreduction = "avg"', "reduction"),
    ('id = "a"\nop = "log_softmax"\ninput = [[1.0]]\ntags = "x"', "tags"),
    # the rest of the family
    ('id = "a"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [0]\npos_weight = [1.0, 2.0]', "pos_weight"),
    ('id = "a"\nop = "nll_loss"\ninput = [[-1.0, -2.0]]\ntarget = [0]\nlabel_smoothing = 0.1', "label_smoothing"),
    ('id = "a"\nop = "nll_loss"\ninput = [[-1.0, -2.0]]\ntarget = [[0.5, 0.5]]', "target"),
    ('id = "a"\nop = "cross_entropy_from_probs"\ninput = [[0.5, 0.5]]\ntarget = [0]\nlabel_smoothing = 0.1', "label_smoothing"),
    ('id = "a"\nop = "binary_cross_entropy"\ninput = [[0.5, 0.5]]\ntarget = [0]', "target"),
    ('id = "a"\nop = "binary_cross_entropy"\ninput = [[0.5, 0.5]]\ntarget = [[0, 1]]\nignore_index = 1', "ignore_index"),
    ('id = "a"\nop = "binary_cross_entropy"\ninput = [[0.5, 0.5]]\ntarget = [[0, 1]]\nweight = [1.0, 2.0, 3.0]', "weight"),
    ('id = "a"\nop = "binary_cross_entropy"\ninput = [[0.5, 0.5]]\ntarget = [[0, "max"]]', "target"),
    ('id = "a"\nop = "binary_cross_entropy_with_logits"\ninput = [[0.5, 0.5]]\ntarget = [[0, 1]]\npos_weight = [1.0]', "pos_weight"),
    ('id = "a"\nop = "binary_cross_entropy_with_logits"\ninput = [[0.5, 0.5]]\ntarget = [[0, 1]]\npos_weight = [1.0, nan]', "pos_weight"),
    ('id = "a"\nop = "binary_cross_entropy_with_logits"\ninput = [[0.5, 0.5]]\ntarget = [[0, 1]]\ntarget_kind = "index"', "target_kind"),
    ('id = "a"\nop = "multilabel_soft_margin_loss"\ninput = [0.5, 0.5]\ntarget = [0, 1]', "input"),
    ('id = "a"\nop = "multilabel_soft_margin_loss"\ninput = [[0.5, 0.5]]\ntarget = [[0, 1]]\nweight = [[1.0, 1.0]]', "weight"),
]


@pytest.mark.parametrize("body, field", BAD)
def test_malformed_case_names_file_case_and_field(tmp_path, body, field):
    path = write(tmp_path, "[[case]]\n" + body + "\n")
    with pytest.raises(CaseFileError) as err:
        load_case_file(path)
    assert err.value.field == field
    assert str(path) in str(err.value) and f"field {field!r}" in str(err.value)
    if 'id = "a"' in body:
        assert "case 'a'" in str(err.value)


@pytest.mark.parametrize("text, field", [
    ("[[case]\nid = 1", "-"),  # not TOML
    ("title = 'x'", "title"),
    ("", "case"),
    ('[[case]]\nid = "a"\nop = "log_softmax"\ninput = [[1.0]]\n[[case]]\nid = "a"\nop = "log_softmax"\ninput = [[2.0]]', "id"),
])
def test_malformed_file_level(tmp_path, text, field):
    with pytest.raises(CaseFileError) as err:
        load_case_file(write(tmp_path, text))
    assert err.value.field == field


def test_missing_file(tmp_path):
    with pytest.raises(CaseFileError, match="cannot read"):
        load_case_file(tmp_path / "nope.toml")


def test_all_files_checked_before_any_case_is_returned(tmp_path):
    good = write(tmp_path, GOOD, "good.toml")
    bad = write(tmp_path, '[[case]]\nid = "b"\nop = "nope"\ninput = [[1.0]]\n', "bad.toml")
    with pytest.raises(CaseFileError, match="bad.toml"):
        load_case_files([good, bad])
    dup = write(tmp_path, GOOD, "dup.toml")
    with pytest.raises(CaseFileError, match="duplicate id"):
        load_case_files([good, dup])


def test_default_catalog_loads():
    cases = load_case_files([ROOT / "cases" / "default.toml"])
    assert len({c.id for c in cases}) == len(cases) > 30
    assert isinstance(cases[0].input, np.ndarray)


def test_family_fields(tmp_path):
    text = """
[[case]]
id = "b"
op = "binary_cross_entropy_with_logits"
input = [[0.5, -1.0], [2.0, 0.0]]
target = [[0, 1], [0.5, 1]]
weight = [2.0, 0.5]
pos_weight = [1.0, 3.0]
label_smoothing = 0.25

[[case]]
id = "z"
op = "binary_cross_entropy"
input = [["-0.0", "below_one"]]
target = [[1, 0]]
weight = [[1.0, 2.0]]
"""
    b, z = load_case_file(write(tmp_path, text))
    assert b.target_kind == "binary" and b.target[1, 0] == Fraction(1, 2)
    assert b.weight.shape == (2,) and b.pos_weight.tolist() == [1, 3]
    f32 = FORMATS["float32"]
    assert resolve(z.input[0, 0], f32) == 0x80000000  # -0 keeps its sign on the way in
    assert decode(f32, resolve(z.input[0, 1], f32)) == 1 - Fraction(1, 2**24)


def npy_case(tmp_path, target="target = [1, 0]", extra=""):
    return write(tmp_path, '[[case]]\nid = "n"\nop = "cross_entropy"\ninput = { npy = "logits.npy" }\n'
                           f"{target}\n{extra}")


def test_bfloat16_npy_input_is_read_exactly(tmp_path):
    import ml_dtypes
    values = [[1.0, -2.5, 3.140625], [float("inf"), -0.0, 2.0**-133]]  # 2**-133: bfloat16's smallest subnormal
    np.save(tmp_path / "logits.npy", np.array(values, ml_dtypes.bfloat16))
    assert b"'descr': '<V2'" in (tmp_path / "logits.npy").read_bytes()[:128]  # what numpy writes
    (case,) = load_case_files([npy_case(tmp_path)])
    assert case.input.dtype == np.float64 and case.input.tolist() == values
    assert np.signbit(case.input[1, 1])
    # the same values stored as float32 give the same case
    np.save(tmp_path / "logits.npy", np.array(values, np.float32))
    (as_f32,) = load_case_files([npy_case(tmp_path)])
    assert np.array_equal(as_f32.input, case.input)


def test_bfloat16_npy_nan_and_the_ml_dtypes_descriptor(tmp_path):
    # ml_dtypes' own descriptor, should a writer use it: a header written by hand
    bits = np.array([0x3F80, 0x7FC0, 0xFF80], "<u2")  # 1, nan, -inf
    with open(tmp_path / "logits.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "bfloat16", "fortran_order": False, "shape": (3,)})
        f.write(bits.tobytes())
    (case,) = load_case_files([npy_case(tmp_path, "target = 0")])
    assert case.input[0] == 1 and np.isnan(case.input[1]) and case.input[2] == -np.inf


def test_other_void_npy_inputs_are_refused(tmp_path):
    np.save(tmp_path / "logits.npy", np.zeros((2, 3), [("a", "u1"), ("b", "u1")]))  # 2 bytes, but fields
    with pytest.raises(CaseFileError, match="floating-point values") as err:
        load_case_files([npy_case(tmp_path)])
    assert err.value.field == "input"


def test_float_class_indices_with_target_kind_index(tmp_path):
    text = """
[[case]]
id = "f"
op = "cross_entropy"
input = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
target = [1.0, 2e0]
target_kind = "index"

[[case]]
id = "n"
op = "nll_loss"
input = [[-1.0, -2.0, -3.0], [-3.0, -2.0, -1.0]]
target = [-0.0, "0x1p1"]
target_kind = "index"
"""
    f, n = load_case_file(write(tmp_path, text))
    assert f.target_kind == "index" and f.target.dtype == np.int64 and f.target.tolist() == [1, 2]
    assert n.target.tolist() == [0, 2]


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_float_class_indices_without_target_kind_say_what_to_write(tmp_path, op):
    path = write(tmp_path, f'[[case]]\nid = "f"\nop = "{op}"\ninput = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]\n'
                           'target = [1, 2.0]\n')
    with pytest.raises(CaseFileError) as err:
        load_case_file(path)
    assert err.value.field == "target" and err.value.case_id == "f"
    assert str(err.value) == (f"{path}: case 'f': field 'target': class indices must be integers (got 2.0); "
                              'write 2, or set target_kind = "index"')


@pytest.mark.parametrize("target, kind, problem", [
    ("[1.5, 2.0]", 'target_kind = "index"', "class indices must be whole numbers (got 1.5)"),
    ("[nan, 2.0]", 'target_kind = "index"', "class indices must be whole numbers (got nan)"),
    ("[1.0, 1e30]", 'target_kind = "index"', "class indices must lie within"),
    ("[1.0, 2.5]", "", "probs targets need shape (2, 3), got (2,), and class indices must be whole numbers (got 2.5)"),
])
def test_float_class_indices_that_are_not_whole(tmp_path, target, kind, problem):
    path = write(tmp_path, '[[case]]\nid = "f"\nop = "cross_entropy"\ninput = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]\n'
                           f"target = {target}\n{kind}\n")
    with pytest.raises(CaseFileError) as err:
        load_case_file(path)
    assert err.value.field == "target" and problem in err.value.problem


def test_float_npy_class_indices(tmp_path):
    np.save(tmp_path / "logits.npy", np.zeros((2, 3), np.float32))
    np.save(tmp_path / "labels.npy", np.array([2.0, 0.0], np.float32))
    (case,) = load_case_files([npy_case(tmp_path, 'target = { npy = "labels.npy" }', 'target_kind = "index"')])
    assert case.target.dtype == np.int64 and case.target.tolist() == [2, 0]
    with pytest.raises(CaseFileError, match=r"class indices must be integers \(got 2.0\); store integers in "
                                            r'labels.npy, or set target_kind = "index"') as err:
        load_case_files([npy_case(tmp_path, 'target = { npy = "labels.npy" }')])
    assert err.value.field == "target" and err.value.case_id == "n"
    np.save(tmp_path / "labels.npy", np.array([2.0, 0.5], np.float32))
    with pytest.raises(CaseFileError, match=r"whole numbers \(got 0.5\)"):
        load_case_files([npy_case(tmp_path, 'target = { npy = "labels.npy" }', 'target_kind = "index"')])
    np.save(tmp_path / "labels.npy", np.full((2, 3), 0.5))  # probabilities are written out
    with pytest.raises(CaseFileError, match="a .npy target holds class indices"):
        load_case_files([npy_case(tmp_path, 'target = { npy = "labels.npy" }')])


# -- the writer: parse(write(case)) == case --

def test_writer_round_trips_every_default_case(tmp_path):
    from reference.casefile import same_case, write_case_file
    from reference.catalog import default_specs
    specs = default_specs()
    back = load_case_file(write_case_file(specs, tmp_path / "all.toml", "every default case"))
    assert [c.id for c in back] == [c.id for c in specs]
    assert [c.id for c, b in zip(specs, back) if not same_case(c, b)] == []


def test_writer_round_trips_the_peer_file_and_stored_inputs(tmp_path):
    """The ONNX-derived file (hex floats, K-dim) as text; its large inputs as .npy beside it."""
    from reference.casefile import NPY_FROM, same_case, write_case_file
    specs = load_case_file(ROOT / "cases" / "peer" / "onnx_softmax_cross_entropy.toml")
    for npy_from, name in ((None, "text.toml"), (NPY_FROM, "npy.toml")):
        back = load_case_file(write_case_file(specs, tmp_path / name, npy_from=npy_from))
        assert all(same_case(a, b) for a, b in zip(specs, back)) and len(back) == len(specs)
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == sorted(
        f"{c.id}.input.npy" for c in specs if c.input.size >= NPY_FROM)


def test_writer_detects_a_changed_value(tmp_path):
    """same_case is not vacuous: one value off by one ulp of float64 is another case."""
    from reference.casefile import same_case, write_case_file
    (case,) = load_case_file(write(tmp_path, GOOD))
    back, = load_case_file(write_case_file([case], tmp_path / "w.toml"))
    assert same_case(case, back)
    case.input[0, 1] += Fraction(1, 2**60)
    assert not same_case(case, back)


def test_number_text_is_exact():
    from reference.casefile import _parse_number, number_text
    from reference.formats import NEG_ZERO
    for value in (Fraction(1, 10), Fraction(-3, 16), Fraction(2**-1074), Fraction(7), Fraction(-1, 3 * 2**0 * 5) * 3,
                  ("edge", -1, "min_subnormal"), "nan", "+inf", "-inf", NEG_ZERO, Fraction(123456789, 1024)):
        text = number_text(value)
        raw = int(text) if text.lstrip("-").isdigit() else text.strip('"') if text.startswith('"') else text
        assert _parse_number(raw) == value, (value, text)
    with pytest.raises(ValueError):
        number_text(Fraction(1, 3))
