"""The LLaVA-format dataset: a JSON list (or JSONL) of records plus an image folder.

A record (LLaVA 558K pretrain / 665K finetune)::

    {"id": "000000033471", "image": "coco/train2017/000000033471.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nWhat are the colors of the bus?"},
                       {"from": "gpt", "value": "White and red."}, ...]}

``image`` is optional (text-only record); an optional ``category`` tags the record for per-category metrics.
Records are validated when the file is read (cheap structural checks, and a stat of every image unless
``check_images=False``): a malformed record raises :class:`LlavaFormatError` naming the file and record index;
a missing image raises :class:`MissingImageError` naming the path, or with ``on_missing_image="skip"`` the
record is dropped, counted (``num_skipped``) and logged. Images are opened and tokenisation is done lazily in
``__getitem__``. ``image_aspect_ratio="pad"`` expands an image to a square filled with the image processor's
mean colour before the processor runs (LLaVA's ``pad``); ``"crop"`` leaves it to the processor (resize + crop).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from vlmscale.data.conversation import ConversationError, encode_conversation, to_messages

log = logging.getLogger(__name__)

ON_MISSING_IMAGE = ("error", "skip")
ASPECT_RATIOS = ("pad", "crop")


class LlavaFormatError(ValueError):
    """A malformed record or file; the message names the file and the record index."""


class MissingImageError(FileNotFoundError):
    """A record's image file does not exist; the message names the path."""


# ---------------------------------------------------------------------------------------------------- images


def expand2square(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Pad ``img`` to a square (centred) with ``background``: LLaVA's ``pad`` aspect-ratio handling."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), background)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


def build_image_processor(pretrained: str | None = None, image_size: int = 64):
    """The vision tower's image processor: ``AutoImageProcessor`` for a hub tower, else a CLIP processor.

    For a tower built from a config (``pretrained=None``) the processor resizes the shortest edge to
    ``image_size``, centre-crops ``image_size`` square and normalises with CLIP's mean/std.
    """
    if pretrained:
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(pretrained)
    import transformers

    # transformers 5 without torchvision: use the PIL backend directly (the default class warns and falls back)
    name = "CLIPImageProcessor"
    if importlib.util.find_spec("torchvision") is None and hasattr(transformers, "CLIPImageProcessorPil"):
        name = "CLIPImageProcessorPil"
    Processor = getattr(transformers, name)
    return Processor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


def processor_image_size(processor) -> tuple[int, int] | None:
    """``(H, W)`` of the processor's output, where it says (crop size, else a fixed size)."""
    for attr in ("crop_size", "size"):
        size = getattr(processor, attr, None)
        if size is None:
            continue
        get = size.get if isinstance(size, dict) else lambda k, s=size: getattr(s, k, None)
        if get("height") and get("width"):
            return int(get("height")), int(get("width"))
    return None


def _mean_colour(processor) -> tuple[int, int, int]:
    mean = getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5)
    return tuple(int(round(float(m) * 255)) for m in mean)


# --------------------------------------------------------------------------------------------------- records


def _validate(record, path: Path, index: int) -> dict:
    where = f"{path}: record {index}"
    if not isinstance(record, dict):
        raise LlavaFormatError(f"{where}: expected an object, got {type(record).__name__}")
    conv = record.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise LlavaFormatError(f"{where}: missing or empty 'conversations' list")
    image = record.get("image")
    if image is not None and not isinstance(image, str):
        raise LlavaFormatError(
            f"{where}: 'image' must be a path string (multi-image records are not supported)"
        )
    try:
        to_messages(conv, has_image=image is not None)
    except ConversationError as err:
        raise LlavaFormatError(f"{where}: {err}") from None
    return record


def read_records(path: str | Path) -> list[dict]:
    """Read and validate a LLaVA JSON list (``.json``) or JSONL file (one record per line)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"LLaVA data file not found: {path}")
    text = path.read_text(encoding="utf-8")
    records: list
    if path.suffix == ".jsonl" or not text.lstrip().startswith("["):
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise LlavaFormatError(
                    f"{path}: record {len(records)} (line {lineno}) is not valid JSON: {err.msg}"
                ) from None
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise LlavaFormatError(
                f"{path}: not valid JSON at line {err.lineno} column {err.colno}: {err.msg}"
            ) from None
        if not isinstance(records, list):
            raise LlavaFormatError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    return [_validate(r, path, i) for i, r in enumerate(records)]


# --------------------------------------------------------------------------------------------------- dataset


class LlavaDataset(Dataset):
    """LLaVA-format records -> dataset items of the batch contract (see docs/ARCHITECTURE.md)."""

    def __init__(
        self,
        data_path: str | Path,
        image_folder: str | Path | None,
        tokenizer,
        image_processor,
        *,
        image_aspect_ratio: str = "pad",
        max_length: int | None = 2048,
        on_missing_image: str = "error",
        system_prompt: str | None = None,
        default_category: str = "",
        check_images: bool = True,
        records: Sequence[dict] | None = None,
        question_first: bool = False,
    ):
        if on_missing_image not in ON_MISSING_IMAGE:
            raise ValueError(f"on_missing_image must be one of {ON_MISSING_IMAGE}, got {on_missing_image!r}")
        if image_aspect_ratio not in ASPECT_RATIOS:
            raise ValueError(f"image_aspect_ratio must be one of {ASPECT_RATIOS}, got {image_aspect_ratio!r}")
        self.data_path = Path(data_path).expanduser()
        self.image_folder = Path(image_folder).expanduser() if image_folder is not None else None
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_aspect_ratio = image_aspect_ratio
        self.max_length = max_length
        self.on_missing_image = on_missing_image
        self.system_prompt = system_prompt
        self.question_first = question_first  # image after the first question (QueCC query=prefix)
        self.default_category = default_category
        self.image_size = processor_image_size(image_processor) if image_processor is not None else None
        self.num_truncated = 0
        self.skipped: list[tuple[int, str]] = []  # (record index in the file, missing image path)
        self.records = list(records) if records is not None else read_records(self.data_path)
        if check_images:
            self.records = self._check_images(self.records)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def image_path(self, record: dict) -> Path:
        rel = Path(record["image"]).expanduser()
        if rel.is_absolute() or self.image_folder is None:
            return rel
        return self.image_folder / rel

    def _check_images(self, records: list[dict]) -> list[dict]:
        kept = []
        for index, record in enumerate(records):
            if record.get("image") is None:
                kept.append(record)
                continue
            path = self.image_path(record)
            if path.is_file():
                kept.append(record)
            elif self.on_missing_image == "error":
                raise MissingImageError(f"{self.data_path}: record {index}: image not found: {path}")
            else:
                self.skipped.append((index, str(path)))
        if self.skipped:
            log.warning(
                "%s: skipped %d of %d records whose image is missing (first: %s)",
                self.data_path,
                len(self.skipped),
                len(records),
                self.skipped[0][1],
            )
        return kept

    def select(self, indices: Sequence[int]) -> LlavaDataset:
        """A view on a subset of the records (e.g. a held-out validation slice), sharing tokenizer/processor."""
        view = copy.copy(self)
        view.records = [self.records[i] for i in indices]
        view.num_truncated = 0
        return view

    def __len__(self) -> int:
        return len(self.records)

    def load_image(self, record: dict) -> torch.Tensor:
        path = self.image_path(record)
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except FileNotFoundError:
            raise MissingImageError(f"{self.data_path}: image not found: {path}") from None
        if self.image_aspect_ratio == "pad":
            img = expand2square(img, _mean_colour(self.image_processor))
        return self.image_processor(images=img, return_tensors="pt")["pixel_values"][0]

    def encode_text(self, index: int) -> dict:
        """The record's token ids (input_ids, labels, prompt_ids, query_ids, answer) without loading its image."""
        record = self.records[index]
        return encode_conversation(
            self.tokenizer,
            record["conversations"],
            has_image=record.get("image") is not None,
            system=self.system_prompt,
            max_length=self.max_length,
            question_first=self.question_first,
        )

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        has_image = record.get("image") is not None
        enc = encode_conversation(
            self.tokenizer,
            record["conversations"],
            has_image=has_image,
            system=self.system_prompt,
            max_length=self.max_length,
            question_first=self.question_first,
        )
        if enc["truncated"]:
            self.num_truncated += 1
            if self.num_truncated == 1 or (self.num_truncated & (self.num_truncated - 1)) == 0:
                log.warning(
                    "%s: %d record(s) truncated to max_length=%d so far (latest: id %s)",
                    self.data_path,
                    self.num_truncated,
                    self.max_length,
                    record.get("id", index),
                )
        return {
            "pixel_values": self.load_image(record) if has_image else None,
            "input_ids": enc["input_ids"],
            "labels": enc["labels"],
            "query_ids": enc["query_ids"],
            "prompt_ids": enc["prompt_ids"],
            "answer": enc["answer"],
            "category": str(record.get("category", self.default_category)),
            "id": str(record.get("id", index)),
        }
