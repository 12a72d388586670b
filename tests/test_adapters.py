"""The adapter contract's framework-free parts: the registry, the layout helpers (prepare and
restore) and what an API entry cannot express."""
import numpy as np
import pytest

from conformance.adapters import BUILTIN, FRAMEWORKS, AdapterEntry, missing_module, registry
from conformance.adapters.base import Api, prepare, restore, to_bits, unsupported_reason, view
from reference.golden import load_suite

from .conftest import ROOT

CASES = {c.id: c for c in load_suite(ROOT / "cases" / "golden" / "default")}


def api(op="cross_entropy", **kw):
    return Api("test.api", op, "None", **kw)


def test_registry_names_the_builtin_frameworks_without_importing_them():
    assert FRAMEWORKS[:3] == ("torch", "tensorflow", "jax")
    assert all(isinstance(e, AdapterEntry) for e in registry().values())
    assert {e.name for e in BUILTIN} <= set(registry())
    assert missing_module("torch") in (None, "torch")


def test_prepare_moves_the_class_axis_last_and_restore_moves_it_back():
    case = CASES["ce-kdim"]  # (N, C, d1) logits, index targets (N, d1)
    arrays = case.arrays()
    x = view(arrays["input.float32"], "float32")
    last = prepare(api(targets=("index",), class_axis="last"), case, arrays, "float32")
    assert last.x.shape == (x.shape[0], x.shape[2], x.shape[1])
    assert np.array_equal(last.x, np.moveaxis(x, 1, -1)) and last.target.shape == arrays["target"].shape
    back = restore(api(targets=("index",), class_axis="last"), case, "grad", last.x)
    assert np.array_equal(back, x)
    first = prepare(api(targets=("index",)), case, arrays, "float32")
    assert np.array_equal(first.x, x)


def test_prepare_adds_a_batch_axis_where_an_api_takes_no_unbatched_input():
    case = CASES["ce-unbatched"]
    arrays = case.arrays()
    batched = api(targets=("index",), unbatched=False)
    inputs = prepare(batched, case, arrays, "float32")
    assert inputs.x.shape == (1, *case.entry["input_shape"]) and inputs.target.shape == (1,)
    assert restore(batched, case, "grad", inputs.x).shape == tuple(case.entry["input_shape"])
    # a reduced loss keeps its shape: the batch axis only comes off per-position outputs
    assert restore(batched, case, "loss", np.float32(1.5)).shape == ()


def test_prepare_masks_ignored_positions_and_gives_keras_sample_weights():
    case = CASES["cat-ce-w-large-ratio-some-ignored-mean"]
    arrays = case.arrays()
    inputs = prepare(api(targets=("index",), params=frozenset({"weight", "ignore_index"}), weight_as="sample_weight"),
                     case, arrays, "float64")
    target, w = arrays["target"], view(arrays["weight.float64"], "float64")
    assert np.array_equal(inputs.mask, target != case.params["ignore_index"])
    assert np.array_equal(inputs.weight[inputs.mask], w[target[inputs.mask]])  # w[y] per position
    nothing_ignored = prepare(api(targets=("index",), params=frozenset({"ignore_index"})), CASES["ce-mean"],
                              CASES["ce-mean"].arrays(), "float32")
    assert nothing_ignored.mask is None


def test_unsupported_reasons_name_what_the_api_lacks():
    assert "no weight parameter" in unsupported_reason(api(targets=("index",)), CASES["ce-weighted-mean"])
    assert "takes no probs targets" in unsupported_reason(api(targets=("index",)), CASES["cep-mean"])
    assert "cannot ignore" in unsupported_reason(api(targets=("index",)), CASES["ce-ignore-some"])
    assert "not log_softmax" in unsupported_reason(api(), CASES["ls-ordinary"])
    assert unsupported_reason(api("log_softmax"), CASES["ls-ordinary"]) is None


def test_to_bits_keeps_bit_patterns_and_refuses_other_dtypes():
    import ml_dtypes
    values = np.array([1.5, -0.0, np.inf], dtype=ml_dtypes.bfloat16)
    name, bits = to_bits(values)
    assert name == "bfloat16" and bits.dtype == np.uint16 and bits.tolist() == [0x3FC0, 0x8000, 0x7F80]
    with pytest.raises(TypeError):
        to_bits(np.array([1], dtype=np.int32))


def _distribution(folder, name: str, entry_points: str) -> None:
    """An installed distribution (its .dist-info, as pip writes it) on a folder of sys.path."""
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[xent_conformance.adapters]\n{entry_points}\n")


def test_a_plugin_that_does_not_load_is_reported_and_the_rest_are_listed(tmp_path):
    import os
    import subprocess
    import sys
    _distribution(tmp_path, "broken_plugin", "broken = no_such_module_here:ENTRY")
    (tmp_path / "not_an_entry.py").write_text("ENTRY = 42\n")
    _distribution(tmp_path, "wrong_plugin", "wrong = not_an_entry:ENTRY")
    code = ("from conformance.adapters import registry, not_loadable\n"
            "print(sorted(registry()))\nfor name, why in sorted(not_loadable().items()): print(name, '|', why)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed, *broken = done.stdout.splitlines()
    assert set(FRAMEWORKS) <= set(eval(listed)) and "broken" not in listed and "wrong" not in listed
    assert broken[0].startswith("broken | no_such_module_here:ENTRY: ModuleNotFoundError")
    assert broken[1] == "wrong | not_an_entry:ENTRY is a int, not a conformance.adapters.AdapterEntry"


def test_keras_on_another_backend_needs_a_process_of_its_own():
    import subprocess
    import sys
    code = ("import os\nos.environ['KERAS_BACKEND'] = 'numpy'\nimport keras\n"
            "import conformance.adapters.keras_torch\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if "No module named" in done.stderr:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    assert done.returncode != 0 and "keras runs on 'numpy' in this process, not 'torch'" in done.stderr, done.stderr


def test_keras_backends_share_one_api_table():
    from conformance.adapters import keras_losses
    names = [a.name for a in keras_losses.KERAS_APIS]
    assert len(names) == len(set(names)) and all(n.startswith("keras.losses.") for n in names)
    assert {"keras-jax", "keras-torch"} <= set(registry())
