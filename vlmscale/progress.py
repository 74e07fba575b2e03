"""Following a sweep from its folder: one line per finished point, how many are left and when it will end.

    [12/32] llm=tiny-m T=16 seed=1 done in 41 s, error reasoning 0.43 / ocr 0.12 | 20 left, ETA 6 min

The folder is the truth, so the launching console (`SweepProgress`, local and SLURM sweeps alike) and
`python -m vlmscale.sweep status DIR` (`sweep_status`, e.g. on a SLURM login node) print the same lines from
the same files:
- `<sweep>/points.json`, written by the sweeper before it launches: every point's run folder, in grid order,
  and its size (steps, LLM parameters, visual tokens), which weighs the points in the ETA;
- `<run>/.hydra/job.json`, written when a point starts and ends (`vlmscale.sweep.PointLog`): when, host, pid,
  SLURM job;
- `<run>/result.json`, written when a point ends, done or failed with its message (vlmscale/train.py);
- submitit's `<sweep>/.submitit/<job>/<job>_<task>_result.pkl`: a SLURM job that has ended; one that ended
  without a result.json (killed for time or memory) is reported as such, with its log.

Standard library only: a login node without torch can follow a sweep.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from vlmscale.contract import RESULT_FILE

POINTS_FILE = "points.json"  # in the sweep folder: the grid's run folders, written before launching
JOB_FILE = Path(".hydra") / "job.json"  # in a run folder: when and where the point started
CATEGORIES = (
    "reasoning",
    "ocr",
)  # the error/<category> metrics shown per point (vlmscale/eval/tasks/base.py)
FINISHED = ("done", "failed", "ended")


# ------------------------------------------------------------------------------------------------- words
def duration(seconds: float) -> str:
    """41 s, 6 min, 1 h 05 min: as precise as a person planning around it needs."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def label(rel: str | Path) -> str:
    """`llm=tiny-m/T=16/seed=1` -> `llm=tiny-m T=16 seed=1`."""
    return " ".join(Path(rel).parts)


def one_line(text: str, width: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def errors_text(metrics: Mapping[str, Any]) -> str:
    shown = [(c, metrics.get(f"error/{c}")) for c in CATEGORIES]
    shown = [(c, v) for c, v in shown if isinstance(v, (int, float))]
    if not shown and isinstance(metrics.get("error/avg"), (int, float)):
        shown = [("avg", metrics["error/avg"])]
    return "error " + " / ".join(f"{c} {v:.2f}" for c, v in shown) if shown else ""


# ------------------------------------------------------------------------------------------- the folder
@dataclass
class Point:
    """One grid point as its run folder shows it."""

    rel: str
    state: str  # pending | running | done | failed | ended (a job gone without a result) | interrupted
    finished_at: float | None = None  # result.json's mtime
    record: dict[str, Any] | None = None
    job: dict[str, Any] | None = None
    note: str = ""  # why `ended` or `interrupted`, where to look

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def line(self) -> str:
        """`llm=... T=... seed=... done in 41 s, error ...` or `... failed: <message>`."""
        name = label(self.rel)
        record = self.record or {}
        if self.state == "done":
            took = record.get("wall_time_s")
            text = f"{name} done" + (f" in {duration(took)}" if isinstance(took, (int, float)) else "")
            errors = errors_text(record.get("metrics") or {})
            return f"{text}, {errors}" if errors else text
        if self.state == "failed":
            message = (record.get("error") or {}).get("message") or "no message recorded"
            return f"{name} failed: {one_line(message)}"
        return f"{name} {self.state}" + (f": {self.note}" if self.note else "")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent, or being replaced right now: read again at the next look
    return data if isinstance(data, dict) else None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _slurm_job_end(sweep_dir: Path, job_id: str) -> Path | None:
    """submitit's result file of a SLURM job, once the job has ended (with or without our result.json)."""
    found = sorted((sweep_dir / ".submitit" / job_id).glob(f"{job_id}_*_result.pkl"))
    return found[0] if found else None


def read_point(sweep_dir: Path, rel: str) -> Point:
    run_dir = sweep_dir / rel
    finished_at = _mtime(run_dir / RESULT_FILE)
    job = _read_json(run_dir / JOB_FILE)
    started = job.get("started") if job else None
    # A job that started after the result and has not ended is at work on a new one; one that ended without
    # writing a result (skipped as done for this config) left the result it found.
    at_work = isinstance(started, (int, float)) and finished_at is not None and started > finished_at
    if finished_at is not None and not (at_work and not job.get("ended")):
        record = _read_json(run_dir / RESULT_FILE)
        if record is not None:
            state = "done" if record.get("status") == "done" else "failed"
            return Point(rel, state, finished_at, record, job)
    if job is None:
        return Point(rel, "pending")
    if job.get("ended"):
        return Point(
            rel, "ended", job["ended"], None, job, f"ended without a result; see {run_dir}/train.log"
        )
    slurm = job.get("slurm_job_id")
    if slurm:
        end = _slurm_job_end(sweep_dir, str(slurm))
        if end is not None:
            log = end.with_name(end.name.replace("_result.pkl", "_log.err"))
            return Point(
                rel, "ended", _mtime(end), None, job, f"SLURM job {slurm} ended without a result; see {log}"
            )
    elif (
        job.get("host") == socket.gethostname() and isinstance(job.get("pid"), int) and not _alive(job["pid"])
    ):
        return Point(rel, "interrupted", None, None, job, "its process is gone; re-run the sweep to redo it")
    return Point(rel, "running", None, None, job)


def sweep_points(sweep_dir: Path) -> list[str]:
    """The run folders of a sweep: from points.json, else every folder holding a result or a started job."""
    plan = _read_json(sweep_dir / POINTS_FILE)
    if plan and isinstance(plan.get("points"), list):
        return [str(p) for p in plan["points"]]
    found = {p.parent.parent for p in sweep_dir.rglob(str(JOB_FILE))}
    found |= {p.parent for p in sweep_dir.rglob(RESULT_FILE)}
    rels = (str(d.relative_to(sweep_dir)) for d in found)
    return sorted(r for r in rels if not any(part.startswith(".") for part in Path(r).parts))


def eta_text(left: int, seconds: float | None) -> str:
    """`20 left, ETA 6 min`, `20 left` while there is no pace yet, `none left`."""
    if left <= 0:
        return "none left"
    return f"{left} left" if seconds is None else f"{left} left, ETA {duration(seconds)}"


# ------------------------------------------------------------------------------------------------- pace
# A point's size, as the sweeper writes it into points.json: {"steps", "llm_params", "visual_tokens"}.
Size = Mapping[str, Any]


def point_work(size: Size | None, text_tokens: float) -> float | None:
    """A point's training work, in units that only compare points of one sweep (same batch, same data):
    steps x the LLM's non-embedding parameters x the tokens it reads per example."""
    try:
        tokens = text_tokens + float(size["visual_tokens"])  # type: ignore[index]
        return float(size["steps"]) * float(size["llm_params"]) * tokens  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None


def eta_seconds(
    elapsed: float, finished: Sequence[tuple[Size | None, Mapping[str, Any]]], left: Sequence[Size | None]
) -> float | None:
    """Seconds until the points `left` are done, from the `finished` ones (size, result) of this sweep.

    Points of one sweep differ in cost (a 7B point takes many times a 0.5B one, and the grid runs the small
    ones first), so each point is weighed by its predicted time, `a + b * work`, a line fitted to the wall
    times of the finished points (`a`: what every point pays, start-up and evaluation). The ETA is the elapsed
    time scaled by the predicted time left over the predicted time finished: parallelism, queueing and the
    machine's speed stay in the measured pace. Until two finished points of different work give a rising
    line, or where a size is unknown, every point weighs the same."""
    if not finished:
        return None
    same_weight = elapsed / len(finished) * len(left)
    timed = [
        (size, record)
        for size, record in finished
        if record.get("status") == "done" and isinstance(record.get("wall_time_s"), (int, float))
    ]
    texts = [r["text_tokens"] for _, r in timed if isinstance(r.get("text_tokens"), (int, float))]
    text_tokens = sum(texts) / len(texts) if texts else 0.0
    works_done = [point_work(size, text_tokens) for size, _ in finished]
    works_left = [point_work(size, text_tokens) for size in left]
    points = [(point_work(size, text_tokens), float(r["wall_time_s"])) for size, r in timed]
    if None in works_done or None in works_left or len({x for x, _ in points}) < 2:
        return same_weight
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x in xs)
    if slope <= 0:
        return same_weight
    intercept = mean_y - slope * mean_x
    if intercept < 0:  # no point takes negative time: the line through the origin instead
        intercept, slope = 0.0, sum(x * y for x, y in points) / sum(x * x for x in xs)
    done = sum(intercept + slope * x for x in works_done)  # type: ignore[operator]
    return elapsed * sum(intercept + slope * x for x in works_left) / done  # type: ignore[operator]


# --------------------------------------------------------------------------------------- live, in a sweep
class SweepProgress:
    """Prints one line per point as it finishes, looking at the sweep folder every `interval` seconds on a
    thread of the launching process (the launcher blocks while the points run, locally or on SLURM)."""

    def __init__(self, sweep_dir: Path, out: TextIO = sys.stdout, interval: float = 2.0) -> None:
        self.sweep_dir = Path(sweep_dir)
        self.out = out
        self.interval = interval
        self.total = 0
        self.finished = 0  # numbered lines printed so far, points already done included
        self._finished_here: list[tuple[Size | None, Mapping[str, Any]]] = []  # they set the pace
        self._sizes: Mapping[str, Size | None] = {}
        self._watched: dict[str, float | None] = {}  # run folder -> its result.json mtime at the start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = time.time()

    def begin(
        self,
        points: Iterable[str],
        already_done: Iterable[str],
        parallel: str = "",
        sizes: Mapping[str, Size | None] | None = None,
    ) -> None:
        points, done = list(points), set(already_done)
        self._sizes = dict(sizes or {})
        self.total = len(points)
        self.started = time.time()
        for rel in points:
            if rel not in done:
                self._watched[rel] = _mtime(self.sweep_dir / rel / RESULT_FILE)
        todo = self.total - len(done)
        self.say(
            f"sweep: {self.total} points in {self.sweep_dir}, {todo} to run{parallel}; each point logs to <run>/train.log"
        )
        if done:
            names = sorted(label(rel) for rel in done)
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            self.finished = len(done)
            points_word = "point" if len(done) == 1 else "points"
            self.say(
                f"[{self.finished}/{self.total}] skipping {len(done)} {points_word} already done for this config: "
                f"{shown}"
            )
        self._thread = threading.Thread(target=self._run, name="sweep-progress", daemon=True)
        self._thread.start()

    def unlaunched(self, rel: str, message: str) -> None:
        """A point that could not start (its config, its folder): finished, failed, nothing to watch."""
        with self._lock:
            self._watched.pop(rel, None)
            self._report(f"{label(rel)} failed: {one_line(message)}")

    def end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll()
        left = self.total - self.finished
        tail = f"; {left} without a result" if left else ""
        self.say(f"sweep finished in {duration(time.time() - self.started)}{tail}")

    def poll(self) -> None:
        with self._lock:
            for rel, before in list(self._watched.items()):
                now = _mtime(self.sweep_dir / rel / RESULT_FILE)
                if now is None or now == before:
                    continue
                point = read_point(self.sweep_dir, rel)
                if point.finished:
                    del self._watched[rel]
                    self._finished_here.append((self._sizes.get(rel), point.record or {}))
                    self._report(point.line())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as err:  # a progress line is never worth a sweep
                self.say(f"(progress: {type(err).__name__}: {err})")

    def _report(self, text: str) -> None:
        self.finished += 1
        left = [self._sizes.get(rel) for rel in self._watched]
        seconds = eta_seconds(time.time() - self.started, self._finished_here, left)
        pace = eta_text(self.total - self.finished, seconds)
        self.say(f"[{self.finished}/{self.total}] {text} | {pace}")

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)


# -------------------------------------------------------------------------------- `sweep status DIR`
def sweep_status(sweep_dir: Path) -> tuple[str, dict[str, int]]:
    """The same lines from the folder alone: finished points in the order they finished, then the running,
    interrupted and pending ones, then the counts and the ETA. Returns (text, counts by state)."""
    sweep_dir = Path(sweep_dir)
    points = [read_point(sweep_dir, rel) for rel in sweep_points(sweep_dir)]
    plan = _read_json(sweep_dir / POINTS_FILE) or {}
    started = plan.get("started")
    now = time.time()
    lines = []
    finished = sorted((p for p in points if p.finished), key=lambda p: p.finished_at or 0)
    for k, point in enumerate(finished, 1):
        lines.append(f"[{k}/{len(points)}] {point.line()}")
    for point in points:
        if point.state == "running":
            since = (point.job or {}).get("started")
            where = (point.job or {}).get("slurm_job_id")
            detail = [f"for {duration(now - since)}" if isinstance(since, (int, float)) else ""]
            detail.append(f"SLURM job {where}" if where else "")
            detail = ", ".join(d for d in detail if d)
            lines.append(f"running  {label(point.rel)}" + (f" ({detail})" if detail else ""))
        elif point.state == "interrupted":
            lines.append(f"stopped  {point.line()}")
    pending = [label(p.rel) for p in points if p.state == "pending"]
    if pending:
        shown = ", ".join(pending[:6]) + (f" and {len(pending) - 6} more" if len(pending) > 6 else "")
        lines.append(f"pending  {shown}")
    counts = {
        s: sum(p.state == s for p in points)
        for s in ("done", "failed", "ended", "running", "interrupted", "pending")
    }
    parts = [f"{counts['done']} done", f"{counts['failed'] + counts['ended']} failed"]
    parts += [f"{counts[s]} {s}" for s in ("running", "interrupted", "pending") if counts[s]]
    sizes = plan.get("sizes") if isinstance(plan.get("sizes"), dict) else {}
    here = [p for p in finished if isinstance(started, (int, float)) and (p.finished_at or 0) >= started]
    left = [sizes.get(p.rel) for p in points if p.state in ("running", "pending")]
    seconds = None
    if isinstance(started, (int, float)):
        seconds = eta_seconds(now - started, [(sizes.get(p.rel), p.record or {}) for p in here], left)
    pace = eta_text(len(left), seconds)
    lines.append(f"{sweep_dir}: {len(points)} points: {', '.join(parts)} | {pace}")
    return "\n".join(lines), counts
