"""Constants and small readers shared by the sweep tests."""

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Few steps, a small eval, no progress bars: every point trains for real, just briefly.
QUICK = [
    "llm=tiny-xs",
    "trainer.enable_progress_bar=false",
    "eval.progress=false",
    "eval.limit=16",
    "data.progress=false",
]


def result(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "result.json").read_text())
