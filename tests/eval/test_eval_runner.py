"""The runner on a tiny randomly initialised VLM: batched = unbatched greedy output, files, summary,
result.json update and the checkpoint entry point."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.eval.rescore import rescored_error
from vlmscale.data import decode
from vlmscale.eval.runner import evaluate, generate_answers, summarize, update_result_json
from vlmscale.eval.tasks import CATEGORIES, Sample, build_task

CONF = Path(__file__).resolve().parents[2] / "conf"


def conf(group: str, name: str) -> dict:
    cfg = yaml.safe_load((CONF / group / f"{name}.yaml").read_text())
    cfg.pop("defaults", None)  # Hydra's defaults list (e.g. a tiny LLM's optim choice) is not a builder kwarg
    return cfg


def model_cfg(cache_dir) -> dict:
    return {
        "llm": conf("llm", "tiny-xs"),
        "vision": {**conf("vision", "tiny-clip"), "pretrain": None},  # random weights: no pretraining run
        "compressor": conf("compressor", "quecc"),
        "projector": conf("projector", "mlp2x_gelu"),
        "visual_tokens": 16,
        "paths": {"cache_dir": str(cache_dir)},
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(tokenizer, vlm, cache_dir): the offline tokenizer and a random tiny VLM whose LLM weights are scaled
    up so that greedy answers differ from question to question (a default init answers ':' everywhere)."""
    from vlmscale.data import load_tokenizer
    from vlmscale.models import build_vlm

    cache = tmp_path_factory.mktemp("eval_cache")
    tokenizer = load_tokenizer(None, cache_dir=cache)
    cfg = model_cfg(cache)
    torch.manual_seed(0)
    vlm = build_vlm(
        cfg["llm"], cfg["vision"], cfg["compressor"], cfg["projector"], cfg["visual_tokens"], tokenizer
    )
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in vlm.llm.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return tokenizer, vlm.eval(), cache


def test_batched_greedy_equals_unbatched(tiny, bench_root):
    tokenizer, vlm, _ = tiny
    samples = build_task("synthetic", root=bench_root / "synthetic").load()
    samples.append(
        Sample("text-only", None, "What is written on the board in the picture on the left?", ["x"])
    )
    kwargs = dict(max_new_tokens=6, progress=False)
    one = generate_answers(vlm, tokenizer, vlm.vision.image_processor, samples, batch_size=1, **kwargs)
    five = generate_answers(vlm, tokenizer, vlm.vision.image_processor, samples, batch_size=5, **kwargs)
    two = generate_answers(vlm, tokenizer, vlm.vision.image_processor, samples, batch_size=2, **kwargs)
    assert one == five == two
    assert len(set(one)) == len(one)  # the answers do depend on the prompt and the image


def test_decode_cuts_at_first_stop_token(tiny):
    tokenizer, _, _ = tiny
    ids = tokenizer("red blue", add_special_tokens=False)["input_ids"]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    first = [*ids, eos, *ids]
    tokens = torch.tensor([first, ids + [pad] * (len(first) - len(ids))])
    out = decode(tokens, tokenizer, [eos])
    assert out[0] == "red blue"
    assert out[1] == "red blue"  # pads are special tokens: skipped


def test_summary_category_means():
    s = summarize(
        {
            "gqa": {"error": 0.2, "n_unparseable": 1, "categories": {"reasoning": 0.2}},
            "pope": {"error": 0.4, "n_unparseable": 0, "categories": {"reasoning": 0.4}},
            "textvqa": {"error": 0.9, "n_unparseable": 2, "categories": {"ocr": 0.9}},
            "synthetic": {"error": 0.35, "categories": {"reasoning": 0.3, "ocr": 0.4}},
        }
    )
    assert s["error/reasoning"] == pytest.approx((0.2 + 0.4 + 0.3) / 3)
    assert s["error/ocr"] == pytest.approx((0.9 + 0.4) / 2)
    assert s["error/avg"] == pytest.approx((0.3 + 0.65) / 2)
    assert s["unparseable/textvqa"] == 2 and s["error/synthetic"] == 0.35


def all_tasks(bench_root):
    names = [
        "synthetic",
        "gqa",
        "textvqa",
        "pope",
        "mme",
        "mmbench",
        "scienceqa",
        "seedbench",
        "ai2d",
        "mmmu",
    ]
    names += ["mathvista", "chartqa", "docvqa", "ocrbench"]
    extra = {"pope": {"splits": ["random", "popular"]}}
    return [build_task(n, root=bench_root / n, max_new_tokens=3, **extra.get(n, {})) for n in names]


def test_evaluate_every_format_end_to_end(tiny, bench_root, tmp_path):
    tokenizer, vlm, _ = tiny
    tasks = all_tasks(bench_root)
    out = tmp_path / "eval"
    metrics = evaluate(vlm, tokenizer, vlm.vision.image_processor, tasks, out, batch_size=4, progress=False)
    per_task = {}
    for task in tasks:
        assert 0.0 <= metrics[f"error/{task.name}"] <= 1.0
        # the error is what the task's scorer makes of the predictions on disk (not just what was returned)
        assert metrics[f"error/{task.name}"] == pytest.approx(rescored_error(task, out)), task.name
        scores = json.loads((out / f"{task.name}.scores.json").read_text())
        assert scores["error"] == pytest.approx(metrics[f"error/{task.name}"])
        assert scores["category"] == task.category
        per_task[task.name] = scores
        lines = (out / f"{task.name}.predictions.jsonl").read_text().splitlines()
        rows = [json.loads(x) for x in lines]
        assert len(rows) == scores["n"] > 0
        assert {"id", "question", "references", "prediction", "score", "parsed"} <= set(rows[0])
        assert (
            metrics[f"unparseable/{task.name}"]
            == sum(not r["parsed"] for r in rows)
            == scores["n_unparseable"]
        )
    for category in CATEGORIES:
        expected = [e for s in per_task.values() for c, e in s["categories"].items() if c == category]
        assert metrics[f"error/{category}"] == pytest.approx(sum(expected) / len(expected))
    assert metrics["error/avg"] == pytest.approx((metrics["error/reasoning"] + metrics["error/ocr"]) / 2)
    assert json.loads((out / "scores.json").read_text()) == pytest.approx(metrics)


def test_limit_subsets(tiny, bench_root, tmp_path):
    tokenizer, vlm, _ = tiny
    tasks = [build_task("mmbench", root=bench_root / "mmbench", max_new_tokens=2)]
    evaluate(vlm, tokenizer, vlm.vision.image_processor, tasks, tmp_path, limit=1, progress=False)
    scores = json.loads((tmp_path / "mmbench.scores.json").read_text())
    assert scores["n"] == 4 and scores["n_questions"] == 1 and scores["limit"] == 1


def test_update_result_json(tmp_path):
    from vlmscale.results import read_result, write_result

    with pytest.raises(FileNotFoundError, match="result.json"):
        update_result_json(tmp_path, {"error/avg": 0.5})
    write_result(
        tmp_path, {"status": "done", "llm": "tiny-s", "metrics": {"val/loss": 1.5, "error/avg": 0.9}}
    )
    update_result_json(tmp_path, {"error/avg": 0.5, "error/gqa": 0.25}, {"tasks": ["gqa"]})
    record = read_result(tmp_path)
    assert record["metrics"] == {"val/loss": 1.5, "error/avg": 0.5, "error/gqa": 0.25}
    assert record["llm"] == "tiny-s" and record["status"] == "done" and record["eval"] == {"tasks": ["gqa"]}
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no temp file left


def test_checkpoint_entry_point(tiny, bench_root, tmp_path):
    """`python -m vlmscale.eval ckpt=...` logic: the run's own config rebuilds the model, the checkpoint's
    weights are loaded, answers equal the in-memory model's, and result.json gains the errors."""
    from vlmscale.eval.__main__ import run
    from vlmscale.results import read_result, write_result

    tokenizer, vlm, cache = tiny
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    state = {f"vlm.{k}": v for k, v in vlm.state_dict().items()}
    torch.save({"state_dict": state}, run_dir / "checkpoints" / "last.ckpt")
    write_result(run_dir, {"status": "done", "metrics": {"val/loss": 2.0}, "config": model_cfg(cache)})

    syn = {"root": str(bench_root / "synthetic"), "max_new_tokens": 4}
    cfg = {
        "ckpt": str(run_dir / "checkpoints" / "last.ckpt"),
        "tasks": ["synthetic"],
        "limit": None,
        "use_run_config": True,
        "update_result": True,
        "device": "cpu",
        "eval": {"batch_size": 3, "progress": False, "catalog": {"synthetic": syn}},
        # deliberately wrong model groups: use_run_config takes the run's
        "llm": conf("llm", "tiny-s"),
        "paths": {"cache_dir": "/nonexistent"},
    }
    metrics = run(cfg)
    record = read_result(run_dir)
    assert record["metrics"]["val/loss"] == 2.0
    for key in ("error/synthetic", "error/reasoning", "error/ocr", "error/avg"):
        assert record["metrics"][key] == pytest.approx(metrics[key])
    assert record["eval"]["tasks"] == ["synthetic"]
    assert record["eval"]["scoring"] == {"synthetic": "official"}  # which rule produced the errors
    preds = [json.loads(x)["prediction"] for x in (run_dir / "eval" / "synthetic.predictions.jsonl").open()]
    task = build_task("synthetic", **syn)
    expected = generate_answers(
        vlm,
        tokenizer,
        vlm.vision.image_processor,
        task.load(),
        batch_size=1,
        max_new_tokens=4,
        progress=False,
    )
    assert preds == expected


def test_hydra_eval_config_composes_and_runs(tiny, bench_root, tmp_path):
    """conf/eval.yaml composes the training groups + eval; its resolved form drives the entry point."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from vlmscale.eval.__main__ import run

    _, vlm, cache = tiny
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {f"vlm.{k}": v for k, v in vlm.state_dict().items()}}, ckpt)
    overrides = [
        f"ckpt={ckpt}",
        "tasks=[synthetic]",
        "limit=2",
        "llm=tiny-xs",
        "vision=tiny-clip-random",  # the checkpoint's tower: no pretraining run before its weights load
        "compressor=quecc",
        "visual_tokens=16",
        f"paths.cache_dir={cache}",
        f"out_dir={tmp_path / 'out'}",
        f"eval.catalog.synthetic.root={bench_root / 'synthetic'}",
        "+eval.catalog.synthetic.max_new_tokens=2",
        "eval.scoring={synthetic: official}",
        "eval.progress=false",
        "device=cpu",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="eval", overrides=overrides)
    assert dict(cfg.eval.scoring) == {"synthetic": "official"}  # one name, or a mapping per task
    metrics = run(OmegaConf.to_container(cfg, resolve=True))
    assert set(metrics) >= {"error/synthetic", "error/reasoning", "error/avg"}
    scores = json.loads((tmp_path / "out" / "synthetic.scores.json").read_text())
    assert scores["n"] == 2 and scores["limit"] == 2
    assert not (tmp_path / "result.json").exists()  # no run record here: nothing to update
