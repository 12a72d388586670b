"""Reproducers: for each diverging task, a short self-contained Python script that rebuilds
the case's exact inputs from their bit patterns, calls the framework's documented API as the
adapter did, and prints the framework's answer beside the reference's.

The framework-specific parts (imports, how a tensor is made from bits, how the loss and its
gradient are computed) come from the adapter's `recipe`, sent by the worker when it
starts, so the runner assembles scripts without importing any framework. A row keeps its
script in the `reproducer` column; `xent run` also writes it under OUT/repro/.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np

from reference.formats import FORMATS, to_float64
from reference.golden import OUTPUTS, GoldenCase, atomic_write_bytes

from .adapters.base import Api, api_layout, prepare

FOLDER = "repro"  # under a run's folder
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _slug(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_")[:80] or "_"


def file_name(row) -> str:
    """The reproducer's path relative to a run's folder: repro/<framework>/<case>--<api>--<dtype>--<device>[--<runtime>].py"""
    runtime = "" if row["runtime"] in ("local", "") else f"--{_slug(row['runtime'])}"
    return (f"{FOLDER}/{_slug(row['framework'])}/{_slug(row['case_id'])}--{_slug(row['api'])}--"
            f"{row['dtype']}--{_slug(row['device'])}{runtime}.py")


# a reproducer holds every input value; past this size a run writes none (a 1000 x 1000 case
# would make a script of tens of MB)
MAX_ELEMENTS = 16384
_UNSIGNED = {"float64": "np.uint64", "float32": "np.uint32", "float16": "np.uint16", "bfloat16": "np.uint16"}


def _bits_literal(bits: np.ndarray) -> str:
    width = bits.dtype.itemsize * 2
    items = [f"0x{int(b):0{width}x}" for b in np.asarray(bits).reshape(-1)]
    lines = [", ".join(items[i:i + 8]) for i in range(0, len(items), 8)]
    return "[" + ",\n    ".join(lines) + "]"


def _values_comment(bits: np.ndarray, dtype: str) -> str:
    if bits.size > 16:
        return ""
    return f"  # {[float(v) for v in to_float64(np.asarray(bits), FORMATS[dtype]).reshape(-1)]}"


def _float_input(name: str, values: np.ndarray | None, dtype: str) -> str:
    if values is None:
        return f"{name} = None\n"
    bits = np.ascontiguousarray(values).view(FORMATS[dtype].storage)
    return (f"{name} = tensor({_bits_literal(bits)}, {dtype!r}, {tuple(values.shape)}){_values_comment(bits, dtype)}\n")


def _int_input(name: str, values: np.ndarray | None) -> str:
    if values is None:
        return f"{name} = None\n"
    flat = np.asarray(values).reshape(-1).tolist()
    return f"{name} = integers({flat!r}, {str(values.dtype)!r}, {tuple(values.shape)})\n"


def _indent(code: str, prefix: str = "    ") -> str:
    return "".join(prefix + line if line.strip() else line for line in code.splitlines(keepends=True))


SHOW = '''
def as_float(bits, dtype):
    bits = np.asarray(bits)
    if dtype == "bfloat16":
        return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return bits.view({"float64": np.float64, "float32": np.float32, "float16": np.float16}[dtype]).astype(np.float64)


def show(name, value, expected):
    """Print one output beside the reference; return what this run found, in words."""
    print(f"{name}:")
    if expected is None:
        print(f"  reference: an error ({EXPECTED_ERROR})")
    if value is None or isinstance(value, BaseException):
        error = value if value is not None else failure
        if error is None:
            print(f"  {FRAMEWORK}: returned no value")
            return "no value"
        print(f"  {FRAMEWORK}: raised {type(error).__name__}: {' '.join(str(error).split())[:300]}")
        return "raised, as the reference expects" if expected is None else f"raised {type(error).__name__}"
    got_dtype = re.search(r"bfloat16|float16|float32|float64", str(value.dtype)).group(0)
    got_bits = bits_of(value)
    got = as_float(got_bits, got_dtype).reshape(-1)
    if expected is None:
        values = ", ".join(f"{float(v)!r} ({v.hex()})" for v in got[:24])
        print(f"  {FRAMEWORK}: no error; returned {values}{', ...' if got.size > 24 else ''}")
        return "no error where the reference expects one"
    want = as_float(np.array(expected[0], dtype=UNSIGNED[DTYPE]), DTYPE)
    if got_bits.shape != tuple(expected[1]) or got_dtype != DTYPE:
        print(f"  {FRAMEWORK}: {got_dtype} of shape {got_bits.shape}; reference: {DTYPE} of shape {tuple(expected[1])}")
        if got.size != want.size:
            return "a different shape"
    differs = (got != want) & ~(np.isnan(got) & np.isnan(want))
    shown = range(got.size) if got.size <= 24 else np.flatnonzero(differs)[:12]
    for i in shown:
        where = np.unravel_index(i, tuple(expected[1])) if expected[1] else ()
        mark = "   <- differs" if differs[i] else ""
        print(f"  {list(map(int, where))}  {FRAMEWORK}: {float(got[i])!r:>24} ({got[i].hex()})   "
              f"reference: {float(want[i])!r:>24} ({want[i].hex()}){mark}")
    special = int((differs & ~(np.isfinite(got) & np.isfinite(want))).sum())
    print(f"  {int(differs.sum())} of {got.size} elements differ from the correctly rounded reference "
          f"({special} of them at a special value: nan or inf on one side)")
    return f"{int(differs.sum())} of {got.size} elements differ ({special} special)" if differs.any() else "identical bits"


found = {name: show(name, value, EXPECTED and EXPECTED[name]) for name, value in (("loss", loss), ("grad", grad))}
print()
print("recorded by the conformance run:", RECORDED)
print("this run:", "; ".join(f"{name}: {text}" for name, text in found.items()))
'''


def _fill(text: str) -> str:
    return textwrap.fill(text, 96, break_long_words=False, break_on_hyphens=False)


def script(recipe: dict, api: Api, case: GoldenCase, arrays: dict, dtype: str, device_id: str,
           rows: list) -> str:
    """The reproducer of one task (its loss and grad rows), or "" for a case too large to inline."""
    if int(np.prod(case.entry["input_shape"])) > MAX_ELEMENTS:
        return ""
    c = prepare(api, case, arrays, dtype)
    first = rows[0]
    recorded = "; ".join(f"{r.output}: {r.verdict} ({r.detail})" for r in rows)
    known = sorted({(r.known, r.known_reason, r.evidence) for r in rows if r.known})
    cause = "\n".join(_fill(f"Known cause `{k}`: {reason}") + "\n" + _fill(f"Evidence: {evidence}")
                      for k, reason, evidence in known) or "Not in the expectations file: an unexpected divergence."
    recorded_text = _fill(f"Recorded with {first.framework} {first.framework_version}: {recorded}")
    if case.expect_error:
        expected = "None"
    else:
        parts = []
        for output in OUTPUTS:
            value = api_layout(api, case, output, arrays[f"expected.{dtype}.canonical.{output}"])
            parts.append(f"    {output!r}: ({_bits_literal(value)}, {tuple(value.shape)}),")
        expected = "{\n" + "\n".join(parts) + "\n}"
    mask = None if c.mask is None else np.asarray(c.mask)
    target = c.target
    target_line = (_int_input("target", target) if target is None or target.dtype.kind in "iub"
                   else _float_input("target", target, dtype))
    header = textwrap.dedent(f'''\
        """Reproducer (xent-conformance): case {case.id}, {first.api}, {dtype}, device {first.device}.

        {{recorded}}
        {{cause}}

        Run it where {first.framework} is installed (python this_file.py): it rebuilds the case's
        inputs from their bit patterns, calls {first.api} as the conformance run did,
        and prints each output beside the correctly rounded reference.
        """
        ''').replace("{recorded}", recorded_text).replace("{cause}", cause)
    # the docstring must survive any text a detail or a reason holds
    header = '"""' + header[3:-4].replace("\\", "\\\\").replace('"""', "'''") + '"""\n'
    return "".join([
        header,
        "import re\n\nimport numpy as np\n\n",
        f"FRAMEWORK = {first.framework!r}\nDTYPE = {dtype!r}\nDEVICE = {device_id!r}\n",
        "UNSIGNED = {" + ", ".join(f"{k!r}: {v}" for k, v in _UNSIGNED.items()) + "}\n",
        recipe["setup"], "\n",
        f"# the inputs in the layout {first.api} takes, exactly: bit patterns of {dtype}\n",
        _float_input("x", c.x, dtype), target_line,
        _float_input("weight", c.weight, dtype), _float_input("pos_weight", c.pos_weight, dtype),
        _int_input("mask", mask),
        f"ignore_index = {c.ignore_index!r}\nlabel_smoothing = {c.label_smoothing!r}\n"
        f"reduction = {c.reduction!r}\ndtype = {dtype!r}\n\n",
        (recipe["helpers"] + "\n\n") if recipe["helpers"] else "",
        f"# the reference, correctly rounded to {dtype}, in the same layout: (bit patterns, shape)\n",
        f"EXPECTED = {expected}\nEXPECTED_ERROR = {case.expect_error!r}\nRECORDED = {recorded!r}\n\n",
        "loss = grad = failure = None\ntry:\n",
        _indent(recipe["run"].replace("{call}", recipe["call"])),
        "except Exception as error:  # the framework's own error is the observation\n    failure = error\n",
        SHOW,
    ])


def write_files(df, out_dir: Path) -> int:
    """Each distinct reproducer of a results frame as a file under OUT/repro/ (atomic writes)."""
    if "reproducer" not in df.columns:
        return 0
    files = {}
    columns = ["runtime", "framework", "case_id", "api", "dtype", "device", "reproducer"]
    for row in df.loc[df["reproducer"] != "", columns].to_dict("records"):
        files.setdefault(file_name(row), row["reproducer"])  # a task's loss and grad rows share one
    for name, text in files.items():
        atomic_write_bytes(Path(out_dir) / name, text.encode("utf-8"))
    return len(files)
