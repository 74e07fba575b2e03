"""A sweep never loses a point: every grid point ends with a record, the sweep always ends with its table.

Two pieces, both in the launching process:
- `PointByPointSweep` (the sweeper behind `hydra/sweeper: vlmscale`, see hydra_plugins/vlmscale_launcher):
  before launching, each point is composed and its run folder checked writable; a point that cannot even
  start (a composition error, a folder that cannot be written) is recorded as failed in
  `<sweep dir>/unlaunched.json` and the others launch. A job that fails inside Hydra's own set-up (its log
  file, its .hydra folder) makes a launcher raise for the whole batch; the batch is then launched again one
  point at a time, skipping points that already wrote their result, and each point that still fails gets a
  failed `result.json` naming the error. Job exceptions never abort the sweep (train.py records them).
- `SweepSummary` (a Hydra callback): at the end, `<sweep dir>/results.csv` (via `analysis.collect`, with the
  unlaunched points as failed rows), the done / failed / missing counts, and a non-zero exit when any point
  did not end `done`. Re-running the same command re-runs only those points: train.py skips run folders whose
  result.json is `done` for the same result hash.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from vlmscale.contract import RESULT_FILE, parse_run_dir
from vlmscale.results import failure_record, write_json_atomic, write_result

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
        returns, first_index = [], 0
        while not self.is_done():
            batch = self.get_job_batch()
            points = [self._check_point(first_index + i, list(o)) for i, o in enumerate(batch)]
            returns.append(self._launch_ready(points))
            first_index += len(batch)
        write_json_atomic(sweep_dir / UNLAUNCHED_FILE, self._unlaunched)
        return returns

    # -- before launching

    def _check_point(self, index: int, overrides: list[str]) -> tuple[int, list[str], Path | None, bool]:
        """(index, overrides, run folder, ready). A point that cannot start is recorded, not launched."""
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf, open_dict

        saved = HydraConfig.instance().cfg
        run_dir = None
        try:
            config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(config):
                config.hydra.job.id = config.hydra.job.num = index
            HydraConfig.instance().set_config(config)
            run_dir = Path(str(config.hydra.sweep.dir)) / str(OmegaConf.select(config, "hydra.sweep.subdir"))
            problem = unwritable_reason(run_dir)
            error = RuntimeError(problem) if problem else None
        except Exception as err:  # a point whose config does not compose
            error = err
        finally:
            HydraConfig.instance().cfg = saved
        if error is not None:
            self._record_unlaunched(index, overrides, run_dir, error)
        return index, overrides, run_dir, error is None

    def _record_unlaunched(
        self, index: int, overrides: list[str], run_dir: Path | None, error: Exception
    ) -> None:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        key = (
            str(run_dir.relative_to(sweep_dir)) if run_dir is not None else f"#{index} {' '.join(overrides)}"
        )
        self._unlaunched[key] = {"overrides": overrides, "error": failure_record(error)}
        log.error("point #%d not launched (%s): %s", index, " ".join(overrides), error)

    # -- launching

    def _launch_ready(self, points: Sequence[tuple[int, list[str], Path | None, bool]]) -> list[Any]:
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

    def _launch(self, points: Sequence[tuple[int, list[str], Path | None, bool]]) -> list[Any]:
        from hydra.core.utils import JobStatus

        try:
            returns = self.launcher.launch([p[1] for p in points], initial_job_idx=points[0][0])
        except Exception as err:  # Hydra's job set-up failed in one point and took the batch down
            if len(points) == 1:
                self._record_failed(points[0], err)
                return []
            log.error("launch of %d points failed (%s); launching them one at a time", len(points), err)
            return [
                r for p in points if not _has_fresh_result(p[2], self._started) for r in self._launch([p])
            ]
        for point, job in zip(points, returns):
            if job.status == JobStatus.FAILED:
                self._record_failed(point, job._return_value)  # return_value would raise it
        return list(returns)

    def _record_failed(self, point: tuple[int, list[str], Path | None, bool], error: BaseException) -> None:
        """A failed result.json for a point whose job ended without writing one (train.py writes its own)."""
        index, overrides, run_dir, _ = point
        log.error("point #%d (%s) failed: %s", index, " ".join(overrides), error)
        if _has_fresh_result(run_dir, self._started):
            return
        point_keys = parse_run_dir(run_dir.relative_to(self.config.hydra.sweep.dir))
        record = {"status": "failed", "error": failure_record(error), **point_keys}
        record.update(run_dir=str(run_dir), overrides=overrides)
        try:
            write_result(run_dir, record)
        except OSError as err:
            self._record_unlaunched(index, overrides, run_dir, RuntimeError(f"{error}; and {err}"))


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
            sys.exit(1)
