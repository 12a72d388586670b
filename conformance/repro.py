"""Reproducers: for each diverging task, a short self-contained Python script that rebuilds
the case's exact inputs from their bit patterns, calls the framework's documented API as the
adapter did, and prints the framework's answer beside the reference's.

The framework-specific parts (imports, how a tensor is made from bits, how the loss and its
gradient are computed) come from the adapter's `recipe`, sent by the worker when it
starts, so the runner assembles scripts without importing any framework. A row keeps its
script in the `reproducer` column; `xent run` also writes it under OUT/repro/.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np

from reference.formats import FORMATS, to_float64
from reference.golden import OUTPUTS, GoldenCase, atomic_write_bytes, npz_bytes

from .adapters.base import Api, api_layout, prepare

FOLDER = "repro"  # under a run's folder
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _slug(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_")[:80] or "_"


def file_name(row) -> str:
    """The reproducer's path relative to a run's folder:
    repro/<framework>/<case>--<api>--<dtype>--<device>[--<mode>][--<runtime>].py, the mode named
    unless it is the framework's default."""
    from .adapters import default_mode
    runtime = "" if row["runtime"] in ("local", "") else f"--{_slug(row['runtime'])}"
    mode = "" if row.get("mode", "") in ("", default_mode(row["framework"])) else f"--{_slug(row['mode'])}"
    return (f"{FOLDER}/{_slug(row['framework'])}/{_slug(row['case_id'])}--{_slug(row['api'])}--"
            f"{row['dtype']}--{_slug(row['device'])}{mode}{runtime}.py")


# a reproducer holds every input value inline up to this many input elements; past it (an LLM
# vocabulary) the arrays go to a data file beside the script, named by its content
MAX_ELEMENTS = 16384
DATA_LINE = re.compile(r'^DATA_FILE = "([0-9a-f]{16}\.npz)"$', re.M)
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


def _float_input(name: str, values: np.ndarray | None, dtype: str, data: dict | None = None) -> str:
    """The line that makes one float input; with `data`, its bits go there, not into the text."""
    if values is None:
        return f"{name} = None\n"
    bits = np.ascontiguousarray(values).view(FORMATS[dtype].storage)
    if data is not None:
        data[name] = bits
        return f"{name} = tensor(DATA[{name!r}], {dtype!r}, {tuple(values.shape)})\n"
    return (f"{name} = tensor({_bits_literal(bits)}, {dtype!r}, {tuple(values.shape)}){_values_comment(bits, dtype)}\n")


def _int_input(name: str, values: np.ndarray | None, data: dict | None = None) -> str:
    if values is None:
        return f"{name} = None\n"
    if data is not None:
        data[name] = np.ascontiguousarray(values)
        return f"{name} = integers(DATA[{name!r}], {str(values.dtype)!r}, {tuple(values.shape)})\n"
    flat = np.asarray(values).reshape(-1).tolist()
    return f"{name} = integers({flat!r}, {str(values.dtype)!r}, {tuple(values.shape)})\n"


def data_name(data: dict[str, np.ndarray]) -> str:
    """A data file's name: the first 16 hex digits of its content's sha256 (tasks with the same
    arrays in the same layout share one file)."""
    return hashlib.sha256(npz_bytes(data)).hexdigest()[:16] + ".npz"


def write_data(data: dict[str, np.ndarray], out_dir: Path, framework: str) -> Path:
    """A large reproducer's arrays, beside its script (atomic; once per content)."""
    path = Path(out_dir) / FOLDER / _slug(framework) / data_name(data)
    if not path.exists():
        atomic_write_bytes(path, npz_bytes(data))
    return path


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
    want = as_float(np.array(expected[0], dtype=UNSIGNED[DTYPE]).reshape(-1), DTYPE)
    if got_bits.shape != tuple(expected[1]) or got_dtype != DTYPE:
        print(f"  {FRAMEWORK}: {got_dtype} of shape {got_bits.shape}; reference: {DTYPE} of shape {tuple(expected[1])}")
        if got.size != want.size:
            values = ", ".join(f"{float(v)!r} ({v.hex()})" for v in got[:24])
            print(f"  {FRAMEWORK} returned {values}{', ...' if got.size > 24 else ''}")
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


def script(recipe, api: Api, case: GoldenCase, arrays: dict, dtype: str, device_id: str,
           rows: list, mode: str = "program") -> tuple[str, dict[str, np.ndarray]]:
    """The reproducer of one task (its loss and grad rows): the script's text, and for a case
    above MAX_ELEMENTS input elements the arrays it loads from its data file (write_data), else {}.
    `recipe`: a protocol.Recipe; `mode`: the mode's wrapper as source over `program` (ModeInfo.repro)."""
    large = int(np.prod(case.entry["input_shape"])) > MAX_ELEMENTS
    data: dict[str, np.ndarray] | None = {} if large else None
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
            if data is not None:
                data[f"expected.{output}"] = np.ascontiguousarray(value)
                parts.append(f"    {output!r}: (DATA[{f'expected.{output}'!r}], {tuple(value.shape)}),")
            else:
                parts.append(f"    {output!r}: ({_bits_literal(value)}, {tuple(value.shape)}),")
        expected = "{\n" + "\n".join(parts) + "\n}"
    mask = None if c.mask is None else np.asarray(c.mask)
    target = c.target
    target_line = (_int_input("target", target, data) if target is None or target.dtype.kind in "iub"
                   else _float_input("target", target, dtype, data))
    inputs = "".join([_float_input("x", c.x, dtype, data), target_line,
                      _float_input("weight", c.weight, dtype, data), _float_input("pos_weight", c.pos_weight, dtype, data),
                      _int_input("mask", mask, data)])
    where = load = ""
    if data is not None:  # the arrays are known now: the script names its data file by their content
        name = data_name(data)
        where = (f"The case is large ({int(np.prod(case.entry['input_shape']))} input elements): its arrays are in\n"
                 f"{name}, beside this file; keep the two together.\n")
        load = ("import os\n\n" f'DATA_FILE = "{name}"\n'
                "DATA = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), DATA_FILE), allow_pickle=False)\n")
    header = textwrap.dedent(f'''\
        """Reproducer (xent-conformance): case {case.id}, {first.api}, {dtype}, device {first.device}, mode {first.mode}.

        {{recorded}}
        {{cause}}

        Run it where {first.framework} is installed (python this_file.py): it rebuilds the case's
        inputs from their bit patterns, calls {first.api} as the conformance run did,
        and prints each output beside the correctly rounded reference.
        {{where}}"""
        ''').replace("{recorded}", recorded_text).replace("{cause}", cause).replace("{where}", where)
    # the docstring must survive any text a detail or a reason holds
    header = '"""' + header[3:-4].replace("\\", "\\\\").replace('"""', "'''") + '"""\n'
    text = "".join([
        header,
        "import re\n\nimport numpy as np\n\n",
        f"FRAMEWORK = {first.framework!r}\nDTYPE = {dtype!r}\nDEVICE = {device_id!r}\n",
        "UNSIGNED = {" + ", ".join(f"{k!r}: {v}" for k, v in _UNSIGNED.items()) + "}\n",
        recipe.setup, "\n", load,
        f"# the inputs in the layout {first.api} takes, exactly: bit patterns of {dtype}\n",
        inputs,
        f"ignore_index = {c.ignore_index!r}\nlabel_smoothing = {c.label_smoothing!r}\n"
        f"reduction = {c.reduction!r}\ndtype = {dtype!r}\n\n",
        (recipe.helpers + "\n\n") if recipe.helpers else "",
        f"# the reference, correctly rounded to {dtype}, in the same layout: (bit patterns, shape)\n",
        f"EXPECTED = {expected}\nEXPECTED_ERROR = {case.expect_error!r}\nRECORDED = {recorded!r}\n\n",
        "loss = grad = failure = None\ntry:\n",
        _indent(recipe.run.replace("{call}", recipe.call).replace("{mode}", mode)),
        "except Exception as error:  # the framework's own error is the observation\n    failure = error\n",
        SHOW,
    ])
    return text, data or {}


def write_files(df, out_dir: Path, source: Path | None = None) -> int:
    """Each distinct reproducer of a results frame as a file under OUT/repro/ (atomic writes).
    A large case's script needs its data file: written by the run beside it, or copied from the
    run's folder `source` when the scripts go elsewhere; a script whose data file is nowhere is
    not written (it could not run), and the count says how many were written."""
    if "reproducer" not in df.columns:
        return 0
    files = {}
    columns = ["runtime", "framework", "mode", "case_id", "api", "dtype", "device", "reproducer"]
    for row in df.loc[df["reproducer"] != "", columns].to_dict("records"):
        files.setdefault(file_name(row), row["reproducer"])  # a task's loss and grad rows share one
    written = 0
    for name, text in files.items():
        target = Path(out_dir) / name
        needs = DATA_LINE.search(text)
        if needs:
            data = target.with_name(needs.group(1))
            origin = Path(source) / name if source is not None else None
            if not data.exists() and origin is not None and origin.with_name(needs.group(1)).exists():
                data.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin.with_name(needs.group(1)), data)
            if not data.exists():
                continue
        atomic_write_bytes(target, text.encode("utf-8"))
        written += 1
    return written


def has_file(out_dir: Path, row) -> bool:
    """Whether a row's reproducer script was written under a run's folder."""
    return bool(row.get("reproducer")) and (Path(out_dir) / file_name(row)).exists()
