"""The report builder on a synthetic results frame."""
import pandas as pd

from conformance import report
from conformance.results import COLUMNS, ResultRow


def row(**kw):
    base = dict(suite="default", suite_hash="s" * 64, case_id="c1", case_sha256="0" * 64, op="cross_entropy", features="op:cross_entropy,weight", tags="",
                params="{}", framework="torch", framework_version="2.13", versions="{}", runtime="local",
                api="torch.f", device="cpu", device_name="a CPU", dtype="float32", output="loss",
                verdict="conforms", detail="within tolerance", variants="", expected_kind="finite",
                observed_kind="finite", max_ulp=0.5, max_abs_err=1e-8, max_tol_ratio=0.25, median_ulp=0.25,
                expected_values="1.0", observed_values="1.0", inputs="input=[1.0]", known="", known_reason="",
                evidence="", accepted_variant="", observed_dtype="float32", observed_shape="",
                observed_bits=b"\x00\x00\x80?", error_type="", error_message="", domain_errors="")
    base.update(kw)
    return ResultRow(**base)


def frame():
    return report.results_frame([
        row(),
        row(dtype="float16", max_ulp=2.0, max_tol_ratio=0.5),
        row(case_id="c2", features="op:cross_entropy,all_ignored", verdict="variant", detail="empty_mean_zero",
            framework="tensorflow", api="keras.X", known="k1", known_reason="Keras <divides safely>",
            evidence="https://example.org/issue?a=1&b=2"),
        row(case_id="c3", verdict="special_mismatch", detail="expected finite, got nan",
            inputs="<script>alert(1)</script>", max_ulp=float("nan")),
        row(case_id="c4", verdict="unsupported", detail="no weight"),
    ])


def test_summary_counts_verdicts():
    s = report.summary(frame())
    assert s.loc[("torch", "torch.f"), "conforms"] == 2
    assert s.loc[("torch", "torch.f"), "special_mismatch"] == 1


def test_matrix_share_and_worst_ulp():
    m = report.conformance_matrix(frame())
    # c1 conforms twice, c3 does not; unsupported c4 is left out; metrics over conforming outputs
    assert m.loc["torch.f", "weight"] == "67% (0.50 tol, 2 ulp)"
    assert m.loc["keras.X", "all_ignored"] == "0% (- tol, - ulp)"


def test_differences_list_known_and_unexpected():
    d = report.differences(frame())
    assert set(d["case_id"]) == {"c2", "c3"}
    assert d.set_index("case_id").loc["c2", "known"] == "k1"


def test_html_is_self_contained_and_escaped(tmp_path):
    path = tmp_path / "r.html"
    report.write_report(frame(), path)
    text = path.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "Keras &lt;divides safely&gt;" in text
    assert 'href="https://example.org/issue?a=1&amp;b=2"' in text
    for fetch in ("<link", "src=", "@import", "url("):
        assert fetch not in text
    assert "<b>unexpected</b>" in text


def test_results_round_trip_atomically(tmp_path):
    path = tmp_path / "results.parquet"
    report.write_results(frame(), path)
    back = report.read_results(path)
    assert len(back) == 5 and list(back.columns) == COLUMNS
    assert [p.name for p in tmp_path.iterdir()] == ["results.parquet"]  # no temporary left behind


def test_read_results_rejects_other_files(tmp_path):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    try:
        report.read_results(path)
    except ValueError as e:
        assert "missing columns" in str(e)
    else:
        raise AssertionError("accepted a file that is not a results file")


def test_per_case_shows_the_least_conforming_verdict():
    t = report.per_case(frame())
    assert t.loc["c1", "torch.f"] == "conforms (2/2)"
    assert t.loc["c3", "torch.f"] == "special_mismatch (1/1)"
    assert t.loc["c4", "torch.f"] == "unsupported (1/1)"


def test_written_files_have_ordinary_permissions(tmp_path):
    import os
    path = tmp_path / "r.html"
    report.write_report(frame(), path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_unsupported_reasons_are_listed():
    u = report.unsupported(frame())
    assert u.to_dict("records") == [{"framework": "torch", "api": "torch.f", "detail": "no weight", "cases": 1}]


def test_error_growth_plot_from_classes_features():
    rows = []
    for classes, ulps in ((32768, 1.0), (131072, 3.0), (262144, 7.0)):
        for dtype in ("bfloat16", "float32"):
            rows.append(row(case_id=f"large-{classes}", features=f"op:log_softmax,classes:{classes}",
                            dtype=dtype, max_ulp=ulps, median_ulp=ulps / 2, api="torch.log_softmax"))
    df = report.results_frame(rows + [row()])
    growth = report.error_growth(df)
    assert set(growth["classes"]) == {32768, 131072, 262144}
    assert growth.set_index(["dtype", "classes"]).loc[("float32", 131072), "worst_ulp"] == 3.0
    html = report.render_html(df)
    assert html.count("<svg") == 2 and "torch.log_softmax" in html and "<polyline" in html
    assert "No results with several vocabulary sizes" in report.render_html(report.results_frame([row()]))
