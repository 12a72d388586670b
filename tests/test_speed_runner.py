"""The runner's thin parts: the binary reply transport (a JSON line, then raw bytes), the case
cache shared by framework threads, and a worker decoding only its inputs."""
from __future__ import annotations

import io
import json
import queue
from dataclasses import fields

import numpy as np

from conformance import runner, worker
from conformance.adapters.base import Api, prepare
from conformance.protocol import Output, Reply
from reference.casefile import parse_cases
from reference.golden import OUTPUTS, generate, load_suite

from .conftest import ROOT


def suite(tmp_path):
    specs = parse_cases([{"id": "w", "op": "cross_entropy", "input": [["0.5", "-1.25", "2"], ["3", "1", "-2.5"]],
                          "target": [2, 0], "weight": ["1", "4", "0.25"], "dtypes": ["float32", "bfloat16"]}], "test")
    return generate(specs, tmp_path / "golden", "user").parent


def test_replies_carry_raw_bits_that_the_runner_reads_back(tmp_path):
    """Bits with newline bytes in them, an exception and an unsupported output, in one stream."""
    values = np.array([[1.0, float.fromhex("0x1.0000000000a0ap+0")], [-np.inf, np.nan]])  # 0x0a bytes
    assert b"\n" in values.tobytes()
    stream = io.BytesIO()

    def reply(message, data=()):  # as worker.main writes
        stream.write(json.dumps(message).encode() + b"\n")
        for chunk in data:
            stream.write(chunk)

    reply({"hello": {"framework": "f"}})
    unsupported = Output("unsupported", message="no")
    for out in ({"loss": values[0, 0], "grad": values}, {"loss": ValueError("bad\nline"), "grad": unsupported}):
        answer = Reply({o: worker._encode(np.asarray(out[o]) if isinstance(out[o], float) else out[o]) for o in OUTPUTS})
        reply(answer.to_json(), [answer.outputs[o].data for o in OUTPUTS])
    stream.seek(0)
    replies = queue.Queue()
    runner.Worker._read(stream, replies)
    assert replies.get()["hello"] == {"framework": "f"}
    first = replies.get()
    loss, grad = (runner._observed(first.outputs[o], False) for o in OUTPUTS)
    assert loss.status == grad.status == "ok" and grad.dtype == "float64"
    assert grad.bits.tobytes() == values.tobytes() and grad.bits.shape == (2, 2) and loss.bits.shape == ()
    second = replies.get()
    assert runner._observed(second.outputs["loss"], False).error_type == "ValueError"
    assert runner._observed(second.outputs["grad"], False).status == "unsupported"
    assert replies.get() is None  # the end of the stream: the worker is gone


def test_a_reply_cut_off_in_its_bytes_is_a_gone_worker():
    stream = io.BytesIO(json.dumps({"outputs": {"loss": {"status": "ok", "dtype": "float32", "shape": [2], "nbytes": 8},
                                                "grad": {"status": "raised", "type": "E", "message": ""}}}).encode()
                        + b"\n" + b"\x00" * 5)
    replies = queue.Queue()
    runner.Worker._read(stream, replies)
    assert replies.get() is None and replies.empty()


def test_the_case_cache_derives_each_case_once_and_lets_it_go_when_every_thread_took_it(tmp_path):
    (case,) = load_suite(suite(tmp_path))
    cache = runner.CaseCache(True, {"bfloat16"}, users=2)
    cache.prefetch(case)  # while the workers start: not a taking
    first = cache.take(case)
    assert set(first.arrays) == {n for n in case.arrays() if "float32" not in n}  # the run's dtypes only
    inputs, prepared, features = first.for_dtype("bfloat16")
    assert "canonical" in prepared["loss"].refs and inputs.startswith("input(2, 3)=") and "op:" in features
    assert cache.take(case) is first and not cache.store  # both threads took it: dropped
    assert cache.take(case) is not first  # a third asks again: derived again
    off = runner.CaseCache(False)
    off.prefetch(case)
    assert not off.store and off.take(case) is not off.take(case)


def test_a_worker_decodes_only_what_the_layouts_read():
    """Every case of the default suite, every dtype and layout: the inputs the worker decodes
    prepare exactly what the whole file prepares."""
    layouts = [Api("a", "x", "x", class_axis=axis, unbatched=unbatched, weight_as=weight_as)
               for axis in ("first", "last") for unbatched in (True, False)
               for weight_as in ("weight", "sample_weight")]
    for case in load_suite(ROOT / "cases" / "golden" / "default"):
        whole = case.arrays()
        for dtype in case.dtypes:
            decoded = worker.inputs(case, {dtype})
            assert not any(name.startswith(("expected.", "cond.")) for name in decoded)
            assert all(dtype in name or name == "target" for name in decoded)
            for api in layouts:
                a, b = prepare(api, case, decoded, dtype), prepare(api, case, whole, dtype)
                for field in fields(a):
                    x, y = (np.asarray(getattr(v, field.name)) for v in (a, b))
                    assert (x.dtype, x.shape, x.tobytes()) == (y.dtype, y.shape, y.tobytes()), (case.id, field.name)
