"""The report in a real browser: Debian's chromium (apt-get install chromium), driven by
playwright, at 1400 x 900.

The page is the report of a real default-suite run: the stored baseline's results, or the run
folder named by XENT_REPORT_RUN. It must show the counts per framework on its first screen,
with scripts and without; request nothing but itself; have no element wider than the window
(closed, and with every group and reproducer open); and resolve every internal link. How fast
it loads is a benchmark (benchmarks/bench_report_load.py), not a test. A second test opens the
report that `xent run` itself writes (torch, bfloat16: real reproducers, written beside it)
and follows its links. XENT_SCREENSHOTS=DIR also writes the screenshots of docs/report.md there.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import diff, report

from .conftest import ROOT

CHROMIUM = os.environ.get("XENT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1400, 900

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                 reason=f"no chromium binary at {CHROMIUM} (apt-get install chromium, or XENT_CHROMIUM)")]

# every element wider than the window or reaching past its right edge, and text overflowing it
TOO_WIDE = """() => [...document.querySelectorAll('body *')].map(e => [e, e.getBoundingClientRect()])
  .filter(([e, r]) => r.width > innerWidth || r.right > innerWidth + 0.5)
  .map(([e, r]) => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' ' + Math.round(r.width) + 'px')
  .concat(document.documentElement.scrollWidth > innerWidth ? ['the page: ' + document.documentElement.scrollWidth + 'px'] : [])"""
# inputs and values squeezed into a narrow column (the old report broke them every few characters)
SQUEEZED = """() => [...document.querySelectorAll('pre.in, table.obs td')]
  .filter(e => e.textContent.length > 40 && e.getBoundingClientRect().width < 250)
  .map(e => e.textContent.slice(0, 40) + ': ' + Math.round(e.getBoundingClientRect().width) + 'px')"""
DANGLING = """() => [...document.querySelectorAll('[href^="#"]')].map(a => a.getAttribute('href'))
  .filter(h => !document.getElementById(decodeURIComponent(h.slice(1))))"""
OPEN_ALL = "() => document.querySelectorAll('details').forEach(d => d.open = true)"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    run = os.environ.get("XENT_REPORT_RUN")
    df = report.read_results(diff.results_path(run) if run else ROOT / "baselines" / "default-cpu.parquet")
    path = tmp_path_factory.mktemp("report") / "report.html"
    report.write_report(df, path)
    return path, df


def open_page(browser, path: Path, javascript: bool = True):
    """A fresh page on the file; every request recorded and anything but the file refused."""
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, java_script_enabled=javascript)
    requests = []

    def route(r):
        requests.append(r.request.url)
        r.continue_() if r.request.url.split("#")[0] == path.as_uri() else r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.goto(path.as_uri())
    return context, page, requests


@pytest.mark.parametrize("javascript", [True, False], ids=["scripts", "no-scripts"])
def test_the_first_screen_shows_the_counts_per_framework(browser, page_file, javascript):
    path, df = page_file
    context, page, requests = open_page(browser, path, javascript)
    rows = page.locator("table.counts tbody tr")
    assert rows.count() == len(df.groupby(["framework", "runtime"]))
    for i in range(rows.count()):
        for cell in rows.nth(i).locator("th, td.n").all():  # the framework and its counts
            box = cell.bounding_box()
            assert box and cell.is_visible(), f"{rows.nth(i).inner_text()}: not shown"
            assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= WIDTH and \
                box["y"] + box["height"] <= HEIGHT, f"{cell.inner_text()!r} outside the first screen: {box}"
    assert page.locator(".tools").is_visible() == javascript  # the filter bar needs the script
    assert requests == [path.as_uri()]
    context.close()


def test_fetches_nothing_even_with_every_group_open(browser, page_file):
    """How fast it loads is measured side by side in benchmarks/bench_report_load.py, not here."""
    path, _ = page_file
    context, page, requests = open_page(browser, path)
    page.evaluate(OPEN_ALL)
    page.click("#f-open") if page.locator("#f-open").count() else None
    page.wait_for_timeout(100)
    assert requests == [path.as_uri()], f"requests beyond the file: {requests[1:]}"
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["scripts", "no-scripts"])
def test_nothing_is_wider_than_the_window_and_every_link_resolves(browser, page_file, javascript):
    path, _ = page_file
    context, page, _ = open_page(browser, path, javascript)
    assert page.evaluate(TOO_WIDE) == []
    page.evaluate(OPEN_ALL)  # every group, case and reproducer open
    assert page.evaluate(TOO_WIDE) == []
    assert page.evaluate(SQUEEZED) == []
    assert page.evaluate(DANGLING) == []
    ids = page.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)")
    assert len(ids) == len(set(ids))
    context.close()


def test_links_open_the_cases_and_the_filter_and_sort_work(browser, page_file):
    path, _ = page_file
    context, page, _ = open_page(browser, path)
    cell = page.locator("table.grid td a").first
    cell.click()
    listing = page.locator(cell.get_attribute("href"))
    item = listing.locator("a").first
    target = item.get_attribute("href")
    item.click()  # into a closed group: it opens
    assert page.locator(target).is_visible() and page.locator(target).bounding_box()["height"] > 0
    groups = page.locator("details.grp")
    api = groups.first.get_attribute("data-api")
    page.fill("#f-text", api)
    shown = page.locator("details.grp:visible")
    assert 0 < shown.count() < groups.count()
    assert all(api in shown.nth(i).inner_text() for i in range(shown.count()))
    page.fill("#f-text", "")
    page.click("button[data-sort=api]")
    for box in page.locator("div.groups").all():
        apis = [g.get_attribute("data-api") for g in box.locator("details.grp").all()]
        assert apis == sorted(apis)
    context.close()


def shot(page, path: str) -> None:
    """A screenshot for the docs, in 256 colours (a third of the bytes, the same to the eye)."""
    from PIL import Image
    page.screenshot(path=path)
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)


def test_screenshots(browser, page_file):
    """XENT_SCREENSHOTS=docs/img writes the screenshots docs/report.md shows."""
    folder = os.environ.get("XENT_SCREENSHOTS")
    if not folder:
        pytest.skip("XENT_SCREENSHOTS not set")
    path, _ = page_file
    Path(folder).mkdir(parents=True, exist_ok=True)
    context, page, _ = open_page(browser, path)
    shot(page, f"{folder}/report-first-screen.png")
    inaccurate = page.locator('details.grp[data-verdict="inaccurate"]')  # one with ULPs and tolerances to show
    group = inaccurate.first if inaccurate.count() else page.locator("details.grp").first
    group.evaluate("g => { g.open = true; const r = g.querySelector('details.repro'); if (r) r.open = true; }")
    group.evaluate("g => window.scrollTo(0, g.getBoundingClientRect().top + scrollY - 40)")
    shot(page, f"{folder}/report-group.png")
    page.locator("#matrix").evaluate("m => window.scrollTo(0, m.getBoundingClientRect().top + scrollY - 50)")
    shot(page, f"{folder}/report-matrix.png")
    context.close()


def test_the_report_xent_run_writes_links_its_reproducers(browser, tmp_path):
    """End to end: `xent run` (torch, bfloat16) writes results, reproducers and the report; every
    reproducer link of the page names a file that is there."""
    pytest.importorskip("torch")
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--frameworks", "torch", "--dtypes",
                           "bfloat16", "--out", str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    path = out / "report.html"
    context, page, requests = open_page(browser, path)
    files = page.evaluate("[...document.querySelectorAll('.repro a')].map(a => a.getAttribute('href'))")
    assert files and all((out / f).is_file() for f in files)
    assert page.locator("details.repro pre").count() > 0
    page.evaluate(OPEN_ALL)
    assert page.evaluate(TOO_WIDE) == [] and page.evaluate(DANGLING) == []
    assert requests == [path.as_uri()]
    context.close()


def test_the_load_benchmark_runs_and_says_its_ratio():
    """benchmarks/bench_report_load.py, one round, so the benchmark that replaced a timed test cannot rot;
    its figures are read where it runs, not asserted here."""
    pytest.importorskip("playwright.sync_api")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_report_load.py"), "--rounds", "1",
                           "--chromium", CHROMIUM], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"report load: \d+ ms \(\d+\.\d\dx a plain page of the same size\)", last), last
