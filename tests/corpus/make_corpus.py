"""Writes the malformed-input corpus the reliability tests load: case files under cases/ and
expectations files under expectations/. Run it again after changing it; the files are in git."""
from pathlib import Path

HERE = Path(__file__).parent
BASE = {"id": '"base"', "op": '"cross_entropy"', "input": "[[0.5, -1.25, 2.0], [3.0, 1.0, -2.5]]",
        "target": "[2, 0]", "weight": "[1.0, 2.0, 0.5]", "reduction": '"mean"', "dtypes": '["float32"]'}


def case(**changes) -> str:
    fields = {**BASE, **changes}
    return "[[case]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)


DEEP = "[" * 5000 + "1" + "]" * 5000
CASES = {
    # the case's id
    "id-missing": case(id=None), "id-number": case(id="5"), "id-newline": case(id='"abc\\n"'),
    "id-space": case(id='"a b"'), "id-empty": case(id='""'), "id-too-long": case(id='"' + "x" * 300 + '"'),
    "id-list": case(id='["a"]'), "id-slash": case(id='"../etc/passwd"'), "id-table": case(id="{ a = 1 }"),
    # the op
    "op-missing": case(op=None), "op-list": case(op='["log_softmax"]'), "op-number": case(op="5"),
    "op-unknown": case(op='"softmax"'), "op-empty": case(op='""'), "op-table": case(op="{ name = 1 }"),
    # dtypes
    "dtypes-nested": case(dtypes='[["float32"]]'), "dtypes-string": case(dtypes='"float32"'),
    "dtypes-empty": case(dtypes="[]"), "dtypes-unknown": case(dtypes='["float8"]'), "dtypes-number": case(dtypes="[1]"),
    "dtypes-bool": case(dtypes="[true]"), "dtypes-table": case(dtypes="{ a = 1 }"),
    # input
    "input-missing": case(input=None), "input-string": case(input='"abc"'), "input-ragged": case(input="[[1.0, 2.0], [3.0]]"),
    "input-deep": case(input=DEEP), "input-word": case(input='[["x", 1.0, 2.0], [1.0, 2.0, 3.0]]'),
    "input-bool": case(input="[[true, 1.0, 2.0], [1.0, 2.0, 3.0]]"), "input-empty-no-shape": case(input="[]"),
    "input-scalar": case(input="5"), "input-table": case(input="[{ a = 1 }]"), "input-no-classes": case(input="[[], []]"),
    "input-bad-hex": case(input='[["0x1p", 1.0, 2.0], [1.0, 2.0, 3.0]]'),
    "input-bad-exponent": case(input='[["1e", 1.0, 2.0], [1.0, 2.0, 3.0]]'),
    "input-double-sign": case(input='[["--1", 1.0, 2.0], [1.0, 2.0, 3.0]]'),
    "input-fraction": case(input='[["1/3", 1.0, 2.0], [1.0, 2.0, 3.0]]'),
    "input-nan-payload": case(input='[["nan(123)", 1.0, 2.0], [1.0, 2.0, 3.0]]'),
    "input-huge-literal": case(input='[["' + "1" * 10_001 + '", 1.0, 2.0], [1.0, 2.0, 3.0]]'),
    "input-rank-for-multilabel": case(op='"multilabel_soft_margin_loss"', input="[[[0.5, 1.0]]]",
                                      target="[[[1.0, 0.0]]]", weight=None),
    # target
    "target-missing": case(target=None), "target-short": case(target="[2]"), "target-mixed": case(target="[2, 3.5]"),
    "target-20-digits": case(target="[12345678901234567890, 0]"), "target-nested": case(target="[[2, 0]]"),
    "target-string": case(target='"a"'), "target-bool": case(target="[true, false]"),
    "target-long": case(target="[2, 0, 1]"), "target-deep": case(target=DEEP),
    "target-probs-edge": case(target='[["max", 0.0, 0.0], [1.0, 0.0, 0.0]]'),
    "target-probs-shape": case(target="[[0.5, 0.5], [1.0, 0.0]]"),
    "target-on-log-softmax": case(op='"log_softmax"', weight=None, reduction=None),
    "target-kind-bogus": case(target_kind='"bogus"'), "target-kind-number": case(target_kind="5"),
    "target-kind-binary-for-ce": case(target_kind='"binary"'),
    # weights
    "weight-short": case(weight="[1.0, 2.0]"), "weight-edge": case(weight='["max", 1.0, 1.0]'),
    "weight-inf": case(weight='[1.0, 2.0, "inf"]'), "weight-nested": case(weight="[[1.0, 2.0, 3.0]]"),
    "weight-string": case(weight='"w"'), "weight-bool": case(weight="[true, 1.0, 1.0]"), "weight-deep": case(weight=DEEP),
    "pos-weight-on-ce": case(pos_weight="[1.0, 1.0, 1.0]"),
    "pos-weight-shape": case(op='"binary_cross_entropy_with_logits"', target="[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]",
                             weight=None, pos_weight="[1.0, 2.0]"),
    # parameters
    "ignore-index-float": case(ignore_index="1.5"), "ignore-index-string": case(ignore_index='"a"'),
    "ignore-index-bool": case(ignore_index="true"), "ignore-index-huge": case(ignore_index="100000000000000000000"),
    "ignore-index-list": case(ignore_index="[1]"), "ignore-index-on-bce": case(
        op='"binary_cross_entropy"', input="[[0.5, 0.25]]", target="[[1.0, 0.0]]", weight=None, ignore_index="0"),
    "smoothing-word": case(label_smoothing='"abc"'), "smoothing-inf": case(label_smoothing='"inf"'),
    "smoothing-bool": case(label_smoothing="true"), "smoothing-list": case(label_smoothing="[0.1]"),
    "smoothing-edge": case(label_smoothing='"max"'), "smoothing-on-nll": case(op='"nll_loss"', label_smoothing="0.1"),
    "reduction-unknown": case(reduction='"avg"'), "reduction-number": case(reduction="5"),
    "reduction-list": case(reduction='["mean"]'), "reduction-on-log-softmax": case(op='"log_softmax"', target=None,
                                                                                   weight=None),
    "tags-string": case(tags='"a"'), "tags-numbers": case(tags="[1]"), "tags-table": case(tags="{ a = 1 }"),
    # shape
    "shape-negative": case(shape="[2, -3]"), "shape-words": case(shape='["a"]'),
    "shape-1e20": case(shape="[100000000000000000000, 3]", input="[]", target="[]"),
    "shape-mismatch": case(shape="[2, 4]"), "shape-number": case(shape="5"),
    "shape-many-dims": case(shape="[" + ", ".join(["0"] + ["1"] * 30) + "]", input="[]", target="[]"),
    "shape-bool": case(shape="[true, 3]"),
    # fields and tables
    "unknown-field": case(colour='"red"'), "misspelt-field": case(reductoin='"mean"'),
    "misspelt-table": "[[cases]]\nid = \"a\"\n", "top-level-key": "foo = 1\n" + case(),
    "case-list-of-numbers": "case = [1, 2]\n", "case-number": "case = 5\n", "case-empty": "case = []\n",
    "case-string": 'case = "x"\n', "empty-file": "", "comment-only": "# nothing\n",
    "invalid-toml": "[[case]\nid = 1\n", "unclosed-string": '[[case]]\nid = "a\n',
    "integer-5000-digits": case(target="[" + "1" * 5000 + ", 0]"),
    "duplicate-id": case() + "\n" + case(), "duplicate-key": case() + 'op = "nll_loss"\n',
    "second-case-broken": case() + "\n" + case(id='"second"', op='"x"'),
}
BINARY = {"invalid-utf8": b'[[case]]\nid = "\xff\xfe"\n', "nul-bytes": b"\x00\x01\x02", "latin1": "id = 'é'".encode("latin-1")}

ENTRY = {"id": '"e"', "frameworks": '["torch"]', "verdicts": '["inaccurate"]', "reason": '"why"',
         "evidence": '"https://example.org/issue"'}


def entry(**changes) -> str:
    fields = {**ENTRY, **changes}
    return "[[cause]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)


EXPECTATIONS = {
    "empty-file": "", "misspelt-table": "[[knwon]]\nid = 'x'\n", "old-schema": "[[known]]\nid = 'x'\n",
    "cause-number": "cause = 5\n", "cause-strings": 'cause = ["a"]\n', "id-missing": entry(id=None),
    "id-number": entry(id="5"), "duplicate-id": entry() + entry(), "framework-unknown": entry(frameworks='["pytorch"]'),
    "frameworks-missing": entry(frameworks=None), "frameworks-string": entry(frameworks='"torch"'),
    "verdict-unknown": entry(verdicts='["varient"]'), "verdicts-missing": entry(verdicts=None),
    "detail-number": entry(detail="5"), "evidence-missing": entry(evidence=None),
    "evidence-not-a-link": entry(evidence='"a note somewhere"'), "requires-bad": entry(requires='["torch>>2"]'),
    "params-unknown": entry(params='{ colour = "red" }'), "params-list-value": entry(params="{ reduction = [1] }"),
    "features-string": entry(features='"weight"'), "variant-without-verdict": entry(variant='"mean_by_count"'),
    "unknown-field": entry(colour='"red"'), "invalid-toml": "[[cause]\n", "reason-empty": entry(reason='""'),
}


def main() -> None:
    for folder, texts, binary in (("cases", CASES, BINARY), ("expectations", EXPECTATIONS, {})):
        out = HERE / folder
        out.mkdir(exist_ok=True)
        for old in out.glob("*.toml"):
            old.unlink()
        for name, text in texts.items():
            (out / f"{name}.toml").write_text(text, encoding="utf-8")
        for name, data in binary.items():
            (out / f"{name}.toml").write_bytes(data)


if __name__ == "__main__":
    main()
