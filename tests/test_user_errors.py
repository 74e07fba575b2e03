"""A user error is an answer in every entry point: a bad value or a missing file gives exit status 2 and one
message on stderr, no traceback; a bug (here monkeypatched in) keeps its traceback; `--debug` and
HYDRA_FULL_ERROR=1 show the traceback of a user error too. Each command runs as a user runs it: a process
started from the repository root. (Benchmarks: tests/test_benchmarks_cli.py.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUG = "def bug(*args, **kwargs):\n    raise RuntimeError('an internal bug')\n"


def run(args, cache_dir, env=None, code=None):
    """`python -m <args>` (or `python -c <code> <args>`) from the root, as a user's shell has it."""
    base = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "PYTHONPATH")}
    env = {**base, "VLMSCALE_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def with_bug(module: str, target: str) -> str:
    """Python code that runs `module`'s main with `target` (an attribute path in it) raising a bug."""
    owner, _, name = target.rpartition(".")
    where = f"m.{owner}" if owner else "m"
    return f"import sys, {module} as m\n{BUG}setattr({where}, {name!r}, bug)\nsys.exit(m.main())"


def answered(proc, *fragments):
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert proc.stderr.startswith("error: "), proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr[-3000:]


def crashed(proc):
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" in proc.stderr and "RuntimeError: an internal bug" in proc.stderr, proc.stderr[-3000:]


# ------------------------------------------------------------------------------------- vlmscale.train
@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=-1", "optim.lr=-1: must be a number > 0"),
        ("visual_tokens=abc", "visual_tokens='abc': must be an integer >= 1"),
        ("seed=abc", "seed='abc': must be an integer in [0, 2**32)"),
        ("trainer.max_steps=0", "trainer.max_steps=0: must be an integer >= 1"),
        ("llm=tiny-xxl", "Could not find 'llm/tiny-xxl'"),  # Hydra's own error, same answer
        ("init_from=/no/such/last.ckpt", "init_from='/no/such/last.ckpt': no such checkpoint"),
        ("llm.pretrained=/no/such/model", "llm.pretrained='/no/such/model': no such folder"),
    ],
)
def test_train_answers_a_bad_value_or_a_missing_file(override, message, cache_dir, tmp_path):
    proc = run(["vlmscale.train", override, f"hydra.run.dir={tmp_path}"], cache_dir)
    answered(proc, message)
    assert "Config search path" not in proc.stderr


def test_train_keeps_the_traceback_of_a_bug_and_shows_a_user_errors_with_debug(cache_dir, tmp_path):
    crashed(run([f"hydra.run.dir={tmp_path}"], cache_dir, code=with_bug("vlmscale.train", "validate_config")))
    for args, env in ((["--debug"], None), ([], {"HYDRA_FULL_ERROR": "1"})):
        proc = run(["vlmscale.train", "optim.lr=-1", f"hydra.run.dir={tmp_path}", *args], cache_dir, env)
        assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_a_sweep_of_bad_values_keeps_each_message_in_its_record_and_exits_2(cache_dir, tmp_path):
    proc = run(
        ["vlmscale.train", "-m", "optim.lr=-1", "visual_tokens=1,4", f"hydra.sweep.dir={tmp_path}"], cache_dir
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    for t in (1, 4):
        record = json.loads((tmp_path / "llm=tiny-m" / f"T={t}" / "seed=0" / "result.json").read_text())
        assert record["status"] == "failed" and record["error"]["user_error"] is True
        assert "optim.lr=-1: must be a number > 0" in record["error"]["message"]
        assert f"llm=tiny-m T={t} seed=0 failed: invalid config (1 problem(s)): - optim.lr=-1" in proc.stdout


# -------------------------------------------------------------------------------------- vlmscale.eval
def test_eval_answers_a_missing_checkpoint_and_an_unknown_benchmark(cache_dir, tmp_path):
    answered(run(["vlmscale.eval"], cache_dir), "no checkpoint given: python -m vlmscale.eval ckpt=")
    answered(run(["vlmscale.eval", f"ckpt={tmp_path}/nope.ckpt"], cache_dir), "no such checkpoint")
    in_a_run_folder = (
        f"{tmp_path}/llm=tiny-m/T=16/seed=0/checkpoints/last.ckpt"  # `=` in a path: still a path
    )
    answered(run(["vlmscale.eval", f"ckpt={in_a_run_folder}"], cache_dir), f"ckpt={in_a_run_folder}: no such")
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"a file, never read: the task name fails first")
    answered(
        run(["vlmscale.eval", f"ckpt={ckpt}", "tasks=[gqa,vqa9]"], cache_dir), "unknown eval task 'vqa9'"
    )


def test_eval_answers_a_checkpoint_from_another_config(cache_dir, tmp_path):
    import torch

    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"vlm.connector.projector.0.weight": torch.zeros(3, 3)}}, ckpt)
    args = ["vlmscale.eval", f"ckpt={ckpt}", "llm=tiny-xs", "vision=tiny-clip-random", "use_run_config=false"]
    answered(
        run(args, cache_dir),
        "holds connector weights of another model",
        "the checkpoint comes from another config",
    )


def test_eval_keeps_the_traceback_of_a_bug(cache_dir, tmp_path):
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"x")
    crashed(run([f"ckpt={ckpt}"], cache_dir, code=with_bug("vlmscale.eval.__main__", "effective_config")))


# ----------------------------------------------------------------------------------- vlmscale.convert
def test_convert_answers_a_missing_file_and_a_file_that_is_not_a_checkpoint(cache_dir, tmp_path):
    out = str(tmp_path / "out.ckpt")
    answered(
        run(["vlmscale.convert", "seed-quecc", str(tmp_path / "nope.bin"), out], cache_dir),
        "no such checkpoint",
    )
    junk = tmp_path / "mm_projector.bin"
    junk.write_bytes(b"not a checkpoint")
    answered(
        run(["vlmscale.convert", "seed-quecc", str(junk), out], cache_dir), "is not a readable checkpoint"
    )
    crashed(
        run(
            ["seed-quecc", str(junk), out], cache_dir, code=with_bug("vlmscale.convert", "convert_seed_quecc")
        )
    )


# ---------------------------------------------------------------------------- vlmscale.tower_pretrain
def test_tower_pretrain_answers_a_missing_config_and_a_bad_value(cache_dir, tmp_path):
    module = "vlmscale.tower_pretrain"
    answered(
        run([module, "--vision-config", str(tmp_path / "nope.yaml")], cache_dir), "nope.yaml: no such file"
    )
    bad = run([module, "--threads", "0"], cache_dir)
    assert bad.returncode == 2 and "--threads: must be an integer >= 1 (got '0')" in bad.stderr
    assert "Traceback" not in bad.stderr
    code = with_bug(module, "ensure_pretrained_tower")
    crashed(run(["--cache-dir", str(tmp_path)], cache_dir, code=code))


# -------------------------------------------------------------------------------------------- analysis
def test_analysis_answers_a_missing_folder_a_bad_value_and_too_few_points(cache_dir, tmp_path):
    answered(run(["analysis", "table", str(tmp_path / "nope")], cache_dir), "does not exist")
    reference = str(ROOT / "sweeps" / "reference" / "li2024_reasoning.csv")
    args = ["analysis", "fit", reference, "--y-col", "accuracy", "--accuracy", "--out", str(tmp_path)]
    answered(run([*args, "--text-tokens", "-1"], cache_dir), "--text-tokens must be >= 0")
    few = tmp_path / "few.csv"
    few.write_text("N,T,error\n1,1,0.5\n2,4,0.4\n")
    answered(run(["analysis", "fit", str(few), "--out", str(tmp_path)], cache_dir), "at least 5 are needed")
    code = f"import sys, analysis.cli as m\n{BUG}m.COMMANDS['table'] = bug\nsys.exit(m.main())"
    crashed(run(["table", reference], cache_dir, code=code))


# ------------------------------------------------------------------------------------ vlmscale.sweep
def test_sweep_status_answers_a_missing_folder(cache_dir, tmp_path):
    answered(run(["vlmscale.sweep", "status", str(tmp_path / "nope")], cache_dir), "no such sweep folder")
    answered(run(["vlmscale.sweep", "status", str(tmp_path)], cache_dir), "holds no sweep points")
