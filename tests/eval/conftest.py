"""Small benchmark fixtures written in each benchmark's own distribution format (a handful of questions each).

``bench_root`` is a session-wide folder laid out like ``$VLMSCALE_EVAL_DIR``: one sub-folder per task.
The expected references are fixed here so the tests can score hand-made predictions against them.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image


def png_bytes(colour=(200, 30, 30), size=(20, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: Path, colour=(200, 30, 30), size=(20, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(colour, size))


def write_gqa(root: Path) -> None:
    questions = {
        "q1": {"imageId": "n1", "question": "What color is the car?", "answer": "red"},
        "q2": {"imageId": "n1", "question": "How many dogs?", "answer": "two"},
        "q3": {"imageId": "n2", "question": "What animal is it?", "answer": "dog"},
    }
    (root / "testdev_balanced_questions.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "testdev_balanced_questions.json").write_text(json.dumps(questions))
    save_png(root / "images" / "n1.jpg")
    save_png(root / "images" / "n2.jpg")


def write_textvqa(root: Path) -> None:
    data = [
        {
            "question_id": 10,
            "image_id": "t1",
            "question": "What brand?",
            "answers": ["nike"] * 3 + ["adidas"] * 7,
        },
        {"question_id": 11, "image_id": "t1", "question": "What number?", "answers": ["2"] * 10},
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "TextVQA_0.5.1_val.json").write_text(json.dumps({"dataset_name": "textvqa", "data": data}))
    save_png(root / "train_images" / "t1.jpg")


def write_pope(root: Path) -> None:
    rows = {
        "random": [("yes", 1), ("no", 2), ("yes", 3), ("no", 4)],
        "popular": [("yes", 5), ("no", 6)],
    }
    for split, items in rows.items():
        lines = [
            json.dumps(
                {
                    "question_id": qid,
                    "image": "COCO_val2014_1.jpg",
                    "text": f"Is there a cat {qid}?",
                    "label": lab,
                }
            )
            for lab, qid in items
        ]
        (root / "coco").mkdir(parents=True, exist_ok=True)
        (root / "coco" / f"coco_pope_{split}.json").write_text("\n".join(lines) + "\n")
    save_png(root / "val2014" / "COCO_val2014_1.jpg")


def write_mme(root: Path) -> None:
    # perception subtask in the images/ + questions_answers_YN/ layout
    sub = root / "existence"
    for name in ("a", "b"):
        save_png(sub / "images" / f"{name}.jpg")
        (sub / "questions_answers_YN").mkdir(parents=True, exist_ok=True)
        (sub / "questions_answers_YN" / f"{name}.txt").write_text(
            f"Is there a {name}? Please answer yes or no.\tYes\nIs there no {name}? Please answer yes or no.\tNo\n"
        )
    # cognition subtask in the side-by-side layout
    sub = root / "code_reasoning"
    save_png(sub / "c.png")
    (sub / "c.txt").write_text(
        "Does it print 1? Please answer yes or no.\tYes\nDoes it print 2? Please answer yes or no.\tNo\n"
    )


MMBENCH_ROWS = [
    # index, question, hint, A, B, C, D, answer
    (0, "Which colour?", "A chart.", "red", "green", "blue", "pink", "C"),
    (1, "Which shape?", "", "circle", "square", "triangle", "", "A"),
]


def write_mmbench(root: Path) -> None:
    import pandas as pd

    img = base64.b64encode(png_bytes()).decode()
    rows = []
    for index, q, hint, a, b, c, d, ans in MMBENCH_ROWS:
        rows.append(
            {
                "index": index,
                "question": q,
                "hint": hint,
                "A": a,
                "B": b,
                "C": c,
                "D": d,
                "answer": ans,
                "image": img,
                "category": "attribute",
                "split": "dev",
            }
        )
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "mmbench_dev_20230712.tsv", sep="\t", index=False)


def write_scienceqa(root: Path) -> None:
    problems = {
        "1": {
            "question": "Which is a mammal?",
            "choices": ["shark", "whale"],
            "answer": 1,
            "hint": "Look closely.",
            "image": "image.png",
            "split": "test",
        },
        "2": {
            "question": "Which is hot?",
            "choices": ["ice", "fire", "snow"],
            "answer": 1,
            "hint": "",
            "image": None,
            "split": "test",
        },  # no image: not in ScienceQA-IMG
        "3": {
            "question": "Pick B.",
            "choices": ["x", "y", "z"],
            "answer": 2,
            "hint": "",
            "image": "image.png",
            "split": "test",
        },
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(json.dumps({"test": ["1", "2", "3"], "train": []}))
    save_png(root / "images" / "test" / "1" / "image.png")
    save_png(root / "images" / "test" / "3" / "image.png")


def write_seedbench(root: Path) -> None:
    questions = [
        {
            "question_id": "s1",
            "question": "What is shown?",
            "choice_a": "a cat",
            "choice_b": "a dog",
            "choice_c": "a car",
            "choice_d": "a tree",
            "answer": "B",
            "data_type": "image",
            "data_id": "1.jpg",
            "question_type_id": 1,
        },
        {
            "question_id": "s2",
            "question": "What happens?",
            "choice_a": "x",
            "choice_b": "y",
            "choice_c": "z",
            "choice_d": "w",
            "answer": "A",
            "data_type": "video",
            "data_id": "v.mp4",
            "question_type_id": 10,
        },
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "SEED-Bench.json").write_text(json.dumps({"questions": questions, "question_type": {"x": 1}}))
    save_png(root / "SEED-Bench-image" / "1.jpg")


def write_ai2d(root: Path) -> None:
    import pandas as pd

    rows = [
        {
            "question": "Which stage comes first?",
            "options": ["egg", "larva", "adult"],
            "answer": "0",
            "image": {"bytes": png_bytes(), "path": None},
        },
        {
            "question": "What eats grass?",
            "options": ["lion", "cow"],
            "answer": "1",
            "image": {"bytes": png_bytes((0, 0, 200)), "path": None},
        },
    ]
    (root / "data").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "data" / "test-00000-of-00001.parquet")


def write_mmmu(root: Path) -> None:
    import pandas as pd

    rows = [
        {
            "id": "validation_Art_1",
            "question": "What style is <image 1>?",
            "options": "['Baroque', 'Cubism', 'Pop art']",
            "answer": "B",
            "question_type": "multiple-choice",
            "image_1": {"bytes": png_bytes(), "path": None},
            "subfield": "Art",
        },
        {
            "id": "validation_Math_1",
            "question": "What is 2+3 in <image 1>?",
            "options": "[]",
            "answer": "5",
            "question_type": "open",
            "image_1": {"bytes": png_bytes(), "path": None},
            "subfield": "Math",
        },
    ]
    (root / "Art").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "Art" / "validation-00000-of-00001.parquet")


def write_mathvista(root: Path) -> None:
    import pandas as pd

    img = {"bytes": png_bytes(), "path": None}

    def row(
        pid, question, answer, qtype, atype, choices=None, precision=None, image=img, path="images/1.jpg"
    ):
        return {
            "pid": pid,
            "question": question,
            "image": path,
            "decoded_image": image,
            "choices": choices,
            "answer": answer,
            "question_type": qtype,
            "answer_type": atype,
            "precision": precision,
        }

    rows = [
        row("1", "How many sides?", "4", "multi_choice", "text", choices=["3", "4", "5"]),
        row("2", "How many apples?", "12", "free_form", "integer", image=None, path="images/2.jpg"),
        row("3", "What is the ratio?", "1.5", "free_form", "float", precision=1.0),
        row("4", "What colour?", "red", "free_form", "text"),
        row("5", "How many birds?", "3", "free_form", "integer"),
    ]
    (root / "data").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "data" / "testmini-00000-of-00001.parquet")
    save_png(root / "images" / "2.jpg")


def write_chartqa(root: Path) -> None:
    (root / "test").mkdir(parents=True, exist_ok=True)
    (root / "test" / "test_human.json").write_text(
        json.dumps(
            [
                {"imgname": "c1.png", "query": "What is the peak?", "label": "120"},
                {"imgname": "c1.png", "query": "Which year?", "label": "2019"},
            ]
        )
    )
    (root / "test" / "test_augmented.json").write_text(
        json.dumps([{"imgname": "c1.png", "query": "Which colour is the bar?", "label": "Blue"}])
    )
    save_png(root / "test" / "png" / "c1.png")


def write_docvqa(root: Path) -> None:
    data = [
        {
            "questionId": 1,
            "question": "What is the date?",
            "image": "documents/d1.png",
            "answers": ["1 May 2020"],
        },
        {
            "questionId": 2,
            "question": "Who signed?",
            "image": "documents/d1.png",
            "answers": ["hello", "j. smith"],
        },
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "val_v1.0.json").write_text(json.dumps({"dataset_name": "docvqa", "data": data}))
    save_png(root / "documents" / "d1.png")


def write_ocrbench(root: Path) -> None:
    data = [
        {
            "dataset_name": "IIIT5K",
            "id": 0,
            "question": "what is written in the image?",
            "answers": ["HELLO"],
            "image_path": "./IIIT5K/1.png",
            "type": "Regular Text Recognition",
        },
        {
            "dataset_name": "HME100k",
            "id": 1,
            "question": "Write out the expression.",
            "answers": "x ^ 2",
            "image_path": "./HME100k/2.png",
            "type": "Handwritten Mathematical Expression Recognition",
        },
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "OCRBench.json").write_text(json.dumps(data))
    save_png(root / "OCRBench_Images" / "IIIT5K" / "1.png")
    save_png(root / "OCRBench_Images" / "HME100k" / "2.png")


def write_synthetic(root: Path) -> None:
    """The layout vlmscale.data.synthetic writes: <split>.json + images/<split>/<n>.png, category per record."""
    records = [
        ("test-000000", "What color is the triangle?", "red", "reasoning", "colour"),
        ("test-000001", "How many circles are there?", "two", "reasoning", "count"),
        ("test-000002", "What does the text say?", "AB3", "ocr", "read"),
        ("test-000003", "Is there a blue square?", "yes", "reasoning", "exist"),
    ]
    out = []
    for i, (rid, q, a, cat, fam) in enumerate(records):
        save_png(root / "images" / "test" / f"{i:06d}.png", colour=(60 * i, 200 - 40 * i, 90), size=(64, 64))
        out.append(
            {
                "id": rid,
                "image": f"test/{i:06d}.png",
                "category": cat,
                "family": fam,
                "conversations": [{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": a}],
            }
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / "test.json").write_text(json.dumps(out))


WRITERS = {
    "gqa": write_gqa,
    "textvqa": write_textvqa,
    "pope": write_pope,
    "mme": write_mme,
    "mmbench": write_mmbench,
    "scienceqa": write_scienceqa,
    "seedbench": write_seedbench,
    "ai2d": write_ai2d,
    "mmmu": write_mmmu,
    "mathvista": write_mathvista,
    "chartqa": write_chartqa,
    "docvqa": write_docvqa,
    "ocrbench": write_ocrbench,
    "synthetic": write_synthetic,
}


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval_benchmarks")
    for name, write in WRITERS.items():
        write(root / name)
    return root


@pytest.fixture
def make_png():
    """``make_png(colour, size) -> bytes`` of a PNG."""
    return png_bytes
