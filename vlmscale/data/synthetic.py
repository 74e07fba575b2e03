"""The embedded synthetic VQA suite (v3): generated from a seed, written in the LLaVA format, read back like
real data.

Every image (default 64x64, the tiny CLIP's size: a 16x16 grid of 4-pixel patches) carries one short question.
The two categories probe what the paper's categories probe:

- ``reasoning``: one to three large objects in a 2x2 layout (32-pixel cells); the picture is coarse (mostly
  which colours are where) and the language carries the difficulty: every family has several paraphrases, and
  questions compose (compare two objects' colours, relate two objects left/right or above/below, count by shape
  or by colour). A few query-conditioned visual tokens can carry such a picture.
- ``ocr``: a line of three glyphs (about 12x14 pixels each, the bundled bitmap font scaled 2x), one per
  16-pixel cell in the first three columns of a random row of a 4x4 layout, read left to right. One visual
  token cannot carry three glyphs in separate places; T = 4 puts two of them in one token, T = 16 gives each
  glyph its own token.

========= ======== ================================================== =============== ==============
category  family   question (one of its paraphrases)                  answers         chance
========= ======== ================================================== =============== ==============
reasoning colour   What color is the triangle?                        6 colours       1/6 = 0.167
reasoning count    How many red objects are there? / ... squares ...  one, two, three 1/3 = 0.333
reasoning compare  Do the circle and the square have the same color?  yes / no        1/2 = 0.500
reasoning spatial  Is the red circle above or below the blue square?  left/right, ... 1/2 = 0.500
reasoning exist    Is there a green square?                           yes / no        1/2 = 0.500
ocr       read     What does the text say?                            3 of 10 glyphs  1/10 = 0.100 *
========= ======== ================================================== =============== ==============

"Chance" is the accuracy of the best guess that does not look at the image: within a family every answer is
equally likely and independent of the wording (``spatial`` asks left/right or above/below, each answer of the
pair half the time). With the default weights (``read`` weighs as much as the five reasoning families
together, so each category has half of every split) reasoning chance is 0.4 (error 0.6) and OCR chance 0.1
(error 0.9); see :func:`chance_levels`. (*) OCR is scored per glyph in place
(:func:`vlmscale.eval.tasks.synthetic.glyph_accuracy`), so a blind guess reads one glyph in ten; its exact-match
chance, reported beside it as ``exact_error/ocr``, is 1/10^3 = 0.001.

Every generated scene also has a ``layout`` (what sits in each 32-pixel quadrant and each 16-pixel cell), the
labels :mod:`vlmscale.tower_pretrain` teaches the tiny vision tower before it is frozen.

The suite lives in a cache folder named by the generator's version and parameters, generated once:
``<cache>/synthetic-v<version>-s<seed>-<hash>/{train,val,test}.json`` plus ``images/<split>/<n>.png``, built
through :func:`vlmscale.cache.publish_dir` (file lock, temporary folder renamed into place).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vlmscale.cache import params_key, publish_dir
from vlmscale.contract import default_cache_dir

log = logging.getLogger(__name__)

__all__ = [
    "chance_levels",
    "default_cache_dir",
    "ensure_synthetic",
    "params_key",
    "publish_dir",
    "split_paths",
]

SYNTHETIC_VERSION = 3
SPLITS = ("train", "val", "test")
# ~1000 test questions per category: one point's error has a standard error <= 0.5 / sqrt(1000) = 0.016
DEFAULT_SIZES = {"train": 6000, "val": 400, "test": 2000}

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 30),
}
SHAPES = ("circle", "square", "triangle")
COUNT_WORDS = ("one", "two", "three")
OCR_ALPHABET = "CEFHKLPRTX"  # ten capitals with distinct 2x glyphs; no A (the VQA normaliser drops it)
OCR_LENGTH = 3

FAMILIES: dict[str, str] = {
    "colour": "reasoning",
    "count": "reasoning",
    "compare": "reasoning",
    "spatial": "reasoning",
    "exist": "reasoning",
    "read": "ocr",
}
# read weighs as much as the five reasoning families: each category is half of every split
DEFAULT_FAMILY_WEIGHTS = {
    "colour": 1.0,
    "count": 1.0,
    "compare": 1.0,
    "spatial": 1.0,
    "exist": 1.0,
    "read": 5.0,
}

# Paraphrases per question kind; the words here are also the offline tokenizer's training text.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "colour": (
        "What color is the {shape}?",
        "Which color does the {shape} have?",
        "Tell me the color of the {shape}.",
        "The {shape} is which color?",
    ),
    "count_shape": (
        "How many {shape}s are there?",
        "Count the {shape}s.",
        "What is the number of {shape}s in the image?",
    ),
    "count_colour": (
        "How many {colour} objects are there?",
        "Count the {colour} objects.",
        "What is the number of {colour} objects in the image?",
    ),
    "compare": (
        "Do the {shape} and the {shape2} have the same color?",
        "Are the {shape} and the {shape2} the same color?",
        "Is the {shape} the same color as the {shape2}?",
    ),
    "spatial_x": (
        "Is the {colour} {shape} left or right of the {colour2} {shape2}?",
        "Where is the {colour} {shape} relative to the {colour2} {shape2}, left or right?",
    ),
    "spatial_y": (
        "Is the {colour} {shape} above or below the {colour2} {shape2}?",
        "Where is the {colour} {shape} relative to the {colour2} {shape2}, above or below?",
    ),
    "exist": (
        "Is there a {colour} {shape}?",
        "Can you see a {colour} {shape}?",
        "Does the image contain a {colour} {shape}?",
    ),
    "read": (
        "What does the text say?",
        "Read the characters.",
        "What is written in the image?",
    ),
}

QUADRANTS = 2  # reasoning objects: one per cell of a 2x2 layout (32-pixel cells on a 64-pixel image)
CELLS = 4  # ocr glyphs: one per cell of a 4x4 layout (16-pixel cells)


@dataclass
class Scene:
    """One generated example: the image, its question and answer, and what it shows where (for the tower)."""

    image: Image.Image
    question: str
    answer: str
    # quadrant (row-major, 2x2) -> (shape index + 1, colour index + 1), 0 = empty; cell (4x4) -> glyph index + 1
    quadrants: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)] * QUADRANTS**2)
    cells: list[int] = field(default_factory=lambda: [0] * CELLS**2)


# ----------------------------------------------------------------------------------------------- chance levels


def chance_levels(family_weights: dict[str, float] | None = None) -> dict[str, float]:
    """Image-blind chance accuracy per family, per category (weighted by family share) and ``avg``, under the
    suite's scoring rule (OCR per glyph: a blind guess matches each glyph one time in ``len(OCR_ALPHABET)``).

    ``avg`` is the mean of the two categories, matching ``error/avg`` = mean of ``error/reasoning`` and
    ``error/ocr``.
    """
    weights = dict(DEFAULT_FAMILY_WEIGHTS if family_weights is None else family_weights)
    per_family = {
        "colour": 1 / len(COLOURS),
        "count": 1 / len(COUNT_WORDS),
        "compare": 1 / 2,
        "spatial": 1 / 2,
        "exist": 1 / 2,
        "read": 1 / len(OCR_ALPHABET),
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


def _glyph(char: str, scale: int) -> Image.Image:
    """The character's ink as a mask, cropped to its box and scaled up ``scale`` times (nearest: crisp)."""
    canvas = Image.new("L", (16, 16), 0)
    ImageDraw.Draw(canvas).text((2, 2), char, fill=255, font=_font())
    ink = canvas.crop(canvas.getbbox())
    return ink.resize((ink.width * scale, ink.height * scale), Image.NEAREST)


def _background(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randint(225, 255) for _ in range(3))  # light, slightly tinted


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


def _objects_scene(
    objects: list[tuple[str, str, int]], question: str, answer: str, image_size: int, rng: random.Random
) -> Scene:
    """Large objects, one per quadrant: (shape, colour, quadrant) each filling most of its 32-pixel cell."""
    img = Image.new("RGB", (image_size, image_size), _background(rng))
    draw = ImageDraw.Draw(img)
    step = image_size / QUADRANTS
    quadrants = [(0, 0)] * QUADRANTS**2
    for shape, colour, quad in objects:
        row, col = divmod(quad, QUADRANTS)
        side = max(3, round(step * rng.uniform(0.65, 0.9)))
        slack = max(0, int(step) - side)
        x0, y0 = int(col * step) + rng.randint(0, slack), int(row * step) + rng.randint(0, slack)
        _draw_shape(draw, shape, colour, (x0, y0, x0 + side - 1, y0 + side - 1))
        quadrants[quad] = (SHAPES.index(shape) + 1, list(COLOURS).index(colour) + 1)
    return Scene(img, question, answer, quadrants=quadrants)


def _pick(rng: random.Random, kind: str, **words: str) -> str:
    return rng.choice(TEMPLATES[kind]).format(**words)


# --------------------------------------------------------------------------------------------- the families


def _colour(rng: random.Random, image_size: int) -> Scene:
    # one large object: its colour is the only colour in the scene
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    objects = [(shape, colour, rng.randrange(QUADRANTS**2))]
    return _objects_scene(objects, _pick(rng, "colour", shape=shape), colour, image_size, rng)


def _count(rng: random.Random, image_size: int) -> Scene:
    # 1..3 copies of one shape in one colour and nothing else; asked by shape or by colour
    n = rng.randint(1, len(COUNT_WORDS))
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    objects = [(shape, colour, quad) for quad in rng.sample(range(QUADRANTS**2), n)]
    by_shape = rng.random() < 0.5
    question = (
        _pick(rng, "count_shape", shape=shape) if by_shape else _pick(rng, "count_colour", colour=colour)
    )
    return _objects_scene(objects, question, COUNT_WORDS[n - 1], image_size, rng)


def _compare(rng: random.Random, image_size: int) -> Scene:
    # two objects of different shapes; the same colour half the time
    shape, shape2 = rng.sample(SHAPES, 2)
    same = rng.random() < 0.5
    colour, colour2 = (rng.choice(list(COLOURS)),) * 2 if same else rng.sample(list(COLOURS), 2)
    quads = rng.sample(range(QUADRANTS**2), 2)
    objects = [(shape, colour, quads[0]), (shape2, colour2, quads[1])]
    question = _pick(rng, "compare", shape=shape, shape2=shape2)
    return _objects_scene(objects, question, "yes" if same else "no", image_size, rng)


def _spatial(rng: random.Random, image_size: int) -> Scene:
    # two objects of different colours, in different columns (left/right) or different rows (above/below)
    colour, colour2 = rng.sample(list(COLOURS), 2)
    shape, shape2 = rng.choice(SHAPES), rng.choice(SHAPES)
    horizontal, first = rng.random() < 0.5, rng.random() < 0.5  # first: left of / above the other
    a, b = sorted(rng.sample(range(QUADRANTS), 2), reverse=not first)  # differing coordinate
    u, v = rng.randrange(QUADRANTS), rng.randrange(QUADRANTS)  # free coordinate
    quad_a, quad_b = (
        (u * QUADRANTS + a, v * QUADRANTS + b) if horizontal else (a * QUADRANTS + u, b * QUADRANTS + v)
    )
    kind, answers = ("spatial_x", ("left", "right")) if horizontal else ("spatial_y", ("above", "below"))
    question = _pick(rng, kind, colour=colour, shape=shape, colour2=colour2, shape2=shape2)
    objects = [(shape, colour, quad_a), (shape2, colour2, quad_b)]
    return _objects_scene(objects, question, answers[0] if first else answers[1], image_size, rng)


def _exist(rng: random.Random, image_size: int) -> Scene:
    # 1 or 2 objects; when the answer is no, none of them has the asked colour (colour alone decides)
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    present = rng.random() < 0.5
    quads = rng.sample(range(QUADRANTS**2), rng.randint(1, 2))  # same distribution for yes and no
    others = [c for c in COLOURS if c != colour]
    objects = [(rng.choice(SHAPES), rng.choice(others), quad) for quad in quads]
    if present:
        objects[0] = (shape, colour, quads[0])
    question = _pick(rng, "exist", colour=colour, shape=shape)
    return _objects_scene(objects, question, "yes" if present else "no", image_size, rng)


def _read(rng: random.Random, image_size: int) -> Scene:
    # a line of OCR_LENGTH glyphs, one per 16-pixel cell in the first columns of a random row, read left to right
    img = Image.new("RGB", (image_size, image_size), _background(rng))
    step = image_size // CELLS
    scale = max(1, image_size // 32)
    row = rng.randrange(CELLS)
    cells = [row * CELLS + col for col in range(OCR_LENGTH)]
    labels = [0] * CELLS**2
    chars = []
    for cell in cells:
        char = rng.choice(OCR_ALPHABET)
        mask = _glyph(char, scale)
        row, col = divmod(cell, CELLS)
        x = col * step + rng.randint(0, max(0, step - mask.width))
        y = row * step + rng.randint(0, max(0, step - mask.height))
        ink = tuple(rng.randint(0, 70) for _ in range(3))
        img.paste(Image.new("RGB", mask.size, ink), (x, y), mask)
        labels[cell] = OCR_ALPHABET.index(char) + 1
        chars.append(char)
    return Scene(img, _pick(rng, "read"), " ".join(chars), cells=labels)


GENERATORS: dict[str, Callable[[random.Random, int], Scene]] = {
    "colour": _colour,
    "count": _count,
    "compare": _compare,
    "spatial": _spatial,
    "exist": _exist,
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


def generate_scenes(
    split: str, n: int, seed: int, image_size: int, weights: dict[str, float]
) -> Iterator[tuple[str, Scene]]:
    """Yield ``(family, scene)`` for one split; scene ``i`` depends only on (version, seed, split, i)."""
    base = f"vlmscale-synthetic-v{SYNTHETIC_VERSION}:{seed}:{split}"
    for i, family in enumerate(_family_plan(n, weights, random.Random(base))):
        rng = random.Random(f"{base}:{i}")  # str seeds hash with sha512: stable across runs and machines
        yield family, GENERATORS[family](rng, image_size)


def generate_split(
    split: str, n: int, seed: int, image_size: int, weights: dict[str, float]
) -> Iterator[tuple[dict, Image.Image]]:
    """Yield ``(record, image)`` pairs of one split in the LLaVA format (plus ``category`` and ``family``)."""
    for i, (family, scene) in enumerate(generate_scenes(split, n, seed, image_size, weights)):
        record = {
            "id": f"{split}-{i:06d}",
            "image": f"{split}/{i:06d}.png",
            "conversations": [
                {"from": "human", "value": f"<image>\n{scene.question}"},
                {"from": "gpt", "value": scene.answer},
            ],
            "category": FAMILIES[family],
            "family": family,
        }
        yield record, scene.image


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
    texts = [*COUNT_WORDS, "yes", "no", "left", "right", "above", "below", *COLOURS, *SHAPES]
    texts += [" ".join(OCR_ALPHABET), *OCR_ALPHABET]
    words = {"shape": "circle", "shape2": "square", "colour": "red", "colour2": "blue"}
    for templates in TEMPLATES.values():
        texts += [t.format(**words) for t in templates]
    for shape in SHAPES:
        texts += [f"{shape}s", f"the {shape}"]
    return texts
