"""How fast the report loads in a real browser: headless Chromium (Debian's `chromium`, driven by
playwright) at 1400 x 900, the report of the stored nine-framework baseline (or `--run FOLDER`)
against a plain page of the same size (one <pre> of the same number of bytes: what parsing and
laying out that much text costs anyway), loaded alternately `--rounds` times each, every load
in a fresh context. Timing lives here, not in the tests (the shared 2-core machine is noisy).

Prints the load event of each load, the medians, and as its last line
`report load: N ms (R.RRx a plain page of the same size)`.
"""
from __future__ import annotations

import argparse
import html
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def load_ms(browser, path: Path) -> float:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.route("**/*", lambda r: r.continue_() if r.request.url.split("#")[0] == path.as_uri() else r.abort())
    page = context.new_page()
    page.goto(path.as_uri())
    ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    context.close()
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a run folder (results.parquet) instead of baselines/default-cpu.parquet")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from conformance import diff, report
    from conformance.verdicts import CONFORMS, UNSUPPORTED
    df = report.read_results(diff.results_path(args.run) if args.run else ROOT / "baselines" / "default-cpu.parquet")
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "report.html"
        report.write_report(df, page)
        size = page.stat().st_size
        plain = Path(folder) / "plain.html"
        text = "x" * 100 + "\n"
        plain.write_text("<!doctype html><meta charset=utf-8><title>plain</title><pre>"
                         + html.escape(text * (size // len(text))) + "</pre>")
        times: dict[str, list[float]] = {"report": [], "plain": []}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
            load_ms(browser, page)  # a cold browser process pays once, for neither side
            for _ in range(args.rounds):
                times["report"].append(load_ms(browser, page))
                times["plain"].append(load_ms(browser, plain))
            browser.close()
    diverging = int((~df["verdict"].isin([CONFORMS, UNSUPPORTED])).sum())
    print(f"report: {size / 1e6:.2f} MB, {len(df):,} rows, {diverging:,} diverging")
    for side, ms in times.items():
        print(f"{side:>7}: " + ", ".join(f"{t:.0f}" for t in ms) + f" ms (median {statistics.median(ms):.0f})")
    report_ms, plain_ms = statistics.median(times["report"]), statistics.median(times["plain"])
    print(f"report load: {report_ms:.0f} ms ({report_ms / plain_ms:.2f}x a plain page of the same size)")


if __name__ == "__main__":
    main()
