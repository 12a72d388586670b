"""Rows written as they are measured: one JSON-lines file per (runtime, framework) under
OUT/partial/, appended and flushed after every task, so an interrupted or killed run keeps
everything it finished; `xent report OUT` assembles them into an incomplete results file."""
from __future__ import annotations

import json
import threading
from pathlib import Path

from .results import ResultRow

PARTIAL = "partial"


class Journal:
    def __init__(self, out_dir: Path):
        self.folder = Path(out_dir) / PARTIAL
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files: dict[tuple[str, str], object] = {}
        self.lock = threading.Lock()

    def write(self, rows: list[ResultRow]) -> None:
        if not rows:
            return
        key = (rows[0].runtime, rows[0].framework)
        lines = "".join(json.dumps({**vars(r), "observed_bits": r.observed_bits.hex()}) + "\n" for r in rows)
        with self.lock:
            if key not in self.files:
                self.files[key] = open(self.folder / f"{key[0]}-{key[1]}.jsonl", "a", encoding="utf-8")
            self.files[key].write(lines)
            self.files[key].flush()

    def close(self) -> None:
        with self.lock:
            for f in self.files.values():
                f.close()
            self.files.clear()


def read_partial(out_dir: Path) -> list[ResultRow]:
    rows = []
    for path in sorted((Path(out_dir) / PARTIAL).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut off by a kill: that task is not finished
            data["observed_bits"] = bytes.fromhex(data["observed_bits"])
            rows.append(ResultRow(**data))
    return rows
