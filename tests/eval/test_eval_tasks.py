"""Each task's loader on a fixture in the benchmark's own format, and its scorer on hand-made predictions."""

from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from vlmscale.eval.tasks import (
    OPTION_LETTER_PROMPT,
    SHORT_ANSWER_PROMPT,
    TASKS,
    BenchmarkNotFoundError,
    Sample,
    SampleError,
    build_task,
    build_tasks,
    open_image,
    scorings_from_config,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "eval" / "default.yaml"


def run(task, predictions):
    samples = task.load()
    assert len(samples) == len(predictions), [s.id for s in samples]
    metrics, records = task.score(samples, predictions)
    assert len(records) == len(samples)
    return samples, metrics


def test_gqa_exact_match(bench_root):
    task = build_task("gqa", root=bench_root / "gqa")
    samples, m = run(task, ["Red.", "2", ""])
    assert [s.references for s in samples] == [["red"], ["two"], ["dog"]]
    assert samples[0].question == f"What color is the car?\n{SHORT_ANSWER_PROMPT}"
    assert Path(samples[0].image).is_file()
    # official: "Red." -> "red" right, "2" != "two", the empty answer is unparseable and wrong
    assert m["error"] == pytest.approx(2 / 3) and m["scoring"] == "official"
    assert m["n_unparseable"] == 1 and m["n"] == 3
    assert m["categories"] == {"reasoning": pytest.approx(2 / 3)}


def test_gqa_lenient_scoring(bench_root):
    task = build_task("gqa", root=bench_root / "gqa", scoring="lenient")
    _, m = run(task, ["Red.", "2", ""])
    # lenient: "2" == "two" after the VQA normalisation too
    assert m["error"] == pytest.approx(1 / 3) and m["scoring"] == "lenient"


def test_textvqa_vqa_accuracy(bench_root):
    task = build_task("textvqa", root=bench_root / "textvqa")
    _, m = run(task, ["Nike", "two"])
    # 3 of 10 annotators -> 0.9; "two" vs ten "2" -> 1.0
    assert m["score"] == pytest.approx(0.95)
    assert m["error"] == pytest.approx(0.05)
    assert task.category == "ocr"


def test_pope_per_split(bench_root):
    task = build_task("pope", root=bench_root / "pope", splits=["random", "popular"])
    samples, m = run(task, ["Yes", "No", "no", "yes", "yes", "hmm"])
    assert {s.meta["split"] for s in samples} == {"random", "popular"}
    rnd, pop = m["splits"]["random"], m["splits"]["popular"]
    # random: labels yes,no,yes,no; answers yes,no,no,yes -> TP 1, TN 1, FN 1, FP 1
    assert (rnd["accuracy"], rnd["precision"], rnd["recall"], rnd["f1"]) == (0.5, 0.5, 0.5, 0.5)
    # popular: labels yes,no; answers yes, "hmm" (read as yes officially) -> TP 1, FP 1
    assert (pop["accuracy"], pop["precision"], pop["recall"]) == (0.5, 0.5, 1.0)
    assert pop["yes_ratio"] == 1.0 and m["n_unparseable"] == 0
    assert m["error"] == pytest.approx(0.5)


def test_pope_lenient_per_split(bench_root):
    task = build_task("pope", root=bench_root / "pope", splits=["random", "popular"], scoring="lenient")
    samples, m = run(task, ["Yes", "No", "no", "yes", "yes", "hmm"])
    rnd, pop = m["splits"]["random"], m["splits"]["popular"]
    # random: labels yes,no,yes,no; answers yes,no,no,yes -> TP 1, TN 1, FN 1, FP 1
    assert (rnd["accuracy"], rnd["precision"], rnd["recall"], rnd["f1"]) == (0.5, 0.5, 0.5, 0.5)
    assert rnd["yes_ratio"] == 0.5
    # popular: labels yes,no; answers yes,<unparseable> -> TP 1, FP 1 (counted wrong)
    assert pop["accuracy"] == 0.5 and pop["precision"] == 0.5 and pop["recall"] == 1.0
    assert pop["f1"] == pytest.approx(2 / 3)
    assert pop["yes_ratio"] == 0.5
    assert m["error"] == pytest.approx(0.5)
    assert m["n_unparseable"] == 1


def test_pope_missing_split_names_task(bench_root):
    task = build_task(
        "pope", root=bench_root / "pope"
    )  # default splits include adversarial: not in the fixture
    with pytest.raises(BenchmarkNotFoundError, match="pope.*coco_pope_adversarial"):
        task.load()


def test_mme_accuracy_plus(bench_root):
    task = build_task("mme", root=bench_root / "mme")
    samples, m = run(task, ["Yes", "Yes", "yes", "no", "no", "No"])
    # order: code_reasoning (c: yes,no), existence (a: yes,no; b: yes,no)
    assert [s.meta["subtask"] for s in samples] == ["code_reasoning"] * 2 + ["existence"] * 4
    assert m["subtasks"]["code_reasoning"]["score"] == pytest.approx(50.0)  # acc 1/2, acc+ 0
    assert m["subtasks"]["existence"]["score"] == pytest.approx(125.0)  # acc 3/4, acc+ 1/2
    assert m["perception"] == pytest.approx(125.0) and m["cognition"] == pytest.approx(50.0)
    assert m["error"] == pytest.approx(1 - 175 / 400)


def test_mmbench_circular(bench_root):
    task = build_task("mmbench", root=bench_root / "mmbench")
    samples = task.load()
    # row 0: 4 options -> 4 passes; row 1: 3 options (D empty) -> 3 passes
    assert len(samples) == 7
    assert [s.references[0] for s in samples] == ["C", "B", "A", "D", "A", "C", "B"]
    assert samples[1].options == ["green", "blue", "pink", "red"]
    assert samples[0].question == (
        f"A chart.\nWhich colour?\nA. red\nB. green\nC. blue\nD. pink\n{OPTION_LETTER_PROMPT}"
    )
    assert isinstance(samples[0].image, bytes) and open_image(samples[0].image).size == (20, 12)
    preds = ["C", "(B)", "A. blue", "The answer is D", "A", "C", "I don't know"]
    metrics, _ = task.score(samples, preds)
    # question 0 right in all 4 passes, question 1 wrong in its last pass -> circular accuracy 1/2
    assert metrics["circular_accuracy"] == pytest.approx(0.5)
    assert metrics["single_pass_accuracy"] == pytest.approx(1.0)
    assert metrics["accuracy"] == pytest.approx(6 / 7)
    assert metrics["error"] == pytest.approx(0.5)
    assert metrics["n_unparseable"] == 1 and metrics["n_questions"] == 2
    # --limit keeps whole circular groups
    assert len(task.load(limit=1)) == 4


def test_mmbench_ready_made_circular_rows(tmp_path, make_png):
    import base64

    img = base64.b64encode(make_png()).decode()
    rows = [
        {"index": 5, "question": "Q?", "hint": "", "A": "x", "B": "y", "answer": "B", "image": img},
        {"index": 1000005, "question": "Q?", "hint": "", "A": "y", "B": "x", "answer": "A", "image": "5"},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "mmbench_dev_en.tsv", sep="\t", index=False)
    task = build_task("mmbench", root=tmp_path)
    samples = task.load()
    assert len(samples) == 2 and {s.meta["group"] for s in samples} == {"5"}
    assert isinstance(samples[1].image, bytes)  # the image reference resolved to row 5's image
    m, _ = task.score(samples, ["B", "B"])
    assert m["circular_accuracy"] == 0.0 and m["single_pass_accuracy"] == 1.0


def test_scienceqa_img_only(bench_root):
    task = build_task("scienceqa", root=bench_root / "scienceqa")
    samples, m = run(task, ["B", "B"])
    assert [s.id for s in samples] == ["1", "3"]  # problem 2 has no image
    assert "Context: Look closely." in samples[0].question and "B. whale" in samples[0].question
    assert [s.references[0] for s in samples] == ["B", "C"]
    assert m["error"] == pytest.approx(0.5)


def test_seedbench_image_questions(bench_root):
    task = build_task("seedbench", root=bench_root / "seedbench")
    samples, m = run(task, ["(B) a dog"])
    assert samples[0].options == ["a cat", "a dog", "a car", "a tree"]
    assert m["error"] == 0.0


def test_ai2d_parquet(bench_root):
    task = build_task("ai2d", root=bench_root / "ai2d")
    samples, m = run(task, ["A", "cow"])  # the second answers with option B's text
    assert [s.references[0] for s in samples] == ["A", "B"]
    assert open_image(samples[1].image).getpixel((0, 0)) == (0, 0, 200)
    assert m["error"] == 0.0


def test_mmmu_choice_and_open(bench_root):
    task = build_task("mmmu", root=bench_root / "mmmu")
    samples, m = run(task, ["Cubism", "5."])
    assert "<image" not in samples[0].question and "image 1" in samples[0].question
    assert samples[0].options == ["Baroque", "Cubism", "Pop art"] and samples[1].options is None
    assert samples[1].references == ["5"]
    assert m["error"] == 0.0


def test_mathvista_rule_based(bench_root):
    task = build_task("mathvista", root=bench_root / "mathvista")
    samples, m = run(task, ["B", "12 apples", "1.54", "Red.", "many"])
    assert samples[0].options == ["3", "4", "5"] and samples[0].references == ["B"]
    assert samples[0].question.endswith(OPTION_LETTER_PROMPT)
    assert samples[1].question.endswith(SHORT_ANSWER_PROMPT) and Path(samples[1].image).is_file()
    # B right; 12 right; 1.54 rounds to 1.5 at precision 1; "Red." == "red"; "many" has no number: unparseable
    assert m["accuracy"] == pytest.approx(0.8) and m["n_unparseable"] == 1
    _, m = run(task, ["C", "12.5", "1.6", "blue", "3"])
    assert m["accuracy"] == pytest.approx(0.2)  # only "3" is right


def test_chartqa_relaxed(bench_root):
    task = build_task("chartqa", root=bench_root / "chartqa")
    _, m = run(task, ["130", "2019", "Blue."])
    # 130 vs 120 is 8.3% off (wrong); 2019 exact; "Blue." != "Blue" officially
    assert m["relaxed_accuracy"] == pytest.approx(1 / 3)
    assert m["splits"] == {"human": 0.5, "augmented": 0.0}


def test_chartqa_lenient(bench_root):
    task = build_task("chartqa", root=bench_root / "chartqa", scoring="lenient")
    _, m = run(task, ["130", "2019", "Blue."])
    # lenient: "Blue." == "Blue"
    assert m["relaxed_accuracy"] == pytest.approx(2 / 3)
    assert m["splits"] == {"human": 0.5, "augmented": 1.0}
    assert m["error"] == pytest.approx(1 / 3)


def test_docvqa_anls(bench_root):
    task = build_task("docvqa", root=bench_root / "docvqa")
    _, m = run(task, ["1 may 2020", "hallo"])
    assert m["anls"] == pytest.approx((1.0 + 0.8) / 2)
    assert m["error"] == pytest.approx(0.1)


def test_ocrbench_substring(bench_root):
    task = build_task("ocrbench", root=bench_root / "ocrbench")
    samples, m = run(task, ["The word is hello", "x^2"])
    assert all(Path(s.image).is_file() for s in samples)
    assert samples[0].question == "what is written in the image?"  # OCRBench asks the question alone
    assert m["ocrbench_score"] == 2 and m["error"] == 0.0


def test_synthetic_split_by_record_category(bench_root):
    task = build_task("synthetic", root=bench_root / "synthetic")
    samples, m = run(task, ["red", "2", "ab3", "no"])
    assert samples[0].question == "What color is the triangle?"  # no <image>, no extra prompt
    assert [s.meta["category"] for s in samples] == ["reasoning", "reasoning", "ocr", "reasoning"]
    # reasoning: red right, "2" == "two", "no" != "yes" -> error 1/3; ocr: "ab3" == "AB3" -> 0
    assert m["categories"] == {"reasoning": pytest.approx(1 / 3), "ocr": 0.0}
    assert m["error"] == pytest.approx(1 / 6)


def test_missing_folder_error_names_task_layout_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("VLMSCALE_EVAL_DIR", raising=False)
    with pytest.raises(BenchmarkNotFoundError, match="'gqa'") as err:
        build_task("gqa", root=tmp_path / "nowhere").load()
    text = str(err.value)
    for needle in (
        "'gqa'",
        "nowhere",
        "testdev_balanced_questions.json",
        "images/",
        "VLMSCALE_EVAL_DIR",
        "eval.catalog.gqa.root",
    ):
        assert needle in text
    with pytest.raises(BenchmarkNotFoundError, match="no path configured"):
        build_task("textvqa").load()


def test_env_var_sets_the_benchmark_folder(bench_root, monkeypatch):
    monkeypatch.setenv("VLMSCALE_EVAL_DIR", str(bench_root))
    assert len(build_task("docvqa").load()) == 2


def test_unknown_task_and_category():
    with pytest.raises(KeyError, match="unknown eval task 'vqa9'.*gqa"):
        build_task("vqa9")
    with pytest.raises(ValueError, match="category"):
        build_task("gqa", category="vision")


def test_config_holds_only_user_choices(bench_root, monkeypatch):
    """The YAML says which tasks, where and which scoring; each benchmark's module declares the rest."""
    monkeypatch.setenv("VLMSCALE_EVAL_DIR", str(bench_root))
    cfg = OmegaConf.to_container(OmegaConf.create({"eval": OmegaConf.load(CONF)}), resolve=True)["eval"]
    assert cfg["data_dir"] == str(bench_root) and cfg["scoring"] == "official"
    for name, entry in cfg["catalog"].items():
        assert name in TASKS
        assert not {"category", "max_new_tokens", "layout"} & set(entry), f"{name}: declared in its module"
    tasks = build_tasks(["gqa", "docvqa"], cfg["catalog"], data_dir=cfg["data_dir"], scoring=cfg["scoring"])
    assert [t.name for t in tasks] == ["gqa", "docvqa"] and tasks[1].category == "ocr"
    assert tasks[0].root == f"{bench_root}/gqa" and len(tasks[0].load()) == 3


def test_every_module_declares_one_benchmark():
    import pkgutil

    import vlmscale.eval.tasks as package

    modules = {m.name for m in pkgutil.iter_modules(package.__path__)} - {"base", "common"}
    assert modules == set(TASKS)
    for name, bench in TASKS.items():
        assert bench.name == name and bench.default_scoring in bench.scorings
        assert "official" in bench.scorings or name == "mathvista"  # MathVista's official judge is an LLM


def test_adding_a_benchmark_is_one_file(tmp_path, monkeypatch, bench_root):
    """A new module next to the others is found, with its own defaults, and runs."""
    import vlmscale.eval.tasks as package

    (tmp_path / "toyqa.py").write_text(
        "from vlmscale.eval.tasks.base import Benchmark, simple_scorer\n"
        "from vlmscale.eval.tasks.gqa import load\n"
        "BENCHMARK = Benchmark(name='toyqa', loader=load, category='ocr', layout='  as gqa', max_new_tokens=3,\n"
        "    scorings={'official': simple_scorer(lambda p, s: float(p == s.references[0]))})\n"
    )
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    found = package._discover()
    assert set(found) == set(TASKS) | {"toyqa"}
    monkeypatch.setitem(TASKS, "toyqa", found["toyqa"])
    task = build_task("toyqa", data_dir=bench_root)
    assert task.root == str(bench_root / "toyqa") and task.max_new_tokens == 3 and task.category == "ocr"
    task = build_task("toyqa", root=bench_root / "gqa")
    _, m = run(task, ["red", "x", "dog"])
    assert m["error"] == pytest.approx(1 / 3) and m["scoring"] == "official"


def test_scoring_choice_and_errors():
    assert build_task("textvqa", scoring="lenient").scoring == "lenient"
    with pytest.raises(ValueError, match="'docvqa' has no scoring 'lenient'.*official"):
        build_task("docvqa", scoring="lenient")
    # one name for all: tasks without it keep their default; a mapping picks per task
    tasks = build_tasks(["gqa", "docvqa", "mathvista"], scoring="lenient")
    assert [t.scoring for t in tasks] == ["lenient", "official", "rules"]
    tasks = build_tasks(["gqa", "pope"], scoring={"pope": "lenient"})
    assert [t.scoring for t in tasks] == ["official", "lenient"]
    with pytest.raises(ValueError, match="no scoring 'lenent'"):
        build_tasks(["gqa"], scoring="lenent")  # a typo is not silently official
    with pytest.raises(ValueError, match="'ocrbench' has no scoring 'lenient'"):
        build_tasks(["ocrbench"], scoring={"ocrbench": "lenient"})
    eval_cfg = {"tasks": ["gqa", "pope", "mathvista"], "scoring": {"gqa": "lenient"}}
    assert scorings_from_config(eval_cfg) == {"gqa": "lenient", "pope": "official", "mathvista": "rules"}


def _hand_task(name, samples, **kw):
    task = build_task(name, root="/nowhere", **kw)
    task.loader = lambda _task: samples
    return task


@pytest.mark.parametrize("refs", [[], "red", None, ["red", 3]])
def test_references_must_be_a_non_empty_list_of_strings(refs):
    task = _hand_task("chartqa", [Sample("q7", None, "?", refs, meta={"split": "human"})])
    with pytest.raises(SampleError, match="'chartqa', sample 'q7': references must be"):
        task.score(task.load(), ["12"])


def test_missing_metadata_names_sample_and_field():
    task = _hand_task("pope", [Sample("p1", None, "Is there a cat?", ["yes"])])
    with pytest.raises(SampleError, match="'pope', sample 'p1': metadata field 'split' is missing"):
        task.score(task.load(), ["yes"])
    task = _hand_task("mme", [Sample("m1", None, "?", ["yes"], meta={"subtask": "count"})])
    with pytest.raises(SampleError, match="sample 'm1': metadata field 'image'"):
        task.score(task.load(), ["yes"])


def test_none_predictions_count_as_wrong(bench_root):
    task = build_task("textvqa", root=bench_root / "textvqa")
    _, m = run(task, [None, "2"])
    assert m["score"] == pytest.approx(0.5) and m["n_unparseable"] == 1
    task = build_task("mme", root=bench_root / "mme")
    _, m = run(task, [None] * 6)
    assert m["total"] == 0.0 and m["n_unparseable"] == 6
