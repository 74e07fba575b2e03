"""The embedded synthetic VQA suite: generated from a seed, written in the LLaVA format, read back like real data.

Every image (default 64x64, the tiny CLIP's size: a 16x16 grid of 4-pixel patches) is drawn with Pillow and
carries one single-word question. Two categories, five families:

======== ========= ================================================ ============ =========
category family    question (example)                               answers      chance
======== ========= ================================================ ============ =========
reasoning colour   What color is the triangle?                      6 colours    1/6 = 0.167
reasoning count    How many circles are there?                      one .. four  1/4 = 0.250
reasoning exist    Is there a blue square?                          yes / no     1/2 = 0.500
reasoning spatial  Is the red circle left or right of the blue ...? left / right 1/2 = 0.500
ocr       read     What does the text say?                          2-3 glyphs   ~0.0005
======== ========= ================================================ ============ =========

The scenes are coarse on purpose: a tiny VLM trained for about one epoch (a few thousand examples) must be able
to learn the reasoning families. Objects sit in a 2x2 layout and fill most of a 32-pixel cell: ``colour`` shows
one object filling most of the image; ``count`` shows 1-4 copies of one shape in one colour and nothing else;
``exist`` shows 1 or 2 objects, none of the asked colour when the answer is no; ``spatial`` shows exactly two
objects of different colours in different columns. (Version 1 used a 4x4 layout of 9-14 pixel objects with
distractors; tiny models could not learn it within the CPU budget and answered a constant per family.) The
``read`` family stays a fine-detail task: 2-3 small glyphs anywhere in the image.

"Chance" is the accuracy of the best guess that does not look at the image (every answer within a family is
equally likely and independent of the question's wording). With the default equal family weights the
reasoning category's chance level is (1/6 + 1/4 + 1/2 + 1/2) / 4 = 0.354 (error 0.646); see
:func:`chance_levels`. The OCR strings come from a 32-symbol alphabet (A-Z without I and O, digits 2-9), 2 or 3
glyphs of Pillow's bundled bitmap font (about 6x11 pixels each), so the OCR chance level is
(1/32**2 + 1/32**3) / 2 = 0.0005: reading them needs fine detail, the reasoning families only coarse content.

The suite lives in a cache folder named by the generator's version and parameters, generated once:
``<cache>/synthetic-v<version>-s<seed>-<hash>/{train,val,test}.json`` plus ``images/<split>/<n>.png``.
Generation takes a file lock, writes into a temporary folder and renames it into place, so sweep jobs that
start together generate it once and never see a half-written suite.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

SYNTHETIC_VERSION = 2
SPLITS = ("train", "val", "test")
DEFAULT_SIZES = {"train": 4000, "val": 200, "test": 200}

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 30),
}
SHAPES = ("circle", "square", "triangle")
COUNT_WORDS = ("one", "two", "three", "four")
OCR_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I/O (confusable with 1/0, which are left out too)
OCR_LENGTHS = (2, 3)

# family -> (category, question templates); the words here are also the offline tokenizer's training text.
FAMILIES: dict[str, str] = {
    "colour": "reasoning",
    "count": "reasoning",
    "exist": "reasoning",
    "spatial": "reasoning",
    "read": "ocr",
}
DEFAULT_FAMILY_WEIGHTS = {"colour": 1.0, "count": 1.0, "exist": 1.0, "spatial": 1.0, "read": 1.0}
Q_COLOUR = "What color is the {shape}?"
Q_COUNT = "How many {shape}s are there?"
Q_EXIST = "Is there a {colour} {shape}?"
Q_SPATIAL = "Is the {colour} {shape} left or right of the {colour2} {shape2}?"
Q_READ = "What does the text say?"

GRID = 2  # objects sit in a GRID x GRID layout of cells (32-pixel cells on a 64-pixel image)


# ----------------------------------------------------------------------------------------------- cache helpers


def default_cache_dir() -> Path:
    """``$VLMSCALE_CACHE`` or ``~/.cache/vlmscale``: where the synthetic suite and the offline tokenizer live."""
    return Path(os.environ.get("VLMSCALE_CACHE") or "~/.cache/vlmscale").expanduser()


def params_key(params: dict) -> str:
    """A short stable hash of a JSON-able parameter dict (the cache folder's name)."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@contextmanager
def _file_lock(path: Path):
    from filelock import FileLock

    with FileLock(str(path)):
        yield


def publish_dir(final: Path, build: Callable[[Path], None]) -> Path:
    """Make ``final`` exist exactly once: ``build(tmp)`` fills a temporary sibling that is renamed into place.

    A file lock next to ``final`` serialises concurrent callers (the others wait, then find it built); the
    rename keeps a crashed build from ever looking complete.
    """
    final = Path(final)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(final.parent / f".{final.name}.lock"):
        if final.is_dir():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{uuid.uuid4().hex[:8]}-", dir=final.parent))
        try:
            build(tmp)
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


# ----------------------------------------------------------------------------------------------- chance levels


def chance_levels(family_weights: dict[str, float] | None = None) -> dict[str, float]:
    """Image-blind chance accuracy per family, per category (weighted by family share) and ``avg``.

    ``avg`` is the mean of the two categories, matching ``error/avg`` = mean of ``error/reasoning`` and
    ``error/ocr``.
    """
    weights = dict(DEFAULT_FAMILY_WEIGHTS if family_weights is None else family_weights)
    per_family = {
        "colour": 1 / len(COLOURS),
        "count": 1 / len(COUNT_WORDS),
        "exist": 1 / 2,
        "spatial": 1 / 2,
        "read": sum(1 / len(OCR_ALPHABET) ** n for n in OCR_LENGTHS) / len(OCR_LENGTHS),
    }
    out = dict(per_family)
    for category in ("reasoning", "ocr"):
        fams = [f for f, c in FAMILIES.items() if c == category and weights.get(f, 0) > 0]
        total = sum(weights[f] for f in fams)
        if total > 0:
            out[category] = sum(weights[f] * per_family[f] for f in fams) / total
    cats = [c for c in ("reasoning", "ocr") if c in out]
    out["avg"] = sum(out[c] for c in cats) / len(cats)
    return out


# ------------------------------------------------------------------------------------------------- drawing


def _font() -> ImageFont.ImageFont:
    # The bundled bitmap font: pure data, so the glyphs are identical on every machine (no FreeType version).
    loader = getattr(ImageFont, "load_default_imagefont", None)
    return loader() if loader is not None else ImageFont.load_default()


def _cell_box(cell: int, image_size: int, rng: random.Random, grid: int = GRID) -> tuple[int, int, int, int]:
    """A square box for one object inside cell ``cell`` (row-major) of a ``grid`` x ``grid`` layout: it fills
    most of the cell."""
    step = image_size / grid
    row, col = divmod(cell, grid)
    side = max(3, round(step * rng.uniform(0.65, 0.9)))
    slack = max(0, int(step) - side)
    x0 = int(col * step) + rng.randint(0, slack)
    y0 = int(row * step) + rng.randint(0, slack)
    return x0, y0, x0 + side - 1, y0 + side - 1


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, colour: str, box: tuple[int, int, int, int]) -> None:
    fill = COLOURS[colour]
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    else:  # pragma: no cover - guarded by SHAPES
        raise ValueError(f"unknown shape {shape!r}")


def _background(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randint(225, 255) for _ in range(3))  # light, slightly tinted


def _scene(
    objects: list[tuple[str, str, int]], image_size: int, rng: random.Random, grid: int = GRID
) -> Image.Image:
    img = Image.new("RGB", (image_size, image_size), _background(rng))
    draw = ImageDraw.Draw(img)
    for shape, colour, cell in objects:
        _draw_shape(draw, shape, colour, _cell_box(cell, image_size, rng, grid))
    return img


def _other_descriptions(exclude: set[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(s, c) for s in SHAPES for c in COLOURS if (s, c) not in exclude]


# --------------------------------------------------------------------------------------------- the families


def _colour(rng: random.Random, image_size: int):
    # one object filling most of the image: its colour is the only colour in the scene
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    img = _scene([(shape, colour, 0)], image_size, rng, grid=1)
    return img, Q_COLOUR.format(shape=shape), colour


def _count(rng: random.Random, image_size: int):
    # 1..4 copies of one shape in one colour, one per cell, nothing else: the count is the amount of colour
    shape, colour, n = rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.randint(1, len(COUNT_WORDS))
    objects = [(shape, colour, cell) for cell in rng.sample(range(GRID * GRID), n)]
    return _scene(objects, image_size, rng), Q_COUNT.format(shape=shape), COUNT_WORDS[n - 1]


def _exist(rng: random.Random, image_size: int):
    # 1 or 2 big objects; when the answer is no, none of them has the asked colour (colour alone decides)
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    present = rng.random() < 0.5
    cells = rng.sample(range(GRID * GRID), rng.randint(1, 2))  # same distribution for yes and no
    others = [c for c in COLOURS if c != colour]
    objects = [(rng.choice(SHAPES), rng.choice(others), cell) for cell in cells]
    if present:
        objects[0] = (shape, colour, cells[0])
    question = Q_EXIST.format(colour=colour, shape=shape)
    return _scene(objects, image_size, rng), question, "yes" if present else "no"


def _spatial(rng: random.Random, image_size: int):
    # exactly two big objects of different colours (each findable by colour alone) in different grid columns
    colour_a, colour_b = rng.sample(list(COLOURS), 2)
    shape_a, shape_b = rng.choice(SHAPES), rng.choice(SHAPES)
    left = rng.random() < 0.5
    col_a, col_b = sorted(rng.sample(range(GRID), 2), reverse=not left)
    objects = [
        (shape_a, colour_a, rng.randrange(GRID) * GRID + col_a),
        (shape_b, colour_b, rng.randrange(GRID) * GRID + col_b),
    ]
    question = Q_SPATIAL.format(colour=colour_a, shape=shape_a, colour2=colour_b, shape2=shape_b)
    return _scene(objects, image_size, rng), question, "left" if left else "right"


def _read(rng: random.Random, image_size: int):
    text = "".join(rng.choice(OCR_ALPHABET) for _ in range(rng.choice(OCR_LENGTHS)))
    img = Image.new("RGB", (image_size, image_size), _background(rng))
    draw = ImageDraw.Draw(img)
    font = _font()
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    w, h = x1 - x0, y1 - y0
    x = rng.randint(0, max(0, image_size - w - 1)) - x0
    y = rng.randint(0, max(0, image_size - h - 1)) - y0
    ink = tuple(rng.randint(0, 70) for _ in range(3))
    draw.text((x, y), text, fill=ink, font=font)
    return img, Q_READ, text


GENERATORS: dict[str, Callable[[random.Random, int], tuple[Image.Image, str, str]]] = {
    "colour": _colour,
    "count": _count,
    "exist": _exist,
    "spatial": _spatial,
    "read": _read,
}


def _family_plan(n: int, weights: dict[str, float], rng: random.Random) -> list[str]:
    """Exactly proportional family counts (largest remainder), shuffled: balanced eval splits."""
    fams = [f for f in FAMILIES if weights.get(f, 0) > 0]
    total = sum(weights[f] for f in fams)
    quotas = {f: n * weights[f] / total for f in fams}
    counts = {f: int(q) for f, q in quotas.items()}
    for f in sorted(fams, key=lambda f: (counts[f] - quotas[f], fams.index(f)))[: n - sum(counts.values())]:
        counts[f] += 1
    plan = [f for f in fams for _ in range(counts[f])]
    rng.shuffle(plan)
    return plan


def generate_split(
    split: str, n: int, seed: int, image_size: int, weights: dict[str, float]
) -> Iterator[tuple[dict, Image.Image]]:
    """Yield ``(record, image)`` pairs of one split; record ``i`` depends only on (version, seed, split, i)."""
    base = f"vlmscale-synthetic-v{SYNTHETIC_VERSION}:{seed}:{split}"
    plan = _family_plan(n, weights, random.Random(base))
    for i, family in enumerate(plan):
        rng = random.Random(f"{base}:{i}")  # str seeds hash with sha512: stable across runs and machines
        img, question, answer = GENERATORS[family](rng, image_size)
        record = {
            "id": f"{split}-{i:06d}",
            "image": f"{split}/{i:06d}.png",
            "conversations": [
                {"from": "human", "value": f"<image>\n{question}"},
                {"from": "gpt", "value": answer},
            ],
            "category": FAMILIES[family],
            "family": family,
        }
        yield record, img


# --------------------------------------------------------------------------------------------- the suite


def suite_params(
    seed: int = 0,
    sizes: dict[str, int] | None = None,
    image_size: int = 64,
    family_weights: dict[str, float] | None = None,
) -> dict:
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown synthetic splits {sorted(unknown)}; expected {SPLITS}")
    weights = dict(DEFAULT_FAMILY_WEIGHTS if family_weights is None else family_weights)
    unknown = set(weights) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown synthetic families {sorted(unknown)}; expected {sorted(FAMILIES)}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16, got {image_size}")
    return {
        "version": SYNTHETIC_VERSION,
        "seed": int(seed),
        "sizes": {s: int(sizes[s]) for s in SPLITS},
        "image_size": int(image_size),
        "family_weights": {f: float(weights.get(f, 0.0)) for f in FAMILIES},
    }


def suite_dir(cache_dir: str | Path, params: dict) -> Path:
    return (
        Path(cache_dir).expanduser()
        / f"synthetic-v{params['version']}-s{params['seed']}-{params_key(params)}"
    )


def ensure_synthetic(
    cache_dir: str | Path | None = None,
    seed: int = 0,
    sizes: dict[str, int] | None = None,
    image_size: int = 64,
    family_weights: dict[str, float] | None = None,
    progress: bool = True,
) -> Path:
    """Generate the suite once into the cache (atomically) and return its folder.

    The folder holds ``<split>.json`` (LLaVA format, plus ``category``/``family`` per record), the PNGs under
    ``images/`` and ``meta.json`` (parameters, chance levels, family counts).
    """
    params = suite_params(seed, sizes, image_size, family_weights)
    final = suite_dir(cache_dir if cache_dir is not None else default_cache_dir(), params)

    def build(tmp: Path) -> None:
        from tqdm.auto import tqdm

        total = sum(params["sizes"].values())
        counts: dict[str, dict[str, int]] = {}
        with tqdm(total=total, desc="synthetic VQA suite", unit="img", disable=not progress) as bar:
            for split in SPLITS:
                (tmp / "images" / split).mkdir(parents=True)
                records = []
                gen = generate_split(
                    split,
                    params["sizes"][split],
                    params["seed"],
                    params["image_size"],
                    params["family_weights"],
                )
                for record, img in gen:
                    img.save(tmp / "images" / record["image"], format="PNG", optimize=False)
                    records.append(record)
                    fam = counts.setdefault(split, {})
                    fam[record["family"]] = fam.get(record["family"], 0) + 1
                    bar.update(1)
                (tmp / f"{split}.json").write_text(json.dumps(records, indent=1))
        meta = {"params": params, "chance": chance_levels(params["family_weights"]), "family_counts": counts}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))

    if not final.is_dir():
        log.info("generating the synthetic VQA suite into %s", final)
    return publish_dir(final, build)


def split_paths(folder: str | Path, split: str) -> tuple[Path, Path]:
    """``(data_path, image_folder)`` of one split of a generated suite, for :class:`LlavaDataset`."""
    folder = Path(folder)
    return folder / f"{split}.json", folder / "images"


def corpus_texts() -> list[str]:
    """Every word the suite can produce (questions and answers): training text for the offline tokenizer."""
    texts = [Q_READ, *COUNT_WORDS, "yes", "no", "left", "right", *COLOURS, *SHAPES, *OCR_ALPHABET]
    for shape in SHAPES:
        texts += [Q_COLOUR.format(shape=shape), Q_COUNT.format(shape=shape)]
        for colour in COLOURS:
            texts.append(Q_EXIST.format(colour=colour, shape=shape))
            texts.append(Q_SPATIAL.format(colour=colour, shape=shape, colour2=colour, shape2=shape))
    return texts
