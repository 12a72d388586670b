"""The levels the default catalog crosses, and helpers to write case tables.

In the manner of Berkeley TestFloat's operand levels: value classes of logits and
probabilities (each resolved per dtype), target classes, weights, reductions and shapes.
Each op's module (reference/ops/) crosses the levels that matter to it; where semantics
are contested, the inputs are chosen so the competing variants give clearly different
answers: strongly unequal weights, rows whose mass is far from 1, zero and one
probabilities. Cases are the same tables a user's TOML file holds and go through the same
validation. Numbers are strings (decimal, hex or an edge name resolved per dtype).
"""
from __future__ import annotations

from itertools import product

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


def case(case_id: str, op: str, tags: list[str], **fields) -> dict:
    return {"id": case_id, "op": op, "tags": ["catalog"] + tags, **fields}


def filled(shape: tuple[int, ...], k0: int = 0, kind: str = "logit") -> list:
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


def index_targets(shape: tuple[int, ...], classes: int) -> list | int:
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


def prob_rows(shape: tuple[int, ...]) -> list:
    """Probability targets of a (N, C, ...) shape whose class rows sum to 1 (C = 3: 1/4, 1/4, 1/2 rotated)."""
    def row_for(k, classes):
        base = ["0.25", "0.25", "0.5"] if classes == 3 else ["1"] + ["0"] * (classes - 1)
        return [base[(i + k) % classes] for i in range(classes)]
    if len(shape) == 2:
        return [row_for(n, shape[1]) for n in range(shape[0])]
    raise ValueError(shape)


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


SHAPES = {"unbatched": (3,), "2d": (2, 3), "k1": (2, 3, 2), "k2": (1, 3, 2, 2), "k3": (1, 3, 2, 1, 2),
          "empty": (0, 3), "one-class": (4, 1)}


def value_row(v: str) -> list:
    """A value class in class 0 of an ordinary row, above a second ordinary row."""
    return [[v] + BASE_ROW[1:], OTHER_ROW]


def target_class_tables(op: str, short: str, x: list) -> list[dict]:
    """Target classes x reductions, and weights x (target class, reduction), for an op with
    class-index targets."""
    out = []
    for (tname, (targets, ignore)), red in product(TARGET_CLASSES.items(), REDUCTIONS):
        out.append(case(f"cat-{short}-{tname}-{red}", op, [f"target:{tname}"], input=x,
                        target=targets, ignore_index=ignore, reduction=red))
    for (wname, w), (tname, red) in product(WEIGHTS.items(), [("ordinary", "mean"), ("ordinary", "sum"),
                                                              ("some-ignored", "mean"), ("ordinary", "none")]):
        targets, ignore = TARGET_CLASSES[tname]
        out.append(case(f"cat-{short}-w-{wname}-{tname}-{red}", op, [f"weight:{wname}", f"target:{tname}"],
                        input=x, target=targets, ignore_index=ignore, weight=w, reduction=red))
    return out


def shape_tables(short: str, build, reductions=("none", "mean"), ranks=None) -> list[dict]:
    """One case per shape (and reduction): build(shape, extra fields) gives the op's fields."""
    out = []
    for (sname, shape), red in product(SHAPES.items(), reductions):
        if ranks is not None and (len(shape) not in ranks or 0 in shape):
            continue
        extra = {"shape": list(shape)} if 0 in shape else {}
        suffix = f"-{red}" if len(reductions) > 1 else ""
        fields = build(shape)
        op = fields.pop("op")
        if len(reductions) > 1:
            fields["reduction"] = red
        out.append(case(f"cat-shape-{short}-{sname}{suffix}", op, [f"shape:{sname}"], **fields, **extra))
    return out


def classes_of(shape: tuple[int, ...]) -> int:
    return shape[0] if len(shape) == 1 else shape[1]


# structural rows: ties, a dominant class, a huge spread
STRUCTURAL_ROWS = {"ties": ["3", "3", "3"], "dominant": ["30", "0", "0"], "spread": ["max", "0", "-max"]}
BINARY_TARGETS = [["0", "1", "0.5"], ["1", "0", "1"]]
# out-of-range probabilities and targets: (input, target) of a domain-error case
DOMAIN = {"p-above-one": ("1.5", "1"), "p-negative": ("-0.25", "0"),
          "t-above-one": ("0.5", "1.5"), "t-negative": ("0.5", "-0.5")}
