"""The default golden catalog: systematic cross products of edge-value classes, target
classes, weights, smoothing, shapes and reductions, per op (in the manner of Berkeley
TestFloat's operand levels), plus the hand-written cases of cases/default.toml.

Cases are written as the same tables a user's TOML file holds and go through the same
validation. Numbers are strings (decimal, hex or an edge name resolved per dtype). Where
semantics are contested, the inputs are chosen so the competing variants give clearly
different answers: strongly unequal weights, rows whose mass is far from 1, zero and one
probabilities.
"""
from __future__ import annotations

from itertools import product
from pathlib import Path

from .casefile import CaseSpec, load_case_files, parse_cases

HAND_WRITTEN = Path(__file__).resolve().parents[1] / "cases" / "default.toml"

# logit / log-probability value classes (each resolved per dtype)
LOGIT_VALUES = {
    "zero": "0", "neg-zero": "-0.0", "min-sub": "min_subnormal", "neg-min-sub": "-min_subnormal",
    "max-sub": "max_subnormal", "min-normal": "min_normal", "one": "1", "neg-one": "-1",
    "log-max": "log_max", "neg-log-max": "-log_max", "max": "max", "neg-max": "-max",
    "pos-inf": "inf", "neg-inf": "-inf", "nan": "nan",
}
# probability value classes: exactly 0 and 1, one ULP inside, the smallest positives
PROB_VALUES = {
    "zero": "0", "min-sub": "min_subnormal", "min-normal": "min_normal", "half": "0.5",
    "below-one": "below_one", "one": "1",
}
REDUCTIONS = ("none", "mean", "sum")
BASE_ROW = ["0.5", "-1.25", "2"]  # an ordinary row of 3 classes
OTHER_ROW = ["1", "0", "-0.75"]


def _case(case_id: str, op: str, tags: list[str], **fields) -> dict:
    return {"id": case_id, "op": op, "tags": ["catalog"] + tags, **fields}


def _filled(shape: tuple[int, ...], k0: int = 0, kind: str = "logit") -> list:
    """Deterministic exactly representable values of a shape: multiples of 1/4 in [-2, 2]
    for logits, multiples of 1/16 in (0, 1) for probabilities, {0, 1, 1/2} for binary
    targets."""
    def value(k: int) -> str:
        if kind == "logit":
            return str(((k * 37) % 17 - 8) / 4)
        if kind == "prob":
            return str(((k * 37) % 15 + 1) / 16)
        return ("0", "1", "0.5")[(k * 7) % 3]

    def build(dims, k):
        if len(dims) == 1:
            return [value(k + i) for i in range(dims[0])], k + dims[0]
        rows = []
        for _ in range(dims[0]):
            row, k = build(dims[1:], k)
            rows.append(row)
        return rows, k

    return build(shape, k0)[0] if shape and 0 not in shape else []


def _index_targets(shape: tuple[int, ...], classes: int) -> list | int:
    positions = shape[:1] + shape[2:] if len(shape) > 1 else ()
    if not positions:
        return 1
    count = 1
    for d in positions:
        count *= d
    flat = [(k * 5 + 1) % classes for k in range(count)]

    def build(dims, offset):
        if len(dims) == 1:
            return flat[offset:offset + dims[0]]
        step = count_of(dims[1:])
        return [build(dims[1:], offset + i * step) for i in range(dims[0])]

    def count_of(dims):
        n = 1
        for d in dims:
            n *= d
        return n

    return build(positions, 0) if 0 not in positions else []


def _prob_rows(shape: tuple[int, ...]) -> list:
    """Probability targets of a (N, C, ...) shape whose class rows sum to 1 (C = 3: 1/4, 1/4, 1/2 rotated)."""
    def row_for(k, classes):
        base = ["0.25", "0.25", "0.5"] if classes == 3 else ["1"] + ["0"] * (classes - 1)
        return [base[(i + k) % classes] for i in range(classes)]
    if len(shape) == 2:
        return [row_for(n, shape[1]) for n in range(shape[0])]
    raise ValueError(shape)


def logit_value_cases() -> list[dict]:
    """Every logit value class in class 0 of a row, for log_softmax and for cross_entropy with
    the target on and off that class, and for probability targets with no mass on it."""
    out = []
    for name, v in LOGIT_VALUES.items():
        x = [[v] + BASE_ROW[1:], OTHER_ROW]
        out.append(_case(f"cat-ls-{name}", "log_softmax", [f"value:{name}"], input=x))
        for on, t in (("on", 0), ("off", 1)):
            out.append(_case(f"cat-ce-{name}-target-{on}", "cross_entropy", [f"value:{name}"],
                             input=x, target=[t, 2], reduction="none"))
        out.append(_case(f"cat-cep-{name}-zero-mass", "cross_entropy", [f"value:{name}"],
                         input=x, target=[["0", "0.5", "0.5"], ["0.25", "0.25", "0.5"]], reduction="none"))
        out.append(_case(f"cat-nll-{name}", "nll_loss", [f"value:{name}"],
                         input=x, target=[0, 1], reduction="none"))
        out.append(_case(f"cat-bcel-{name}", "binary_cross_entropy_with_logits", [f"value:{name}"],
                         input=[[v, v, v], OTHER_ROW], target=[["0", "1", "0.5"], ["1", "0", "1"]],
                         reduction="none"))
    # structural rows: ties, a dominant class, a huge spread
    for name, row in (("ties", ["3", "3", "3"]), ("dominant", ["30", "0", "0"]), ("spread", ["max", "0", "-max"])):
        out.append(_case(f"cat-ls-{name}", "log_softmax", [f"row:{name}"], input=[row, OTHER_ROW]))
        out.append(_case(f"cat-ce-{name}", "cross_entropy", [f"row:{name}"],
                         input=[row, OTHER_ROW], target=[1, 0], reduction="none"))
    return out


TARGET_CLASSES = {
    "ordinary": ([2, 0, 1, 2], -100),
    "some-ignored": ([2, -100, 1, -100], -100),
    "all-ignored": ([-100, -100, -100, -100], -100),
    "ignore-valid-class": ([2, 1, 1, 0], 1),  # ignore_index equal to a valid class
    "out-of-range-c": ([2, 3, 1, 0], -100),
    "out-of-range-neg1": ([2, -1, 1, 0], -100),
    "out-of-range-neg-c-1": ([2, -4, 1, 0], -100),
}
WEIGHTS = {
    "ones": ["1", "1", "1"],
    "some-zero": ["0", "1", "2"],
    "all-zero": ["0", "0", "0"],
    "large-ratio": ["1024", "1", "0.0009765625"],  # 2**10 : 1 : 2**-10
}
X4 = [BASE_ROW, OTHER_ROW, ["-0.5", "1.5", "0.25"], ["2", "2", "-3"]]
P4 = [["0.25", "0.25", "0.5"], ["0.125", "0.75", "0.125"], ["0.5", "0.25", "0.25"], ["0.0625", "0.0625", "0.875"]]
LOGP4 = [["-0.5", "-1.25", "-2"], ["-3", "-0.25", "-1"], ["-0.125", "-2.5", "-4"], ["-1", "-1", "-0.5"]]


def index_target_cases() -> list[dict]:
    """Target classes x weights x reductions for every op with class-index targets."""
    out = []
    inputs = {"cross_entropy": X4, "nll_loss": LOGP4, "cross_entropy_from_probs": P4}
    short = {"cross_entropy": "ce", "nll_loss": "nll", "cross_entropy_from_probs": "cefp"}
    for op, x in inputs.items():
        for (tname, (targets, ignore)), red in product(TARGET_CLASSES.items(), REDUCTIONS):
            out.append(_case(f"cat-{short[op]}-{tname}-{red}", op, [f"target:{tname}"], input=x,
                             target=targets, ignore_index=ignore, reduction=red))
        for (wname, w), (tname, red) in product(WEIGHTS.items(), [("ordinary", "mean"), ("ordinary", "sum"),
                                                                  ("some-ignored", "mean"), ("ordinary", "none")]):
            targets, ignore = TARGET_CLASSES[tname]
            out.append(_case(f"cat-{short[op]}-w-{wname}-{tname}-{red}", op, [f"weight:{wname}", f"target:{tname}"],
                             input=x, target=targets, ignore_index=ignore, weight=w, reduction=red))
    return out


def smoothing_cases() -> list[dict]:
    out = []
    for (e, ename), (wname, w), red in product((("0.1", "0.1"), ("1", "1")), (("ones", None), ("large-ratio", WEIGHTS["large-ratio"])),
                                               ("mean", "none")):
        fields = {"weight": w} if w else {}
        tags = [f"smoothing:{ename}", f"weight:{wname}"]
        out.append(_case(f"cat-ce-smooth-{ename}-{wname}-{red}", "cross_entropy", tags, input=X4,
                         target=[2, 0, 1, 2], label_smoothing=e, reduction=red, **fields))
        out.append(_case(f"cat-cep-smooth-{ename}-{wname}-{red}", "cross_entropy", tags, input=X4,
                         target=P4, label_smoothing=e, reduction=red, **fields))
        if wname == "ones":
            out.append(_case(f"cat-bcel-smooth-{ename}-{red}", "binary_cross_entropy_with_logits",
                             [f"smoothing:{ename}"], input=X4, target=[["0", "1", "0.5"]] * 4,
                             label_smoothing=e, reduction=red))
    return out


def probability_cases() -> list[dict]:
    """Probability inputs: value classes x targets for BCE, rows of any mass for the
    categorical losses, and values outside [0, 1]."""
    out = []
    for name, v in PROB_VALUES.items():
        out.append(_case(f"cat-bce-{name}", "binary_cross_entropy", [f"p:{name}"],
                         input=[[v, v, v]], target=[["0", "1", "0.5"]], reduction="none"))
        row = [v, "0.25", "0.5"]
        out.append(_case(f"cat-cefp-{name}-target-on", "cross_entropy_from_probs", [f"p:{name}"],
                         input=[row, P4[1]], target=[0, 1], reduction="none"))
        out.append(_case(f"cat-cefp-{name}-target-off", "cross_entropy_from_probs", [f"p:{name}"],
                         input=[row, P4[1]], target=[1, 1], reduction="none"))
        out.append(_case(f"cat-cefp-{name}-soft", "cross_entropy_from_probs", [f"p:{name}"],
                         input=[row, P4[1]], target=[["0", "0.5", "0.5"], P4[0]], reduction="none"))
    for red in REDUCTIONS:
        out.append(_case(f"cat-bce-mixed-{red}", "binary_cross_entropy", ["p:mixed"],
                         input=[["0.25", "0.75", "0.5"], ["0.125", "0.875", "0.0625"]],
                         target=[["0", "1", "0.5"], ["1", "0", "1"]], reduction=red))
        out.append(_case(f"cat-bce-weighted-{red}", "binary_cross_entropy", ["weight:elementwise"],
                         input=[["0.25", "0.75", "0.5"], ["0.125", "0.875", "0.0625"]],
                         target=[["0", "1", "0.5"], ["1", "0", "1"]], weight=[["1", "4", "0.25"], ["2", "0", "1"]],
                         reduction=red))
        # row mass far from 1: renormalizing divides by 1/2 or by 2
        out.append(_case(f"cat-cefp-mass-{red}", "cross_entropy_from_probs", ["p:unnormalised"],
                         input=[["0.125", "0.125", "0.25"], ["0.5", "0.75", "0.75"]], target=[2, 1], reduction=red))
        out.append(_case(f"cat-cefp-mass-soft-{red}", "cross_entropy_from_probs", ["p:unnormalised"],
                         input=[["0.125", "0.125", "0.25"], ["0.5", "0.75", "0.75"]],
                         target=[["0", "0.5", "0.5"], ["0.25", "0.25", "0.5"]], reduction=red))
        # probability-target rows of mass 2 and 1/2 for the softmax loss
        out.append(_case(f"cat-cep-mass-{red}", "cross_entropy", ["target:unnormalised"], input=X4[:2],
                         target=[["1", "0.5", "0.5"], ["0.25", "0", "0.25"]], reduction=red))
    for name, (p, t) in {"p-above-one": ("1.5", "1"), "p-negative": ("-0.25", "0"),
                         "t-above-one": ("0.5", "1.5"), "t-negative": ("0.5", "-0.5")}.items():
        out.append(_case(f"cat-bce-{name}", "binary_cross_entropy", ["domain"], input=[[p, "0.5"]], target=[[t, "1"]]))
        if name.startswith("t-"):
            out.append(_case(f"cat-bcel-{name}", "binary_cross_entropy_with_logits", ["domain"],
                             input=[["0.5", "-1"]], target=[[t, "1"]]))
            out.append(_case(f"cat-mlsm-{name}", "multilabel_soft_margin_loss", ["domain"],
                             input=[["0.5", "-1"]], target=[[t, "1"]]))
        else:
            out.append(_case(f"cat-cefp-{name}", "cross_entropy_from_probs", ["domain"],
                             input=[[p, "0.5", "0.25"]], target=[0]))
    return out


def logit_binary_cases() -> list[dict]:
    out = []
    for (pname, pw), red in product((("zero", "0"), ("one", "1"), ("large", "1024")), ("none", "mean")):
        out.append(_case(f"cat-bcel-pos-weight-{pname}-{red}", "binary_cross_entropy_with_logits",
                         [f"pos_weight:{pname}"], input=X4, target=[["0", "1", "0.5"]] * 4,
                         pos_weight=[pw, "1", pw], reduction=red))
    for red in REDUCTIONS:
        out.append(_case(f"cat-bcel-weighted-{red}", "binary_cross_entropy_with_logits", ["weight:elementwise"],
                         input=X4, target=[["0", "1", "0.5"]] * 4, weight=["1", "4", "0.25"], reduction=red))
        out.append(_case(f"cat-bcel-{red}", "binary_cross_entropy_with_logits", [], input=X4,
                         target=[["0", "1", "0.5"], ["1", "0", "1"], ["0", "0", "1"], ["1", "1", "0"]], reduction=red))
        for wname in ("ones", "large-ratio"):
            out.append(_case(f"cat-mlsm-{wname}-{red}", "multilabel_soft_margin_loss", [f"weight:{wname}"],
                             input=X4, target=[["0", "1", "1"], ["1", "0", "1"], ["0", "0", "1"], ["1", "1", "0"]],
                             weight=WEIGHTS[wname], reduction=red))
    for name, v in [("pos-inf", "inf"), ("neg-inf", "-inf"), ("nan", "nan"), ("max", "max"), ("zero", "0")]:
        out.append(_case(f"cat-mlsm-{name}", "multilabel_soft_margin_loss", [f"value:{name}"],
                         input=[[v, "0.5", "-1"], OTHER_ROW], target=[["1", "0", "1"], ["0", "1", "0.5"]], reduction="none"))
    return out


SHAPES = {"unbatched": (3,), "2d": (2, 3), "k1": (2, 3, 2), "k2": (1, 3, 2, 2), "k3": (1, 3, 2, 1, 2),
          "empty": (0, 3), "one-class": (4, 1)}


def shape_cases() -> list[dict]:
    out = []
    for (sname, shape), red in product(SHAPES.items(), ("none", "mean")):
        extra = {"shape": list(shape)} if 0 in shape else {}
        classes = shape[0] if len(shape) == 1 else shape[1]
        x = _filled(shape)
        out.append(_case(f"cat-shape-ce-{sname}-{red}", "cross_entropy", [f"shape:{sname}"], input=x,
                         target=_index_targets(shape, classes), reduction=red, **extra))
        out.append(_case(f"cat-shape-nll-{sname}-{red}", "nll_loss", [f"shape:{sname}"],
                         input=_filled(shape, 3), target=_index_targets(shape, classes), reduction=red, **extra))
        out.append(_case(f"cat-shape-bcel-{sname}-{red}", "binary_cross_entropy_with_logits", [f"shape:{sname}"],
                         input=x, target=_filled(shape, 1, "binary"), reduction=red, **extra))
        out.append(_case(f"cat-shape-bce-{sname}-{red}", "binary_cross_entropy", [f"shape:{sname}"],
                         input=_filled(shape, 2, "prob"), target=_filled(shape, 1, "binary"), reduction=red, **extra))
        if red == "none":
            out.append(_case(f"cat-shape-ls-{sname}", "log_softmax", [f"shape:{sname}"], input=x, **extra))
        if len(shape) == 2 and 0 not in shape:
            out.append(_case(f"cat-shape-cep-{sname}-{red}", "cross_entropy", [f"shape:{sname}"], input=x,
                             target=_prob_rows(shape), reduction=red))
            out.append(_case(f"cat-shape-mlsm-{sname}-{red}", "multilabel_soft_margin_loss", [f"shape:{sname}"],
                             input=x, target=_filled(shape, 1, "binary"), reduction=red))
    return out


def catalog_tables() -> list[dict]:
    return (logit_value_cases() + index_target_cases() + smoothing_cases() + probability_cases()
            + logit_binary_cases() + shape_cases())


def default_specs() -> list[CaseSpec]:
    """The default suite: the hand-written cases and the systematic catalog."""
    return load_case_files([HAND_WRITTEN]) + parse_cases(catalog_tables(), "catalog")
