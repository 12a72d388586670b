"""`xent`: generate golden files, run them against frameworks, build the report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reference.casefile import CaseFileError, load_case_files
from reference import large
from reference.catalog import default_specs
from reference.golden import GoldenFileError, generate

from . import report, runner
from .adapters import FRAMEWORKS
from .expectations import DEFAULT_PATH, ExpectationsError, load_expectations, stale_message

CASES_DIR = runner.REPO_ROOT / "cases"
# suite name -> (its case definitions, its golden folder); large is generated on demand
SUITES = {"default": (default_specs, CASES_DIR / "golden" / "default"),
          "large": (None, CASES_DIR / "golden" / "large")}


def _progress_bar(desc: str):
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="task", file=sys.stderr, disable=None)

    def update(done: int, more: int) -> None:
        if more:
            bar.total += more
            bar.refresh()
        if done:
            bar.update(done)

    return bar, update


def cmd_generate(args) -> int:
    specs_of, golden_dir = SUITES[args.suite]
    if args.suite == "large" and not args.cases:
        bar, progress = _progress_bar("xent generate --suite large")
        bar.total = sum(1 for _ in large.cases())
        try:
            manifest = large.generate(Path(args.out) if args.out else golden_dir, lambda case_id: progress(1, 0))
        finally:
            bar.close()
        print(f"{bar.total} cases -> {manifest}")
        return 0
    if args.cases:
        specs, out_dir, name = load_case_files(args.cases), Path(args.out or "cases/golden/user"), "user"
    else:
        specs, out_dir, name = specs_of(), Path(args.out) if args.out else golden_dir, args.suite
    manifest = generate(specs, out_dir, name)
    print(f"{len(specs)} cases -> {manifest}")
    return 0


def cmd_run(args) -> int:
    out = Path(args.out)
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown:
        print(f"xent: unknown framework {unknown[0]!r}; choose from {', '.join(FRAMEWORKS)}", file=sys.stderr)
        return 2
    expectations = load_expectations(args.expectations, FRAMEWORKS)  # checked before anything is written
    suite_dirs = [SUITES[s][1] for s in (args.suite or ([] if args.cases else ["default"]))]
    if args.cases:
        specs = load_case_files(args.cases)  # every file checked before anything runs
        suite_dirs.append(generate(specs, out / "golden" / "user", "user").parent)
    bar, progress = _progress_bar("xent run")
    try:
        runs = runner.run(suite_dirs, frameworks, out_dir=out, timeout=args.timeout, expectations=expectations,
                          progress=progress, dtypes=set(args.dtypes) if args.dtypes else None)
    finally:
        bar.close()
    df = report.results_frame([row for r in runs for row in r.rows])
    for r in runs:
        if r.skipped:
            print(f"skipped {r.framework}: {r.skipped}")
        if r.stale:
            print(f"{r.framework}: {stale_message(r.stale)}")
    if df.empty:
        print("xent: no results (no framework could run)", file=sys.stderr)
        return 1
    report.write_results(df, out / "results.parquet")
    report.write_report(df, out / "report.html")
    print(report.summary(df).to_string(line_width=200))
    diff = report.differences(df)
    unexpected = diff[diff["known"] == ""] if not diff.empty else diff
    print(f"\n{len(diff)} semantic differences ({len(unexpected)} not in {args.expectations})")
    print(f"results: {out / 'results.parquet'}\nreport:  {out / 'report.html'}")
    return 0


def cmd_report(args) -> int:
    df = report.read_results(Path(args.results))
    out = Path(args.out) if args.out else Path(args.results).with_name("report.html")
    report.write_report(df, out)
    print(report.summary(df).to_string(line_width=200))
    print(f"report: {out}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xent", description="Cross-entropy conformance across PyTorch, TensorFlow and JAX.")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write golden files from case definitions")
    g.add_argument("--suite", default="default", choices=sorted(SUITES))
    g.add_argument("--cases", nargs="+", metavar="PATH", help="user case files (TOML) instead of a suite")
    g.add_argument("--out", help="output folder (default: the suite's folder under cases/golden/)")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="run golden suites against the installed frameworks")
    r.add_argument("--cases", nargs="+", metavar="PATH", help="user case files (TOML); replaces the default suite "
                   "unless --suite is given too")
    r.add_argument("--suite", action="append", choices=sorted(SUITES), help="a stored suite (repeatable)")
    r.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated (default: all)")
    r.add_argument("--dtypes", nargs="+", choices=["float64", "float32", "float16", "bfloat16"])
    r.add_argument("--out", default="reports/latest", help="where results.parquet and report.html go")
    r.add_argument("--timeout", type=float, default=120.0, help="seconds a single task may take")
    r.add_argument("--expectations", default=str(DEFAULT_PATH), help="the known-divergences file")
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="rebuild report.html from a results file")
    rep.add_argument("results")
    rep.add_argument("--out")
    rep.set_defaults(func=cmd_report)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (CaseFileError, GoldenFileError, ExpectationsError, ValueError) as e:
        print(f"xent: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
