"""Padding of LLaVA-665K-shaped batches before and after grouping by length, and images/s per loader worker.

    python -m benchmarks.padding                       # 20000 records, micro-batch 16, 8 GPUs (global batch 128)
    python -m benchmarks.padding --records 4000 --decode-images 64 --workers 0 1   # quicker

1. Builds a LLaVA-format folder (a JSON list of conversations + JPEGs) whose records follow
   `benchmarks.llava665k`: the published source mix of llava_v1_5_mix665k (LLaVA-1.5, arXiv 2310.03744, Table 7;
   ~6% text-only ShareGPT) with ASSUMED turn counts and question/answer lengths per source (that module's
   docstring says which numbers are published and which assumed). Texts are drawn from the offline tokenizer's
   English words, so a word is about one token. Images are generated scenes (gradient, shapes, noise), stored
   as JPEG at 336 x 336 (`--image-size`) and at 640 x 480 (COCO's usual size; most LLaVA-665K images are COCO,
   GQA/VG, OCR-VQA and TextVQA photos of roughly that size).
2. Reads it back through the training pipeline (`LlavaDataset`, the offline tokenizer, CLIP's processor at 336)
   and measures the padding fraction (padded positions / all positions of right-padded micro-batches) over one
   epoch: the plain shuffled stream (`StepIndexedSampler`) against length-grouped batches
   (`GroupedBatchSampler`, grouping by word counts, as training does), in text tokens and in LLM positions at
   T=36 and T=576 (an image row has T - 1 more positions).
3. Times `__getitem__` (JPEG decode + pad to square + CLIP preprocessing to 336 + tokenising) through a
   DataLoader with 0 (in the process), 1 and 2 workers, after the first batch (worker start-up excluded).

Machine load matters for 3 (2 shared cores here): run `uptime` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks.llava665k import describe, sample_records

GPU_TOKENS_PER_S = 36_600  # docs/GPU.md: DDP on one H200, CLIP-L/336 + QueCC T=36 + Qwen1.5-0.5B shape, bf16


def write_images(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    """``count`` JPEG scenes of ``size`` (width, height): a colour gradient, a few shapes, sensor-like noise."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    width, height = size
    (folder / f"{width}x{height}").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0, 1, height)[:, None, None]
        pixels = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1)
        img = Image.fromarray(pixels.astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 9))):
            x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
            box = (x0, y0, x0 + int(rng.integers(20, width // 2)), y0 + int(rng.integers(20, height // 2)))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, 6, (height, width, 3))
        name = f"{width}x{height}/{i:04d}.jpg"
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(folder / name, quality=90)
        names.append(name)
    return names


def write_records(path: Path, records, images: list[str], seed: int = 0) -> None:
    """The sampled records as LLaVA conversations: q words per question, a words per answer."""
    from vlmscale.data.tokenizer import ENGLISH_WORDS

    rng = np.random.default_rng(seed)
    vocab = np.array(ENGLISH_WORDS)

    def text(n: int) -> str:
        return " ".join(vocab[rng.integers(0, len(vocab), n)])

    out = []
    for index, record in enumerate(records):
        turns = []
        for turn, (q, a) in enumerate(record.turns):
            question = text(q)
            if turn == 0 and record.image:
                question = "<image>\n" + question
            turns += [{"from": "human", "value": question}, {"from": "gpt", "value": text(a)}]
        item = {"id": f"{record.source}-{index}", "conversations": turns}
        if record.image:
            item["image"] = images[index % len(images)]
        out.append(item)
    path.write_text(json.dumps(out))


def epoch_padding(batches, token_lengths, has_image) -> dict[str, float]:
    """Padding fraction of right-padded ``batches`` in text tokens and in LLM positions at T=36, T=576."""
    from vlmscale.data.module import padding_fraction

    image = np.asarray(has_image)
    out = {}
    for name, extra in (("text", 0), ("T=36", 35), ("T=576", 575)):
        lengths = np.asarray(token_lengths) + extra * image
        out[name] = padding_fraction(batches, lengths)
    return out


def padding(dataset, micro: int, accumulation: int, world: int, seed: int, megabatch: int) -> dict:
    from vlmscale.data.module import GroupedBatchSampler, StepIndexedSampler

    started = time.perf_counter()
    tokens = [len(dataset.encode_text(i)["input_ids"]) for i in range(len(dataset))]
    encode_s = time.perf_counter() - started
    words, has_image = dataset.lengths()
    grouped = GroupedBatchSampler(
        words, has_image, micro, accumulation, world, seed=seed, megabatch=megabatch
    )
    size = micro * accumulation * world
    steps = grouped.steps_per_epoch
    after = [m.tolist() for s in range(steps) for m in grouped.step_batch(s).reshape(-1, micro)]
    plain = StepIndexedSampler(len(dataset), seed=seed)
    stream = [i for i, _ in zip(iter(plain), range(steps * size))]
    before = [stream[i : i + micro] for i in range(0, len(stream), micro)]
    return {
        "before": epoch_padding(before, tokens, has_image),
        "after": epoch_padding(after, tokens, has_image),
        "micro_batches": len(after),
        "tokenize_seconds": encode_s,
        "mean_tokens": float(np.mean(tokens)),
    }


def images_per_second(dataset, indices: list[int], workers: int, batch: int) -> float:
    """Items/s through a DataLoader with ``workers`` processes, timed from the first batch on."""
    from torch.utils.data import DataLoader, Subset

    from vlmscale.data import collate

    loader = DataLoader(
        Subset(dataset, indices),
        batch_size=batch,
        num_workers=workers,
        collate_fn=partial(
            collate, pad_token_id=dataset.tokenizer.pad_token_id, image_size=dataset.image_size
        ),
    )
    iterator = iter(loader)
    next(iterator)  # worker start-up and the first batch: not counted
    start, count = time.perf_counter(), 0
    for batch_items in iterator:
        count += len(batch_items["ids"])
    return count / (time.perf_counter() - start)


def decode_only_per_second(dataset, indices: list[int]) -> float:
    """JPEG decode + pad + CLIP preprocessing alone (no tokenising), in this process."""
    start = time.perf_counter()
    for i in indices:
        dataset.load_image(dataset.records[i], i)
    return len(indices) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument(
        "--world", type=int, default=8, help="GPUs (global batch = micro x accumulation x GPUs)"
    )
    parser.add_argument("--megabatch", type=int, default=32, help="global batches sorted together")
    parser.add_argument("--images", type=int, default=48, help="distinct JPEGs per size")
    parser.add_argument("--decode-images", type=int, default=256, help="items timed per loader setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads in this process")
    parser.add_argument("--out", help="folder for the generated data (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu-tokens-per-s", type=float, default=GPU_TOKENS_PER_S)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from vlmscale.data import LlavaDataset, load_tokenizer
    from vlmscale.models.vision import default_image_processor

    records = sample_records(args.records, args.seed)
    print(describe(records, 36))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        started = time.perf_counter()
        sizes = {"336x336": (336, 336), "640x480": (640, 480)}
        images = {
            name: write_images(root / "images", args.images, size, args.seed) for name, size in sizes.items()
        }
        for name in sizes:
            write_records(root / f"llava-{name}.json", records, images[name], args.seed)
        print(
            f"wrote {args.records} records and {2 * args.images} JPEGs in {time.perf_counter() - started:.1f} s"
        )
        tokenizer = load_tokenizer(None, os.environ.get("VLMSCALE_CACHE"))
        processor = default_image_processor("clip", 336)

        def dataset(name: str) -> LlavaDataset:
            return LlavaDataset(
                root / f"llava-{name}.json",
                root / "images",
                tokenizer,
                processor,
                max_length=2048,
                check_images=False,
            )

        data = dataset("336x336")
        pad = padding(data, args.micro_batch, args.accumulation, args.world, args.seed, args.megabatch)
        size = args.micro_batch * args.accumulation * args.world
        print(
            f"\npadding over one epoch ({pad['micro_batches']} micro-batches of {args.micro_batch}; global batch "
            f"{size} = {args.micro_batch} x {args.accumulation} accumulation x {args.world} GPUs; mean "
            f"{pad['mean_tokens']:.0f} text tokens/record; tokenising took {pad['tokenize_seconds']:.1f} s):"
        )
        for unit in ("text", "T=36", "T=576"):
            b, a = pad["before"][unit], pad["after"][unit]
            print(
                f"  {unit:<6} shuffled {100 * b:5.1f}%  grouped {100 * a:5.1f}%  -> {b / a:.1f}x less padding"
            )

        image_rows = [i for i, r in enumerate(data.records) if r.get("image")]
        print(
            f"\nloading ({type(processor).__name__}), {args.threads} torch thread(s) in the main process, "
            f"batches of {args.micro_batch}:"
        )
        rates = {}
        for name in sizes:
            data = dataset(name)
            indices = image_rows[: args.decode_images]
            alone = decode_only_per_second(data, indices[: max(16, args.decode_images // 4)])
            line = [f"  JPEG {name}: decode + CLIP preprocessing alone {alone:6.1f} images/s;"]
            for workers in args.workers:
                rate = images_per_second(data, indices, workers, args.micro_batch)
                rates[(name, workers)] = rate
                per = rate / max(workers, 1)
                line.append(f"{workers} worker(s) {rate:6.1f} items/s ({per:.1f} per worker)")
            print(" ".join(line))

        positions = pad["mean_tokens"] + 35 * len(image_rows) / len(data)
        samples_per_s = args.gpu_tokens_per_s / positions
        print(
            f"\nGPU demand: {args.gpu_tokens_per_s:.0f} tokens/s (docs/GPU.md) / {positions:.0f} LLM positions per "
            f"record at T=36 = {samples_per_s:.0f} records/s"
        )
        for name in sizes:
            per_worker = rates.get((name, 1)) or rates.get((name, 0))
            if per_worker:
                print(
                    f"  {name}: {samples_per_s:.0f} / {per_worker:.1f} per worker = "
                    f"{samples_per_s / per_worker:.1f} workers per GPU at today's speed, "
                    f"{3 * samples_per_s / per_worker:.1f} at 3x (MFU ~40%)"
                )


if __name__ == "__main__":
    main()
