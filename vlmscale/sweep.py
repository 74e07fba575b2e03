"""End-of-sweep bookkeeping, as a Hydra callback (runs in the launching process, after every point).

It turns the sweep folder into its results table (`<sweep dir>/results.csv`, via `analysis.collect`), says
how many points are done / failed / missing, and makes the command exit non-zero when any point did not end
`done`, so scripts and CI notice. Re-running the same command re-runs only those points (train.py skips run
folders whose result.json is `done` for the same config hash).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("vlmscale.sweep")


class _SacctNoise(logging.Filter):
    """A cluster without accounting (like scripts/slurm-local.sh's) makes submitit warn on every poll."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Bypassing sacct error" not in record.getMessage()


class SweepSummary(Callback):
    def __init__(self, table_name: str = "results.csv", fail_on_error: bool = True) -> None:
        self.table_name = table_name
        self.fail_on_error = fail_on_error

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        for name in ("submitit", "HYDRA"):
            logging.getLogger(name).addFilter(_SacctNoise())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from analysis.collect import collect_sweep, write_table

        sweep_dir = Path(config.hydra.sweep.dir)
        collected = collect_sweep(sweep_dir)
        table_path = write_table(collected.table, sweep_dir / self.table_name)
        log.info("sweep: %s; table: %s", collected.summary(), table_path)
        table = collected.table
        not_done = table[table["status"] != "done"]
        for _, row in not_done.iterrows():
            log.error(
                "point %s ended %s: %s", row.get("path"), row.get("status"), row.get("error.message", "")
            )
        for path, reason in collected.corrupt:
            log.error("unreadable result %s: %s", path, reason)
        if self.fail_on_error and (len(not_done) or collected.corrupt):
            log.error("re-run the same command to redo only these points")
            sys.exit(1)
