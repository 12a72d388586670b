"""What a CI gate may name: the classes of `xent diff` and the findings of `xent run`, and the
one parser every option naming them goes through, so that a typo is an error (exit 2), never a
gate that silently does nothing."""
from __future__ import annotations

# xent diff's classes of a row pair (conformance/diff.py says what each means)
DIFF_CLASSES = ("regression", "fix", "raises", "changed", "drift", "new", "missing")
# what a baseline check (the pytest plugin's baseline test) fails on: everything but drift
BASELINE_FAILS = ("regression", "fix", "changed", "new", "missing")
# xent run --fail-on: its own findings, and with --baseline the diff's classes
RUN_FINDINGS = ("unexpected", "stale")


def parse_names(text: str, option: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list of names, every one checked."""
    names = tuple(n.strip() for n in str(text).split(",") if n.strip())
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise ValueError(f"{option} {text!r}: " + (f"unknown value {bad[0]!r}; " if bad else "empty; ")
                         + f"choose from {', '.join(allowed)} (comma-separated)")
    return names
