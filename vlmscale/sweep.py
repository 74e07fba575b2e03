"""A sweep never loses a point and can be followed: every grid point ends with a record, the console shows
one line per finished point with an ETA, the sweep always ends with its table.

- `PointByPointSweep` (the sweeper behind `hydra/sweeper: vlmscale`, see hydra_plugins/vlmscale_launcher):
  before launching, each point is composed and its run folder checked writable; a point that cannot even
  start (a composition error, a folder that cannot be written) is recorded as failed in
  `<sweep dir>/unlaunched.json` and the others launch. A job that fails inside Hydra's own set-up (its log
  file, its .hydra folder) makes a launcher raise for the whole batch; the batch is then launched again one
  point at a time, skipping points that already wrote their result, and each point that still fails gets a
  failed `result.json` naming the error. Job exceptions never abort the sweep (train.py records them).
  While the points run, `vlmscale.progress.SweepProgress` prints a line per finished point.
- `PointLog` (a Hydra callback, in each point's process): marks the point started (`.hydra/job.json`) and, in
  a local sweep, sends everything the point prints (library bars, Lightning's info lines, warnings) to its
  log file `<run>/train.log`, so the console holds the progress lines only.
- `SweepSummary` (a Hydra callback): at the end, `<sweep dir>/results.csv` (via `analysis.collect`, with the
  unlaunched points as failed rows), the done / failed / missing counts, and a non-zero exit when any point
  did not end `done` (2 when none did and every failure is a user error: a bad value, a missing file). Re-running the same
  command re-runs only those points: train.py skips run folders whose result.json is `done` for the same
  result hash.

`python -m vlmscale.sweep status DIR` prints the progress lines of a sweep folder (say a SLURM sweep, from a
login node): finished points with their errors or messages, the running and pending ones, and the ETA.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from vlmscale.contract import RESULT_FILE, parse_run_dir, to_plain
from vlmscale.errors import USER_ERROR_EXIT, MissingFileError, command
from vlmscale.progress import JOB_FILE, POINTS_FILE, SweepProgress, sweep_status
from vlmscale.results import failure_record, is_done, result_hash, write_json_atomic, write_result

log = logging.getLogger("vlmscale.sweep")

UNLAUNCHED_FILE = "unlaunched.json"  # points that could not start, by run folder (relative to the sweep)


def unwritable_reason(folder: Path) -> str | None:
    """Why `folder` cannot hold a run's files (it is created if missing), or None when it can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return (
            f"run folder {folder} is not writable ({type(err).__name__}: {err}); fix its permissions or "
            "remove what is in the way, then re-run the sweep"
        )
    return None


def point_size(config: Any) -> dict[str, int] | None:
    """What the progress weighs a point by (vlmscale.progress.eta_seconds): its training steps, its LLM's
    non-embedding parameters and its visual tokens; None when the LLM's architecture is not known here."""
    from omegaconf import OmegaConf

    from vlmscale.memory import llm_shape

    try:
        llm = OmegaConf.to_container(config.llm, resolve=True)
        steps = int(OmegaConf.select(config, "trainer.max_steps", default=-1) or -1)
        return {
            "steps": steps if steps > 0 else 1,  # epoch-based: the points of one sweep share their data
            "llm_params": llm_shape(llm).non_embedding_params,
            "visual_tokens": int(config.visual_tokens),
        }
    except Exception:  # an unknown or unresolvable architecture only costs the ETA its weights
        return None


def _has_fresh_result(run_dir: Path | None, since: float) -> bool:
    path = run_dir / RESULT_FILE if run_dir is not None else None
    try:
        return path is not None and path.stat().st_mtime >= since
    except OSError:
        return False


class PointByPointSweep:
    """Mixin for Hydra's BasicSweeper (same grid syntax, same batches) that launches robustly, see above."""

    def sweep(self, arguments: list[str]) -> Any:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        params = self._parse_config()
        params.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(params), self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        problem = unwritable_reason(sweep_dir)
        if problem:
            raise RuntimeError(f"sweep folder: {problem}; nothing was launched")
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        self._started = time.time()
        self._unlaunched: dict[str, dict[str, Any]] = {}
        self._sizes: dict[int, dict[str, int] | None] = {}  # by point index, for the ETA
        self._progress: SweepProgress | None = None
        batches, first_index = [], 0
        while not self.is_done():  # every point checked before any runs: the progress knows the whole grid
            batch = self.get_job_batch()
            batches.append([self._check_point(first_index + i, list(o)) for i, o in enumerate(batch)])
            first_index += len(batch)
        points = [(self._key(*p[:3]), p) for b in batches for p in b]
        rels = [rel for rel, _ in points]
        sizes = {rel: self._sizes.get(p[0]) for rel, p in points}
        write_json_atomic(sweep_dir / POINTS_FILE, {"started": self._started, "points": rels, "sizes": sizes})

        with console() as out, quiet_launcher_lines():
            self._progress = SweepProgress(sweep_dir, out)
            self._progress.begin(rels, {rel for rel, p in points if p[4]}, self._pace(), sizes)
            for key, entry in self._unlaunched.items():  # those found before the progress began
                self._progress.unlaunched(key, entry["error"]["message"])
            try:
                returns = [self._launch_ready(points) for points in batches]
            finally:
                self._progress.end()
        write_json_atomic(sweep_dir / UNLAUNCHED_FILE, self._unlaunched)
        return returns

    def _key(self, index: int, overrides: list[str], run_dir: Path | None) -> str:
        """A point's name in points.json and unlaunched.json: its run folder, relative to the sweep folder
        (`#<index> <overrides>` for one whose config did not compose)."""
        if run_dir is None:
            return f"#{index} {' '.join(overrides)}"
        return str(run_dir.relative_to(self.config.hydra.sweep.dir))

    def _pace(self) -> str:
        """How the points run, for the first line: `, 2 at a time` or `, as a SLURM job array`."""
        launcher = self.config.hydra.launcher
        if on_slurm(launcher):
            return ", as a SLURM job array"
        n_jobs = launcher.get("n_jobs")
        return f", {n_jobs} at a time" if n_jobs else ", one at a time"

    # -- before launching

    def _check_point(
        self, index: int, overrides: list[str]
    ) -> tuple[int, list[str], Path | None, bool, bool]:
        """(index, overrides, run folder, ready, already done). A point that cannot start is recorded, not
        launched; one already done for this config is launched (train.py skips it) and shown as such."""
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf, open_dict

        saved = HydraConfig.instance().cfg
        run_dir, done = None, False
        try:
            config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(config):
                config.hydra.job.id = config.hydra.job.num = index
            HydraConfig.instance().set_config(config)
            run_dir = Path(str(config.hydra.sweep.dir)) / str(OmegaConf.select(config, "hydra.sweep.subdir"))
            problem = unwritable_reason(run_dir)
            error = RuntimeError(problem) if problem else None
            done = error is None and will_be_skipped(config, run_dir)
            self._sizes[index] = point_size(config)
        except Exception as err:  # a point whose config does not compose
            error = err
        finally:
            HydraConfig.instance().cfg = saved
        if error is not None:
            self._record_unlaunched(index, overrides, run_dir, error)
        return index, overrides, run_dir, error is None, done

    def _record_unlaunched(
        self, index: int, overrides: list[str], run_dir: Path | None, error: Exception
    ) -> None:
        key = self._key(index, overrides, run_dir)
        self._unlaunched[key] = {"overrides": overrides, "error": failure_record(error)}
        if self._progress is not None:
            self._progress.unlaunched(key, self._unlaunched[key]["error"]["message"])
        log.debug("point #%d not launched (%s): %s", index, " ".join(overrides), error)

    # -- launching

    def _launch_ready(self, points: Sequence[tuple[int, list[str], Path | None, bool, bool]]) -> list[Any]:
        """Launch the ready points in runs of consecutive indices (job numbers stay those of the grid)."""
        results, run = [], []
        for point in [*points, None]:
            if point is not None and point[3] and (not run or point[0] == run[-1][0] + 1):
                run.append(point)
                continue
            if run:
                results += self._launch(run)
            run = [point] if point is not None and point[3] else []
        return results

    def _launch(self, points: Sequence[tuple[int, list[str], Path | None, bool, bool]]) -> list[Any]:
        from hydra.core.utils import JobStatus

        try:
            returns = self.launcher.launch([p[1] for p in points], initial_job_idx=points[0][0])
        except Exception as err:  # Hydra's job set-up failed in one point and took the batch down
            if len(points) == 1:
                self._record_failed(points[0], err)
                return []
            log.warning("launch of %d points failed (%s); launching them one at a time", len(points), err)
            return [
                r for p in points if not _has_fresh_result(p[2], self._started) for r in self._launch([p])
            ]
        for point, job in zip(points, returns):
            if job.status == JobStatus.FAILED:
                self._record_failed(point, job._return_value)  # return_value would raise it
        return list(returns)

    def _record_failed(
        self, point: tuple[int, list[str], Path | None, bool, bool], error: BaseException
    ) -> None:
        """A failed result.json for a point whose job ended without writing one (train.py writes its own)."""
        index, overrides, run_dir, _, _ = point
        log.debug("point #%d (%s) failed: %s", index, " ".join(overrides), error)
        if _has_fresh_result(run_dir, self._started):
            return
        point_keys = parse_run_dir(run_dir.relative_to(self.config.hydra.sweep.dir))
        record = {"status": "failed", "error": failure_record(error), **point_keys}
        record.update(run_dir=str(run_dir), overrides=overrides)
        try:
            write_result(run_dir, record)
        except OSError as err:
            self._record_unlaunched(index, overrides, run_dir, RuntimeError(f"{error}; and {err}"))


def will_be_skipped(config: DictConfig, run_dir: Path) -> bool:
    """Whether train.py will skip this point: its folder holds a `done` result for the same result hash (the
    hash of the task's config, as train.py computes it; the `hydra` node is not part of it)."""
    from omegaconf import OmegaConf

    try:
        task = to_plain(OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]))
        return bool(task.get("skip_done", True)) and is_done(run_dir, result_hash(task))
    except Exception:  # a config that resolves only inside the job: it will tell there
        return False


def on_slurm(launcher: DictConfig) -> bool:
    """A submitit launcher (hydra/launcher=slurm, whatever class runs it): its config names its folder."""
    return "submitit_folder" in launcher


@contextmanager
def console() -> Iterator[TextIO]:
    """The launching terminal, kept apart: points that run in this process (Hydra's basic launcher) send
    their output to their own log file for as long as they run (`PointLog`), the progress lines must not."""
    try:
        stream = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    except (AttributeError, OSError, ValueError):  # no real stdout (e.g. captured in-process)
        yield sys.stdout
        return
    with stream:
        yield stream


@contextmanager
def quiet_launcher_lines() -> Iterator[None]:
    """The launchers' `#12 : llm=... visual_tokens=...` lines say what the progress lines say better."""
    loggers = [logging.getLogger(name) for name in ("hydra_plugins", "hydra._internal.core_plugins")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# ------------------------------------------------------------------------------------------- in a point
class PointLog(Callback):
    """In each point's process: `.hydra/job.json` says when and where it started and when it ended (for
    `sweep status`), and
    in a local sweep everything the point prints goes to its log file instead of the shared console.

    Local means Hydra's basic or joblib launcher: their points print to the terminal the sweep runs in. On
    SLURM a point's console is already its own file (submitit's `.submitit/<job>/<job>_0_log.out/err`)."""

    def __init__(self) -> None:
        self._saved: list[tuple[int, int]] = []  # (fd, a copy of what it was) to restore at the job's end
        self._console_handlers: list[logging.Handler] = []
        self._job: dict[str, Any] | None = None  # this process's running point, as in its job.json

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        run_dir = Path(config.hydra.runtime.output_dir)
        slurm = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        job = {
            "started": time.time(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm_job_id": "_".join(slurm) if all(slurm) else os.environ.get("SLURM_JOB_ID"),
        }
        write_json_atomic(run_dir / JOB_FILE, job)
        self._job = job
        if on_slurm(config.hydra.launcher):
            return
        self._into_file(run_dir / f"{config.hydra.job.name}.log")

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._job is not None:  # ended, with a result or (skipped as done) the one it had
            write_json_atomic(
                Path(config.hydra.runtime.output_dir) / JOB_FILE, {**self._job, "ended": time.time()}
            )
            self._job = None
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in reversed(self._saved):
            os.dup2(copy, fd)
            os.close(copy)
        self._saved.clear()
        root = logging.getLogger()
        for handler in self._console_handlers:
            root.addHandler(handler)
        self._console_handlers.clear()

    def _into_file(self, log_file: Path) -> None:
        """stdout and stderr (the file descriptors: C libraries and child processes too) into `log_file`,
        which Hydra's file handler already writes; its console handler is set aside so no line is doubled."""
        target = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        root = logging.getLogger()
        self._console_handlers = [
            h
            for h in root.handlers
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stdout, sys.stderr)
        ]
        for handler in self._console_handlers:
            root.removeHandler(handler)
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            self._saved.append((fd, os.dup(fd)))
            os.dup2(target, fd)
        os.close(target)
        try:  # progress bars belong on a terminal, not in a log file
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass


# ------------------------------------------------------------------------------------------------ summary


class _SacctNoise(logging.Filter):
    """A cluster without accounting (like scripts/slurm-local.sh's) makes submitit warn on every poll."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Bypassing sacct error" not in record.getMessage()


def _point_of(rel: str, overrides: list[str]) -> dict[str, Any]:
    """The grid point of an unlaunched entry: from its run folder, or (no folder: its config did not
    compose) from its `llm=`, `visual_tokens=` and `seed=` overrides."""
    if not rel.startswith("#"):
        return parse_run_dir(rel)
    point = {}
    for override in overrides:
        key, _, value = override.partition("=")
        if key in ("llm", "visual_tokens", "seed"):
            point[key] = int(value) if value.isdigit() else value
    return point


def sweep_table(sweep_dir: Path):
    """The sweep's table (`analysis.collect`) with the points that could not start as failed rows, and the
    list of unreadable result files."""
    import pandas as pd

    from analysis.collect import collect_sweep
    from analysis.errors import AnalysisInputError

    try:
        collected = collect_sweep(sweep_dir)
        table, corrupt = collected.table, collected.corrupt
    except AnalysisInputError:  # no result.json at all: every point failed to start
        table, corrupt = pd.DataFrame(columns=["status", "path"]), []
    path = sweep_dir / UNLAUNCHED_FILE
    unlaunched = json.loads(path.read_text()) if path.is_file() else {}
    rows = [
        {
            "status": "failed",
            **_point_of(rel, entry.get("overrides") or []),
            "path": rel,
            "error.type": entry["error"]["type"],
            "error.message": entry["error"]["message"],
            "error.user_error": entry["error"].get("user_error", False),
        }
        for rel, entry in unlaunched.items()
    ]
    if rows:
        table = pd.concat(
            [table[~table["path"].isin(list(unlaunched))], pd.DataFrame(rows)], ignore_index=True
        )
    return table, corrupt


class SweepSummary(Callback):
    def __init__(self, table_name: str = "results.csv", fail_on_error: bool = True) -> None:
        self.table_name = table_name
        self.fail_on_error = fail_on_error

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        for name in ("submitit", "HYDRA"):
            logging.getLogger(name).addFilter(_SacctNoise())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        import pandas as pd

        from analysis.collect import write_table

        sweep_dir = Path(config.hydra.sweep.dir)
        table, corrupt = sweep_table(sweep_dir)
        table_path = write_table(table, sweep_dir / self.table_name)
        counts = table["status"].value_counts().to_dict() if len(table) else {}
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"
        log.info("sweep: %d points in %s (%s); table: %s", len(table), sweep_dir, summary, table_path)
        not_done = table[table["status"] != "done"]
        for _, row in not_done.iterrows():
            log.error(
                "point %s ended %s: %s", row.get("path"), row.get("status"), row.get("error.message", "")
            )
        for path, reason in corrupt:
            log.error("unreadable result %s: %s", path, reason)
        if self.fail_on_error and (len(not_done) or corrupt):
            log.error("re-run the same command to redo only these points")
            # Nothing ran and every point says the input is wrong: the sweep as a whole was a user error.
            user_errors = not_done.get("error.user_error", pd.Series(False, index=not_done.index))
            all_user = len(not_done) == len(table) and not corrupt and user_errors.eq(True).all()
            sys.exit(USER_ERROR_EXIT if all_user else 1)


# ------------------------------------------------------------------------------------------- the command
@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vlmscale.sweep",
        description="Follow a sweep from its folder (local or SLURM): one line per finished point with its "
        "errors or its failure message, then the running and pending points, the counts and the ETA.",
        epilog="example: python -m vlmscale.sweep status multirun/tiny",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="where a sweep stands, from its folder")
    status.add_argument("sweep_dir", type=Path, help="the sweep folder (hydra.sweep.dir)")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        raise MissingFileError(f"{args.sweep_dir}: no such sweep folder (the sweep's hydra.sweep.dir)")
    text, counts = sweep_status(args.sweep_dir)
    if not any(counts.values()):
        raise MissingFileError(
            f"{args.sweep_dir} holds no sweep points ({POINTS_FILE}, run folders): is it a sweep folder?"
        )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
