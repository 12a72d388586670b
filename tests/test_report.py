"""The report builder on a synthetic results frame (and the page made from the stored baseline)."""
import re

import numpy as np
import pandas as pd

from conformance import diff, report, repro
from conformance.results import COLUMNS, ResultRow, RunInfo

from .conftest import ROOT


def row(**kw):
    base = dict(suite="default", suite_hash="s" * 64, case_id="c1", case_sha256="0" * 64, op="cross_entropy", features="op:cross_entropy,weight", tags="",
                params="{}", framework="torch", framework_version="2.13", versions="{}", runtime="local", mode="eager",
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
            evidence="https://example.org/issue?a=1&b=2", variants="empty_mean_zero", accepted_variant="empty_mean_zero"),
        row(case_id="c3", verdict="special_mismatch", detail="expected finite, got nan",
            inputs="<script>alert(1)</script>", max_ulp=float("nan")),
        row(case_id="c4", verdict="unsupported", detail="no weight", device="-", device_name="-"),
    ])


def ids_and_links(page: str) -> tuple[list[str], set[str]]:
    return re.findall(r'\sid="([^"]+)"', page), set(re.findall(r'href="#([^"]*)"', page))


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


def test_counts_per_framework_and_runtime():
    df = report.results_frame([row(), row(runtime="torch-2.5", verdict="inaccurate", detail="off"),
                               row(case_id="c2", runtime="torch-2.5", verdict="variant", known="k"),
                               row(case_id="c3", verdict="unsupported")])
    counts = report.framework_counts(df).set_index("runtime")
    assert counts.loc["local", ["unexpected", "known", "conforming", "unsupported", "outputs"]].tolist() == [0, 0, 1, 1, 2]
    assert counts.loc["torch-2.5", ["unexpected", "known", "conforming", "unsupported"]].tolist() == [1, 1, 0, 0]
    page = report.render_html(df)
    counts_table = page[page.index('<table class="counts'):page.index("</table>")]
    assert "torch <span class=\"rt\">(local, eager)</span>" in counts_table and "(torch-2.5, eager)" in counts_table
    assert 'href="#u-torch-torch-2-5-eager">1</a>' in counts_table  # the unexpected count links to its groups


def test_unexpected_groups_first_one_line_per_cause():
    rows = [row(case_id=f"k{i}", verdict="variant", variants="v1", accepted_variant="v1", known="cause-a",
                known_reason="why", evidence="https://e.org/1") for i in range(3)]
    rows += [row(case_id="u1", verdict="inaccurate", detail="off by 3 ulp", output=o) for o in ("loss", "grad")]
    rows += [row(case_id="u2", verdict="inaccurate", detail="off", dtype=d) for d in ("float16", "bfloat16")]
    rows += [row(case_id="u3", verdict="special_mismatch", detail="nan", api="torch.g")]
    page = report.render_html(report.results_frame(rows))
    groups = re.findall(r'<details class="grp (\w+)" id="(g\d+)" data-fw="[^"]*" data-n="(\d+)" data-api="([^"]*)" '
                        r'data-verdict="(\w+)"', page)
    assert [(kind, n, api, verdict) for kind, _, n, api, verdict in groups] == [
        ("unexpected", "4", "torch.f", "inaccurate"), ("unexpected", "1", "torch.g", "special_mismatch"),
        ("known", "3", "torch.f", "variant")]
    first = page[page.index('id="g1"'):page.index('id="g2"')]
    assert first.count('<li class="item"') == 2  # its cases, u1 and u2
    assert page.index('<section id="unexpected">') < page.index('<section id="known">')


def test_html_is_self_contained_escaped_and_linked(tmp_path):
    path = tmp_path / "r.html"
    report.write_report(frame(), path)
    text = path.read_text()
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Keras &lt;divides safely&gt;" in text
    assert 'href="https://example.org/issue?a=1&amp;b=2"' in text
    for fetch in ("<link", "src=", "@import", "url(", "<iframe", "<img"):
        assert fetch not in text
    assert text.count("<script>") == 1  # the one inline script
    ids, links = ids_and_links(text)
    assert len(ids) == len(set(ids)) and links <= set(ids)


def test_evidence_that_is_not_a_web_address_is_not_a_link():
    df = report.results_frame([row(verdict="variant", known="k", evidence="javascript:alert(1) https://ok.org/x")])
    page = report.render_html(df)
    assert 'href="javascript' not in page and 'href="https://ok.org/x"' in page


def test_matrix_grid_is_coloured_and_cells_link_to_their_cases():
    page = report.render_html(pd.concat([frame(), report.results_frame([row(case_id="c6", features="op:cross_entropy,label_smoothing")])]))
    grid = page[page.index('<table class="grid">'):]
    grid = grid[:grid.index("</table>")]
    # torch.f x weight: c1 conforms twice, c3 diverges unexpectedly; keras.X x all_ignored: known only
    cells = dict(re.findall(r'<td class="(\w+)(?: low)?" title="[^"]*"><a href="#(c\d+)">', grid))
    assert set(cells) == {"unexpected", "known"}
    listing = page[page.index(f'id="{cells["unexpected"]}"'):]
    item = re.search(r'href="#(i\d+)">c3</a>', listing[:listing.index("</p>")]).group(1)
    assert f'<li class="item" id="{item}">' in page
    assert re.search(r'<td class="ok" title="1 of 1 outputs \(1 cases\) conform[^"]*">100</td>', grid)  # label_smoothing
    assert re.search(r'<td class="unexpected" title="2 of 3 outputs \(2 cases\) conform, 1 unexpected[^"]*">'
                     r'<a href="#c\d+">66</a>', grid)  # torch.f x weight: a share rounded down, never up to 100


def test_divergence_shows_inputs_values_and_reproducer():
    script = 'print("<b>")\n' + "x = " + "1, " * 400  # a long line must not widen the page (CSS: overflow auto)
    df = report.results_frame([
        row(case_id="c5", verdict="inaccurate", detail="off", expected_values="[0.5, 0.25]",
            observed_values="[0.5, 0.2500000298023224]", inputs="input(2,)=[0.5, 0.25] target=[1, 0] reduction=mean",
            max_ulp=2.0, max_tol_ratio=1.5, reproducer=script, output=o) for o in ("loss", "grad")])
    page = report.render_html(df)
    name = repro.file_name(df.iloc[0])
    assert page.count(f'href="{name}"') == 1  # one task, loss and grad: one reproducer
    assert "<pre>print(&#34;&lt;b&gt;&#34;)" in page
    assert '<pre class="in">input(2,)=[0.5, 0.25]\ntarget=[1, 0]\nreduction=mean</pre>' in page
    assert "<td>[0.5, 0.25000003]</td>" in page  # float32's shortest repr
    assert "<td>2</td><td>1.5</td>" in page  # ULPs and share of the tolerance
    older = df.drop(columns="reproducer")  # a results file written before reproducers existed
    page = report.render_html(older)
    assert "<details class=\"repro\"" not in page and "no reproducer: these rows hold none" in page  # says why


def test_numbers_are_shortened_without_losing_a_bit():
    rng = np.random.default_rng(7)
    for dtype, kind in (("float32", np.float32), ("float16", np.float16)):
        values = rng.standard_normal(200).astype(kind) * kind(10.0) ** rng.integers(-6, 4, 200).astype(kind)
        text = "[" + ", ".join(repr(float(v)) for v in values) + "]"
        short = report._short(text, dtype)
        back = np.array([float(t) for t in short[1:-1].split(", ")]).astype(kind)
        assert (back == values).all() and len(short) < len(text)
    assert report._short("label_smoothing=0.1 [65504.0]", "float16") == "label_smoothing=0.1 [65504.0]"


def test_header_leaves_out_unsupported_rows_devices():
    page = report.render_html(frame())
    assert re.search(r'<td class="dev">cpu \(a CPU\)</td>', page) and "- (-)" not in page


def test_incomplete_banner_and_baseline_changes_come_first():
    since = diff.compare(frame(), report.results_frame([row(verdict="inaccurate", detail="off")]))
    page = report.render_html(frame(), since=since, info=RunInfo(incomplete={"tasks_not_run": 7, "why": "signal 2"}))
    banner, counts, changes = (page.index(s) for s in ("<b>INCOMPLETE</b>: 7 tasks", 'id="counts"', 'id="since"'))
    assert banner < counts < changes < page.index('<section id="unexpected">')
    assert "1 regression" in page


def test_results_round_trip_atomically(tmp_path):
    path = tmp_path / "results.parquet"
    report.write_results(frame(), path)
    back = report.read_results(path)
    assert len(back) == 5 and list(back.columns) == COLUMNS
    assert [p.name for p in tmp_path.iterdir()] == ["results.parquet"]  # no temporary left behind


def test_run_info_reads_both_ways_across_versions(tmp_path):
    """Files written before RunInfo kept the run's info in the frame's attrs (pandas stores them
    in the parquet metadata): they read the same; and files written now keep it there too."""
    df = frame()
    stale, incomplete = {"torch (local)": ["some-cause"]}, {"tasks_not_run": 7, "why": "signal 2"}
    df.attrs.update(stale=stale, incomplete=incomplete, shard=[1, 3])
    df.to_parquet(tmp_path / "old.parquet", index=False)
    run = report.read_run(tmp_path / "old.parquet")
    assert (run.info.stale, run.info.incomplete, run.info.shard) == (stale, incomplete, [1, 3])
    assert len(run.rows) == 5 and not run.rows.attrs
    report.write_results(run, tmp_path / "new.parquet")
    assert report.read_run(tmp_path / "new.parquet").info == run.info
    # and a file written now reads the same in a version before RunInfo (pandas' attrs)
    attrs = pd.read_parquet(tmp_path / "new.parquet").attrs
    assert (attrs["stale"], attrs["incomplete"], attrs["shard"]) == (stale, incomplete, [1, 3])
    report.write_results(frame(), tmp_path / "bare.parquet")  # an unset field absent, as older versions expect
    assert "incomplete" not in pd.read_parquet(tmp_path / "bare.parquet").attrs


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
    page = report.render_html(df)
    svg = page[page.index('<div class="plot">'):page.index("</svg>")]
    assert svg.count("<svg") == 1 and "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert "torch.log_softmax" in svg and "bfloat16" in svg and "float32" in svg  # text, not paths (fonttype none)
    assert page == report.render_html(df.copy())  # a pure function: no date, no random ids
    assert "No results with several vocabulary sizes" in report.render_html(report.results_frame([row()]))


def test_source_links_read_as_repository_ref_and_path():
    sha = "7961d6e99c38a523dcb95689dac588c772274cc6"
    url = f"https://github.com/PaddlePaddle/Paddle/blob/{sha}/paddle/phi/kernels/cpu/bce_loss_kernel.cc#L48-L52"
    assert report.link_text(url) == "Paddle@7961d6e99c:paddle/phi/kernels/cpu/bce_loss_kernel.cc#L48-L52"
    assert report.link_text("https://github.com/pytorch/pytorch/blob/v2.13.0/aten/src/ATen/native/Loss.cpp") == \
        "pytorch@v2.13.0:aten/src/ATen/native/Loss.cpp"
    issue = "https://github.com/pytorch/pytorch/issues/11551"
    assert report.link_text(issue) == issue
    page = report.render_html(report.results_frame([row(verdict="variant", known="k", known_reason="why", evidence=url)]))
    assert f'<a href="{url}">Paddle@7961d6e99c:paddle/phi/kernels/cpu/bce_loss_kernel.cc#L48-L52</a>' in page


def test_the_default_suite_report_stays_small():
    """The stored baseline (a default-suite run of every framework): the page without its
    reproducers grows with what diverges, about 600 bytes a diverging row (nine frameworks:
    2,893 KB for 4,838 diverging rows, 598 B each; torch, TensorFlow and JAX alone: 859 KB for
    1,571, 547 B; the old page was 825 KB for three frameworks with far less in it). The budget
    leaves room for more evidence, not for a page that repeats itself per row."""
    df = report.read_results(ROOT / "baselines" / "default-cpu.parquet").assign(reproducer="")
    for rows in (df, df[df["framework"].isin(["torch", "tensorflow", "jax"])]):
        page = report.render_html(rows)
        diverging = int((~rows["verdict"].isin(["conforms", "unsupported"])).sum())
        assert len(page.encode()) < 640 * diverging, (len(page.encode()), diverging)
    ids, links = ids_and_links(page)
    assert len(ids) == len(set(ids)) and links <= set(ids)
