"""Fuzzing the case-file loader: TOML documents generated from the case grammar, with random
values, nesting and corruptions. Every document gives cases or one clear CaseFileError,
never another exception, never more than a second."""
import string
import time

from hypothesis import HealthCheck, given, settings, strategies as st

from reference.casefile import FIELDS, CaseFileError, load_case_file

NUMBERS = st.one_of(
    st.integers(-10**30, 10**30), st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from(['"max"', '"-min_subnormal"', '"log_max"', '"inf"', '"-inf"', '"nan"', '"0x1.8p-3"',
                     '"1e999999999"', '"0x1p-99999999999"', '"-0.0"', '"1e"', '"x"']))


def toml_value(depth=3):
    leaf = st.one_of(NUMBERS.map(str), st.booleans().map(lambda b: str(b).lower()),
                     st.text(string.ascii_letters + "_-.\\n ", max_size=8).map(lambda t: '"' + t.replace('"', "") + '"'),
                     st.sampled_from(['"cross_entropy"', '"log_softmax"', '"nll_loss"', '"binary_cross_entropy"',
                                      '"index"', '"probs"', '"mean"', '"none"', '"float32"', '"bfloat16"']))
    if depth == 0:
        return leaf
    inner = toml_value(depth - 1)
    return st.one_of(leaf, st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"))


FIELD = st.sampled_from(sorted(FIELDS) + ["colour", "case"])
VALID = {"id": '"c"', "op": '"cross_entropy"', "input": "[[0.5, -1.25, 2.0], [3.0, 1.0, -2.5]]", "target": "[2, 0]",
         "weight": "[1.0, 2.0, 0.5]", "reduction": '"mean"', "dtypes": '["float32"]'}


@st.composite
def table(draw):
    """A valid case with a few fields replaced by anything the grammar allows, or dropped."""
    fields = dict(VALID)
    for key in draw(st.lists(FIELD, min_size=1, max_size=3)):
        if draw(st.booleans()):
            fields[key] = draw(toml_value())
        else:
            fields.pop(key, None)
    return fields


TABLE = st.one_of(table(), table(), table(), st.dictionaries(FIELD, toml_value(), max_size=9))
DOCUMENT = st.lists(TABLE, min_size=0, max_size=2).map(
    lambda tables: "".join("[[case]]\n" + "".join(f"{k} = {v}\n" for k, v in t.items()) for t in tables))


def corrupt(text: str, data) -> str:
    kind = data.draw(st.sampled_from(["none", "none", "cut", "insert", "delete"]))
    if kind == "none" or not text:
        return text
    at = data.draw(st.integers(0, len(text)))
    if kind == "cut":
        return text[:at]
    if kind == "insert":
        return text[:at] + data.draw(st.sampled_from(["[", "]", '"', "=", "\n", "[[case]]\n", "\x00", "é"])) + text[at:]
    return text[:at] + text[at + 1:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(document=DOCUMENT, data=st.data())
def test_the_loader_gives_cases_or_one_clear_error(tmp_path, document, data):
    path = tmp_path / "fuzz.toml"
    path.write_text(corrupt(document, data), encoding="utf-8")
    start = time.perf_counter()
    try:
        cases = load_case_file(path)
        assert cases and all(c.id for c in cases)
    except CaseFileError as e:
        assert str(e).startswith(str(path)) and "field " in str(e)
    assert time.perf_counter() - start < 1.0
