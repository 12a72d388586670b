"""Write the arrays of llm_head.toml: an LLM head's logits over a 131,072-token vocabulary.

    python tests/user_cases/make_llm_head.py [OUT_DIR]      (default: this script's folder)

llm_head_logits.npy: bfloat16 logits of shape (4, 131072), N(0, 1) * 3 from a seeded
numpy generator, with one dominant logit per row, stored with ml_dtypes' bfloat16 (numpy
writes it with the descr '<V2', which the case loader reads as bfloat16).
llm_head_labels.npy: int64 labels of shape (4,): one ignored position (-100), one label above
256 and one above 65504 (the largest float16), so that a label cast to bfloat16 or float16
would no longer name its class.

The arrays are generated, not kept in git (deterministic: the same bytes every time).
"""
from __future__ import annotations

import sys
from pathlib import Path

import ml_dtypes
import numpy as np

SEED = 20240611
ROWS, VOCAB = 4, 131072
DOMINANT = 24.0  # a confident prediction: about 8 standard deviations above the rest
# the dominant class of each row, and each row's label (-100: ignored)
DOMINANT_AT = (70001, 5, 300, 131071)
LABELS = (70001, -100, 300, 100003)
LOGITS, TARGETS = "llm_head_logits.npy", "llm_head_labels.npy"


def arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    logits = rng.standard_normal((ROWS, VOCAB)) * 3.0
    logits[np.arange(ROWS), DOMINANT_AT] = DOMINANT
    return logits.astype(ml_dtypes.bfloat16), np.array(LABELS, dtype=np.int64)


def write(out_dir: str | Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logits, labels = arrays()
    paths = out_dir / LOGITS, out_dir / TARGETS
    np.save(paths[0], logits)
    np.save(paths[1], labels)
    return paths


if __name__ == "__main__":
    for path in write(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent):
        print(path)
