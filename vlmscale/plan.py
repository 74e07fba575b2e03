"""What a sweep costs before it launches: per point and in total, tokens, strategy, micro-batch, GPU-hours, and
the run folders already done. Nothing is launched.

    python -m vlmscale.plan +sweep=grid                            # the same overrides as python -m vlmscale.train
    python -m vlmscale.plan +sweep=grid visual_tokens=1,16 cluster.gpu=H100
    python -m vlmscale.plan --text-tokens 180 +sweep=grid          # text tokens per sample, when the data is not here
    python -m vlmscale.plan --add-row RUN_DIR                      # a finished run's throughput, as a table row

Per point (the config composed exactly as the sweep's job would be, trainer=auto resolved):
- samples = trainer.max_steps x global batch (micro-batch x accumulation x processes); epochs = samples / the
  training records; tokens = samples x LLM positions per sample (text tokens - the <image> placeholder + T),
  counted with the run's own tokenizer and conversation template on up to 2000 records of the data config's
  training split (images are not opened). Where the data or the tokenizer is not here (LLaVA on a laptop), the
  record count of the published file and an assumed text length stand in, flagged in the output.
- model FLOPs per sample: vlmscale.flops.training_flops (the GPU check's MFU numerator): LLM passes over the
  positions, the connector, the frozen tower and QueCC's question pass, gradient checkpointing's extra forward;
  padding to the longest sample of a batch, validation and the final evaluation are not counted.
- GPU-hours = samples x FLOPs per sample / the achieved FLOP/s per GPU of the throughput rows of the point's GPU
  kind (`cluster.gpu`, or the CPU) and strategy (docs/gpu/throughput.json, vlmscale/throughput.py): tokens/s
  scales with FLOPs per token at a fixed MFU; each row says whether it was measured, interpolated or
  extrapolated (and how far in N and T). Rows were measured on one GPU: multi-GPU communication is not in them.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import vlmscale.resolvers  # noqa: F401  (trainer=auto resolves while a point is composed)
from vlmscale import flops, memory, throughput
from vlmscale.contract import RESULT_FILE, to_plain
from vlmscale.results import read_result, result_hash

log = logging.getLogger("vlmscale.plan")

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"
COUNT_RECORDS = 2000  # records whose text is tokenised for the mean length
# Published record counts (the LLaVA-1.5 files; 665,298 with 40,688 text-only: haotian-liu/LLaVA issue #657) and
# ASSUMED text lengths (tokens per record, template included; never measured here): what stands in when the
# data file is not on this machine. Counting the file (LLAVA_DATA_DIR) or --text-tokens replaces them.
PUBLISHED_DATA = {
    "llava_pretrain": {"records": 558_128, "image_fraction": 1.0, "text_tokens": 50, "query_tokens": 12},
    "llava_finetune": {"records": 665_298, "image_fraction": 1 - 40_688 / 665_298, "text_tokens": 250, "query_tokens": 20},
}  # fmt: skip


class PlanError(ValueError):
    """A user error: the message says what and the fix (exit status 2)."""


# -- the points of a sweep, composed as Hydra composes each job ------------------------------------------------
def sweep_points(overrides: Sequence[str]) -> list[Any]:
    """One composed config (hydra node included) per point of the sweep these overrides describe: the sweep
    config's `hydra.sweeper.params` and the command line's comma lists, crossed as Hydra's sweeper crosses them."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(list(overrides))
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        primary = compose("train", overrides=fixed, return_hydra_config=True)
        params = primary.hydra.get("sweeper", {}).get("params") or {}
        arguments = [f"{k}={v}" for k, v in params.items()] + list(overrides)
        points = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)[0]
        multirun = bool(params) or any(o.is_sweep_override() for o in parsed)
        return [(compose("train", overrides=p, return_hydra_config=True), multirun) for p in points]


def run_dir_of(cfg: Any, multirun: bool) -> Path:
    from omegaconf import OmegaConf

    if multirun:
        return Path(OmegaConf.select(cfg, "hydra.sweep.dir")) / OmegaConf.select(cfg, "hydra.sweep.subdir")
    return Path(OmegaConf.select(cfg, "hydra.run.dir"))


def job_config(cfg: Any) -> dict[str, Any]:
    """The resolved job config train.run hashes (the hydra node left out)."""
    from omegaconf import OmegaConf, open_dict

    job = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(job):
        job.pop("hydra", None)
    return to_plain(job)


# -- data: records and tokens per sample ------------------------------------------------------------------------
@dataclass(frozen=True)
class DataStats:
    records: int  # training records
    samples: tuple[
        tuple[int, bool, int], ...
    ]  # (text tokens incl. the <image> placeholder, has image, question)
    counted: bool  # False: the published count and an assumed length stand in
    note: str = ""
    vocab: int | None = None  # the tokenizer's length, when it was loaded

    def positions(self, visual_tokens: int) -> float:
        return sum(n - img + visual_tokens * img for n, img, _ in self.samples) / len(self.samples)


@lru_cache(maxsize=16)
def _data_stats(data_json: str, tokenizer_json: str, text_tokens: int | None) -> DataStats:
    import json

    data, tokenizer_cfg = json.loads(data_json), json.loads(tokenizer_json)
    published = PUBLISHED_DATA.get(data.get("name"))
    if text_tokens is None:
        try:
            return count_data(data, tokenizer_cfg)
        except (OSError, ValueError, ImportError) as err:  # no data file / tokenizer here
            if published is None:
                raise PlanError(
                    f"cannot count data={data.get('name')} ({type(err).__name__}: {err}); pass --text-tokens N"
                ) from err
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            note = (
                f"{data.get('name')}: {published['records']:,} records (published), {published['text_tokens']} "
                f"text tokens/sample ASSUMED, not counted ({reason[:160]}); count with the data and tokenizer "
                "here, or pass --text-tokens"
            )
            text_tokens = published["text_tokens"]
        else:
            note = ""
    else:
        note = f"{data.get('name')}: {text_tokens} text tokens/sample given (--text-tokens)"
    if published is None:
        raise PlanError(f"data={data.get('name')}: no published record count; count it where the data is")
    images = round(100 * published["image_fraction"])
    samples = tuple([(text_tokens, True, published["query_tokens"])] * images)
    samples += tuple([(text_tokens, False, 0)] * (100 - images))
    records = published["records"] - int(data.get("val_size") or 0)
    return DataStats(records, samples, counted=False, note=note)


def count_data(data: Mapping[str, Any], tokenizer_cfg: Mapping[str, Any]) -> DataStats:
    """Tokenise up to COUNT_RECORDS training records of the data config with the run's tokenizer and template."""
    from vlmscale.assemble import build_tokenizer
    from vlmscale.data import build_datasets

    tokenizer = build_tokenizer(tokenizer_cfg)
    options = {**data, "check_images": False}
    if "progress" in options:
        options["progress"] = False
    train = build_datasets(tokenizer, None, **options)["train"]
    indices = range(len(train))
    if len(train) > COUNT_RECORDS:
        indices = sorted(random.Random(0).sample(indices, COUNT_RECORDS))
    samples = []
    for i in indices:
        enc = train.encode_text(i)
        samples.append(
            (len(enc["input_ids"]), train.records[i].get("image") is not None, len(enc["query_ids"]))
        )
    return DataStats(
        len(train),
        tuple(samples),
        counted=True,
        note=f"{data.get('name')}: {len(train):,} training records, {len(samples)} tokenised",
        vocab=len(tokenizer),
    )


def data_stats(cfg: Mapping[str, Any], text_tokens: int | None) -> DataStats:
    import json

    llm = cfg["llm"]  # what the tokenizer depends on (vlmscale.assemble.build_tokenizer)
    tokenizer_cfg = {
        "llm": {k: llm.get(k) for k in ("tokenizer", "pretrained")},
        "paths": {"cache_dir": (cfg.get("paths") or {}).get("cache_dir")},
    }
    return _data_stats(
        json.dumps(cfg["data"], sort_keys=True), json.dumps(tokenizer_cfg, sort_keys=True), text_tokens
    )


# -- FLOPs of one sample ------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _image_side(vision_json: str, compressor_json: str, projector: str, llm_width: int, visual_tokens: int):
    """(tower FLOPs, connector FLOPs, needs a question pass) of one image, from the modules built on the
    meta device (no memory, no weights): their own flops() methods."""
    import json

    import torch

    from vlmscale.models import build_connector, build_vision_tower

    vision = json.loads(vision_json)
    compressor = dict(json.loads(compressor_json))
    vision_config = vision.get("config") or memory.PUBLISHED_CONFIGS.get(vision.get("pretrained"))
    if vision_config is None:
        vision_config = memory._config_of(vision, "vision")
    with torch.device("meta"):
        tower = build_vision_tower(
            **{**vision, "pretrained": None, "config": vision_config, "pretrain": None}, image_processor=False
        )
        name = compressor.pop("name")
        registered = compressor.pop("type", name)
        connector = build_connector(
            registered,
            projector,
            **compressor,
            visual_tokens=visual_tokens,
            vision_width=tower.hidden_size,
            multilevel_width=tower.multilevel_size,
            llm_width=llm_width,
            grid=tower.grid,
        )
    query = connector.needs_query and getattr(connector.compressor, "query_mode", "separate") == "separate"
    return float(tower.flops()), float(sum(connector.flops().values())), query


def flops_per_sample(cfg: Mapping[str, Any], stats: DataStats, vocab: int | None = None) -> float:
    import json

    llm = memory.llm_shape(cfg["llm"], vocab)
    t = int(cfg["visual_tokens"])
    tower, connector, query_pass = _image_side(
        json.dumps(cfg["vision"], sort_keys=True),
        json.dumps(cfg.get("compressor") or {"name": "none"}, sort_keys=True),
        cfg["projector"]["name"],
        llm.hidden,
        t,
    )
    attn = llm.heads * (llm.hidden // llm.heads)
    trains, recompute = cfg["stage"] == "finetune", bool(cfg.get("gradient_checkpointing"))
    total = 0.0
    for text, image, question in stats.samples:
        positions = text - image + t * image
        llm_pass = flops.llm_pass_flops(
            llm.non_embedding_params, llm.vocab * llm.hidden, llm.layers, attn, positions
        )
        side = tower + (
            flops.query_pass_flops(llm.non_embedding_params, llm.layers, attn, question) if query_pass else 0
        )
        total += flops.training_flops(llm_pass, connector * image, side * image, trains, recompute)
    return total / len(stats.samples)


# -- one point ----------------------------------------------------------------------------------------------
@dataclass
class Point:
    name: str
    run_dir: Path
    status: str  # done | stale (done under another config) | failed | todo
    device: str
    strategy: str
    micro_batch: int
    accumulate: int
    processes: int
    checkpointing: bool
    steps: int
    samples: int
    epochs: float
    positions: float
    flops_per_sample: float
    llm_params: int
    visual_tokens: int
    estimate: throughput.Estimate | None
    stats: DataStats
    actual_gpu_hours: float | None = None
    result: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def tokens(self) -> float:
        return self.samples * self.positions

    @property
    def gpu_hours(self) -> float | None:
        if self.estimate is None:
            return None
        return self.samples * self.flops_per_sample / self.estimate.flops_per_s / 3600


def llm_vocab(llm: Mapping[str, Any], tokenizer_length: int | None) -> int | None:
    """The vocabulary build_vlm leaves: a random-init LLM takes the tokenizer's, a checkpoint grows to it."""
    if tokenizer_length is None:
        return None
    configured = memory.llm_shape(llm).vocab
    return tokenizer_length if llm.get("pretrained") is None else max(configured, tokenizer_length)


def device_of(cfg: Mapping[str, Any]) -> str:
    cluster = cfg.get("cluster") or {}
    if cluster.get("gpu"):
        return str(cluster["gpu"])
    if str(cfg["trainer"].get("accelerator")) == "cpu":
        return "cpu"
    raise PlanError(
        "cluster.gpu is not set: say which GPU kind prices the plan (cluster.gpu=H200, H100, ...)"
    )


def processes_of(cfg: Mapping[str, Any]) -> int:
    trainer = cfg["trainer"]
    return int(trainer.get("devices") or 1) * int(trainer.get("num_nodes") or 1)


def cost_point(
    cfg: Mapping[str, Any],
    table: Sequence[Mapping[str, Any]],
    text_tokens: int | None,
    run_dir: Path | None = None,
) -> Point:
    """The cost of one resolved training config (and its status, when its run folder is given)."""
    from vlmscale.resolvers import strategy_name

    stats = data_stats(cfg, text_tokens)
    trainer = cfg["trainer"]
    micro, accumulate = int(cfg["loader"]["batch_size"]), int(trainer.get("accumulate_grad_batches") or 1)
    processes, steps = processes_of(cfg), int(trainer["max_steps"])
    samples = steps * micro * accumulate * processes
    per_sample = flops_per_sample(cfg, stats, llm_vocab(cfg["llm"], stats.vocab))
    t = int(cfg["visual_tokens"])
    params = memory.llm_shape(cfg["llm"]).params
    strategy = strategy_name(trainer.get("strategy"))
    device = device_of(cfg)
    est = throughput.estimate(table, device, strategy, per_sample, params, t, micro, stats.positions(t))
    point = Point(
        name=str(run_dir) if run_dir else cfg["llm"]["name"],
        run_dir=run_dir or Path("."),
        status="todo",
        device=device,
        strategy=strategy,
        micro_batch=micro,
        accumulate=accumulate,
        processes=processes,
        checkpointing=bool(cfg.get("gradient_checkpointing")),
        steps=steps,
        samples=samples,
        epochs=samples / stats.records,
        positions=stats.positions(t),
        flops_per_sample=per_sample,
        llm_params=params,
        visual_tokens=t,
        estimate=est,
        stats=stats,
    )
    if run_dir is not None:
        point.status, point.result = status_of(run_dir, result_hash(cfg))
        if point.result and point.result.get("train_seconds"):
            point.actual_gpu_hours = float(point.result["train_seconds"]) * processes / 3600
    return point


def status_of(run_dir: Path, expected_hash: str) -> tuple[str, Mapping[str, Any] | None]:
    try:
        result = read_result(run_dir)
    except ValueError:
        return "todo", None
    if not result:
        return "todo", None
    if result.get("status") == "done":
        return ("done" if result.get("config_hash") == expected_hash else "stale"), result
    return "failed", result


def plan(overrides: Sequence[str], table_path: Path, text_tokens: int | None = None) -> list[Point]:
    table = throughput.read_table(table_path)
    points = []
    for cfg, multirun in sweep_points(overrides):
        job = job_config(cfg)
        run_dir = run_dir_of(cfg, multirun)
        point = cost_point(job, table, text_tokens, run_dir)
        point.name = str(run_dir.relative_to(cfg.hydra.sweep.dir)) if multirun else str(run_dir)
        points.append(point)
    return points


# -- a finished run as a throughput row ---------------------------------------------------------------------
def row_from_run(run_dir: Path) -> dict[str, Any]:
    """A throughput row from a done run: its fit time and steps (result.json) over the model FLOPs of its config.
    Its own fit includes validation and checkpoint saves, so the row is what a run of that kind really does."""
    result = read_result(run_dir)
    if not result or result.get("status") != "done" or not result.get("train_seconds"):
        raise PlanError(
            f"{run_dir / RESULT_FILE}: not a done run with train_seconds (written since this feature)"
        )
    if not result.get("train_steps"):
        raise PlanError(f"{run_dir}: its last attempt trained no steps (it only evaluated); nothing to time")
    cfg = result["config"]
    point = cost_point(cfg, [], None)
    per_step = point.samples / point.steps * point.flops_per_sample
    return {
        "device": point.device,
        "strategy": point.strategy,
        "gpus": point.processes,
        "llm": cfg["llm"]["name"],
        "llm_params": point.llm_params,
        "visual_tokens": point.visual_tokens,
        "stage": cfg["stage"],
        "gradient_checkpointing": point.checkpointing,
        "micro_batch": point.micro_batch,
        "positions": point.positions,
        "step_seconds": float(result["train_seconds"]) / int(result["train_steps"]),
        "model_flops_per_step": per_step,
        "tokens_per_s": point.samples
        / point.steps
        * point.positions
        * int(result["train_steps"])
        / float(result["train_seconds"]),
        "source": str(run_dir),
    }


# -- output -------------------------------------------------------------------------------------------------
def _hours(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _count(value: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def format_plan(points: Sequence[Point]) -> str:
    lines = [
        "| point | status | strategy | micro x accum x procs | ckpt | steps | epochs | tokens | TFLOP/sample "
        "| GPU-h | wall h | done GPU-h | basis |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in points:
        est = p.estimate
        wall = None if p.gpu_hours is None else p.gpu_hours / p.processes
        lines.append(
            f"| {p.name} | {p.status} | {p.strategy} | {p.micro_batch} x {p.accumulate} x {p.processes} "
            f"| {'yes' if p.checkpointing else 'no'} | {p.steps} | {p.epochs:.2f} | {_count(p.tokens)} "
            f"| {p.flops_per_sample / 1e12:.3g} | {_hours(p.gpu_hours)} | {_hours(wall)} "
            f"| {_hours(p.actual_gpu_hours)} | {est.basis if est else 'no throughput row'} |"
        )
    notes = sorted({p.stats.note for p in points if p.stats.note})
    devices = sorted({p.device for p in points})
    priced = [p for p in points if p.gpu_hours is not None]
    total = sum(p.gpu_hours for p in priced)
    done = sum(p.gpu_hours for p in priced if p.status == "done")
    spent = sum(p.actual_gpu_hours or 0.0 for p in points if p.status == "done")
    lines += [""] + [f"data: {n}" for n in notes]
    missing = sorted({f"{p.device}/{p.strategy}" for p in points if p.gpu_hours is None})
    if missing:
        lines.append(
            f"not priced: {sum(p.gpu_hours is None for p in points)} points, no throughput row for "
            f"{', '.join(missing)} (measure one: the GPU check, or --add-row RUN_DIR of a done run)"
        )
    n_done = sum(p.status == "done" for p in points)
    lines.append(
        f"this sweep costs ~{_hours(total if priced else None)} GPU-hours on {'/'.join(devices)}, {_hours(done)} already done "
        f"({n_done} of {len(points)} points done; their runs took {_hours(spent)} GPU-hours)"
    )
    if any(p.estimate and p.estimate.extrapolated for p in priced):
        lines.append(
            "extrapolated rows: tokens/s held at the nearest measurement's MFU; measure them to be sure"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Other arguments are Hydra overrides, as for vlmscale.train.",
    )
    parser.add_argument("--throughput", default=str(throughput.DEFAULT_TABLE), help="throughput table (JSON)")
    parser.add_argument("--text-tokens", type=int, help="text tokens per sample instead of counting the data")
    parser.add_argument(
        "--add-row", metavar="RUN_DIR", help="add a done run's measured throughput to the table"
    )
    args, overrides = parser.parse_known_args(argv)
    # A plan reads what is here (cached tokenizers, local data) and never downloads.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.add_row:
            row = row_from_run(Path(args.add_row))
            throughput.append_rows(args.throughput, [row])
            print(f"added a {row['device']}/{row['strategy']} row to {args.throughput}")
            return 0
        unknown = [o for o in overrides if o.startswith("--")]
        if unknown:
            raise PlanError(f"unknown option {unknown[0]} (python -m vlmscale.plan --help)")
        print(format_plan(plan(overrides, Path(args.throughput), args.text_tokens)))
    except PlanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        from hydra.errors import HydraException

        if isinstance(err, (HydraException, ValueError)):  # a bad override or a choice that cannot be made
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
