"""MMBench (dev TSV): circular evaluation; answers matched with VLMEvalKit's exact matching (no LLM judge)."""

from __future__ import annotations

from .base import Sample, Task, decode_base64_image
from .common import choice_benchmark, choice_question, is_missing

LAYOUT = """  mmbench_dev_20230712.tsv (any *.tsv)   columns: index, question, hint, A, B, C, D[, E...], answer,
                                          image (base64), category, ...  Rows with index >= 1000000 are
                                          taken as ready-made circular passes of row index % 1000000;
                                          otherwise the options are rotated here (one pass per option)."""


def load(task: Task) -> list[Sample]:
    import pandas as pd

    path = task.file(task.options.get("file", "mmbench_dev_20230712.tsv"), "*.tsv")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    by_index = {str(r["index"]): r for _, r in df.iterrows()}
    pre_circular = any(int(i) >= 1_000_000 for i in by_index)
    rotate = task.options.get("circular", True) and not pre_circular
    samples = []
    for _, row in df.iterrows():
        letters = [c for c in "ABCDEFGHI" if c in row and not is_missing(row[c])]
        options = [str(row[c]) for c in letters]
        answer = str(row["answer"]).strip()
        image = str(row.get("image", ""))
        if len(image) < 64 and image.isdigit():  # VLMEvalKit stores repeated images as a row reference
            image = str(by_index[image]["image"])
        image_data = decode_base64_image(image) if image else None
        hint = None if is_missing(row.get("hint")) else str(row["hint"])
        index = int(row["index"])
        group = str(index % 1_000_000)
        passes = range(len(options)) if rotate else range(1)
        for k in passes:
            rotated = options[k:] + options[:k]
            ref = "ABCDEFGHI"[(letters.index(answer) - k) % len(options)] if answer in letters else answer
            samples.append(
                Sample(
                    id=f"{index}/{k}" if rotate else str(index),
                    image=image_data,
                    question=choice_question(str(row["question"]), rotated, task.prompt, hint),
                    references=[ref],
                    options=rotated,
                    meta={
                        "group": group,
                        "circular_pass": k if rotate else index // 1_000_000,
                        "category": str(row.get("category", "")),
                    },
                )
            )
    return samples


BENCHMARK = choice_benchmark("mmbench", load, LAYOUT, options={"circular": True})
