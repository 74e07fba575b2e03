"""Following a sweep from its folder: `python -m vlmscale.sweep status DIR` on a half-finished and on a failed
sweep, and the live progress lines, from folders laid out as a sweep leaves them (no training here: the
files are what the sweeper, PointLog and train.py write)."""

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from vlmscale.progress import (
    JOB_FILE,
    POINTS_FILE,
    SweepProgress,
    duration,
    eta_seconds,
    eta_text,
    sweep_status,
)

ROOT = Path(__file__).resolve().parents[2]
POINTS = [f"llm=tiny-{n}/T={t}/seed=0" for n in ("xs", "s") for t in (1, 4, 16)]


def plan(sweep: Path, started: float) -> None:
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / POINTS_FILE).write_text(json.dumps({"started": started, "points": POINTS}))


def start(sweep: Path, rel: str, when: float, pid=None, slurm=None, ended=None) -> None:
    path = sweep / rel / JOB_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    job = {"started": when, "host": os.uname().nodename, "pid": pid or os.getpid(), "slurm_job_id": slurm}
    path.write_text(json.dumps({**job, "ended": ended} if ended else job))


def finish(sweep: Path, rel: str, when: float, ok: bool = True, message: str = "") -> None:
    path = sweep / rel / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if ok:
        record = {
            "status": "done",
            "wall_time_s": 41.2,
            "metrics": {"error/reasoning": 0.431, "error/ocr": 0.12},
        }
    else:
        record = {
            "status": "failed",
            "error": {"type": "ConfigError", "message": message, "user_error": True},
        }
    path.write_text(json.dumps(record))
    os.utime(path, (when, when))


def status(sweep: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [sys.executable, "-m", "vlmscale.sweep", "status", str(sweep)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_status_of_a_half_finished_sweep(tmp_path):
    sweep, t0 = tmp_path / "sweep", time.time() - 600
    plan(sweep, t0)
    for k, rel in enumerate(POINTS[:2]):
        start(sweep, rel, t0 + 10 * k)
        finish(sweep, rel, t0 + 100 + 100 * k)  # two points done, at 100 s and 200 s
    start(sweep, POINTS[2], time.time() - 300)  # running: its process (this one) is alive
    # a re-run: the done point started again and was skipped (it ended, its result unchanged)
    start(sweep, POINTS[1], t0 + 300, ended=t0 + 301)

    proc = status(sweep)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "[1/6] llm=tiny-xs T=1 seed=0 done in 41 s, error reasoning 0.43 / ocr 0.12"
    assert lines[1].startswith("[2/6] llm=tiny-xs T=4 seed=0 done in 41 s")
    assert lines[2] == "running  llm=tiny-xs T=16 seed=0 (for 5 min)"
    assert lines[3] == "pending  llm=tiny-s T=1 seed=0, llm=tiny-s T=4 seed=0, llm=tiny-s T=16 seed=0"
    # 2 finished in the 600 s since the start: 4 left at that pace is 1200 s
    assert lines[4] == f"{sweep}: 6 points: 2 done, 0 failed, 1 running, 3 pending | 4 left, ETA 20 min"


def test_status_of_a_failed_sweep_names_each_failure(tmp_path):
    sweep, t0 = tmp_path / "sweep", time.time() - 3600
    plan(sweep, t0)
    for k, rel in enumerate(POINTS[:3]):
        start(sweep, rel, t0 + k)
        finish(sweep, rel, t0 + 60 + k)
    message = "invalid config (1 problem(s)):\n  - visual_tokens=50: does not tile the 16x16 vision grid"
    start(sweep, POINTS[3], t0 + 70)
    finish(sweep, POINTS[3], t0 + 71, ok=False, message=message)
    start(sweep, POINTS[4], t0 + 80, slurm="77_4")  # a SLURM job that ended without writing a result
    ended = sweep / ".submitit" / "77_4"
    ended.mkdir(parents=True)
    (ended / "77_4_0_result.pkl").write_bytes(b"")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    start(sweep, POINTS[5], t0 + 90, pid=dead.pid)  # a local point whose process is gone

    out = status(sweep).stdout
    assert (
        "[4/6] llm=tiny-s T=1 seed=0 failed: invalid config (1 problem(s)): - visual_tokens=50: does not tile "
        "the 16x16 vision grid" in out
    )
    assert (
        f"[5/6] llm=tiny-s T=4 seed=0 ended: SLURM job 77_4 ended without a result; see {ended}/77_4_0_log.err"
        in out
    )
    assert (
        "stopped  llm=tiny-s T=16 seed=0 interrupted: its process is gone; re-run the sweep to redo it" in out
    )
    assert out.splitlines()[-1] == f"{sweep}: 6 points: 3 done, 2 failed, 1 interrupted | none left"


def test_status_without_a_points_file_finds_the_run_folders(tmp_path):
    """A sweep folder from another sweeper (plain Hydra -m) still shows what its folders hold."""
    sweep = tmp_path / "sweep"
    finish(sweep, POINTS[0], time.time())
    start(sweep, POINTS[1], time.time())
    text, counts = sweep_status(sweep)
    assert counts["done"] == 1 and counts["running"] == 1 and counts["pending"] == 0
    assert text.splitlines()[0].startswith("[1/2] llm=tiny-xs T=1 seed=0 done")


def test_live_progress_prints_one_line_per_finished_point_with_an_eta(tmp_path):
    sweep = tmp_path / "sweep"
    plan(sweep, time.time())
    finish(sweep, POINTS[0], time.time() - 5000)  # done before this sweep, for this config
    out = io.StringIO()
    progress = SweepProgress(sweep, out, interval=3600)  # polled by hand below
    progress.begin(POINTS, already_done=[POINTS[0]], parallel=", 2 at a time")
    progress.started -= 120  # as if it had started two minutes ago
    finish(sweep, POINTS[1], time.time())
    finish(sweep, POINTS[2], time.time(), ok=False, message="trainer.max_steps=0: must be an integer >= 1")
    progress.poll()
    progress.unlaunched("#5 llm=tiny-s visual_tokens=abc", "could not compose")
    progress.poll()  # nothing new: no line twice
    progress.end()
    lines = out.getvalue().splitlines()
    assert (
        lines[0] == f"sweep: 6 points in {sweep}, 5 to run, 2 at a time; each point logs to <run>/train.log"
    )
    assert lines[1] == "[1/6] skipping 1 point already done for this config: llm=tiny-xs T=1 seed=0"
    assert (
        lines[2]
        == "[2/6] llm=tiny-xs T=4 seed=0 done in 41 s, error reasoning 0.43 / ocr 0.12 | 4 left, ETA 8 min"
    )
    assert lines[3] == (
        "[3/6] llm=tiny-xs T=16 seed=0 failed: trainer.max_steps=0: must be an integer >= 1 | 3 left, ETA 3 min"
    )
    assert lines[4].startswith(
        "[4/6] #5 llm=tiny-s visual_tokens=abc failed: could not compose | 2 left, ETA"
    )
    assert lines[5] == "sweep finished in 2 min; 2 without a result"
    assert len(lines) == 6


def test_durations_read_as_a_person_plans():
    assert [duration(s) for s in (41.2, 89, 95, 360, 5399, 5400, 7260)] == [
        "41 s",
        "89 s",
        "2 min",
        "6 min",
        "90 min",
        "1 h 30 min",
        "2 h 01 min",
    ]


def _two_worker_sweep():
    """A local sweep of 4 sizes x 3 T on 2 workers, the small LLMs first (grid order), each point taking
    30 s plus a time proportional to its work (an independent simulation of what the ETA has to predict)."""
    sizes = [
        {"steps": 2000, "llm_params": n, "visual_tokens": t}
        for n in (20_000, 60_000, 180_000, 540_000)
        for t in (1, 4, 16)
    ]
    took = [30 + 5e-9 * s["steps"] * s["llm_params"] * (13 + s["visual_tokens"]) for s in sizes]
    free, ends = [0.0, 0.0], []
    for seconds in took:
        worker = free.index(min(free))
        free[worker] += seconds
        ends.append(free[worker])
    return sizes, took, ends, max(ends)


def test_eta_weighs_points_by_their_size():
    sizes, took, ends, makespan = _two_worker_sweep()
    for k in (6, 8, 10):  # once the two smaller sizes are done, the slope of time against work is known
        now = sorted(ends)[k - 1]
        finished = [i for i, end in enumerate(ends) if end <= now]
        left = [i for i, end in enumerate(ends) if end > now]
        records = {i: {"status": "done", "wall_time_s": took[i], "text_tokens": 13.0} for i in finished}
        weighed = eta_seconds(now, [(sizes[i], records[i]) for i in finished], [sizes[i] for i in left])
        same = eta_seconds(now, [(None, records[i]) for i in finished], [None for _ in left])
        truth = makespan - now
        assert abs(weighed - truth) / truth < 0.25, (k, weighed, truth)
        assert same < truth / 2, (k, same, truth)  # what a count of points alone says: far too early


def test_eta_without_a_rising_line_counts_points():
    """One size finished (no slope yet), or a size unknown: every point weighs the same."""
    small = {"steps": 10, "llm_params": 100, "visual_tokens": 1}
    done = [(small, {"status": "done", "wall_time_s": 40.0, "text_tokens": 5})] * 2
    big = {"steps": 10, "llm_params": 10_000, "visual_tokens": 16}
    assert eta_seconds(100.0, done, [big, big]) == 100.0  # 2 finished in 100 s, 2 left
    assert eta_seconds(100.0, [], [big]) is None
    assert eta_text(2, None) == "2 left" and eta_text(0, 5.0) == "none left"


def test_status_weighs_the_points_left_by_the_sizes_the_sweeper_wrote(tmp_path):
    sizes, took, ends, makespan = _two_worker_sweep()
    rels = [f"llm={s['llm_params']}/T={s['visual_tokens']}/seed=0" for s in sizes]
    sweep, now = tmp_path / "sweep", time.time()
    cut = sorted(ends)[7]  # 8 points finished
    t0 = now - cut
    sweep.mkdir()
    (sweep / POINTS_FILE).write_text(
        json.dumps({"started": t0, "points": rels, "sizes": dict(zip(rels, sizes, strict=True))})
    )
    for rel, seconds, end in zip(rels, took, ends, strict=True):
        if end <= cut:
            start(sweep, rel, t0 + end - seconds)
            path = sweep / rel / "result.json"
            record = {"status": "done", "wall_time_s": seconds, "text_tokens": 13.0, "metrics": {}}
            path.write_text(json.dumps(record))
            os.utime(path, (t0 + end, t0 + end))
    text, counts = sweep_status(sweep)
    assert counts["done"] == 8 and counts["pending"] == 4
    last = text.splitlines()[-1]
    assert last.startswith(f"{sweep}: 12 points: 8 done, 0 failed, 4 pending | 4 left, ETA "), last
    minutes = last.split("ETA ")[1]
    assert minutes.endswith(" min"), last
    truth = (makespan - cut) / 60
    assert abs(float(minutes[: -len(" min")]) - truth) / truth < 0.25, (last, truth)
