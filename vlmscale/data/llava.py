"""The LLaVA-format dataset: a JSON list (or JSONL) of records plus an image folder.

A record (LLaVA 558K pretrain / 665K finetune)::

    {"id": "000000033471", "image": "coco/train2017/000000033471.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nWhat are the colors of the bus?"},
                       {"from": "gpt", "value": "White and red."}, ...]}

``image`` is optional (text-only record); an optional ``category`` tags the record for per-category metrics.
Records are validated when the file is read (cheap structural checks, and a stat of every image unless
``check_images=False``): a malformed record raises :class:`LlavaFormatError` naming the file and record index;
a missing or unreadable image (not found, or not decodable: random bytes, a truncated file) raises
:class:`MissingImageError` / :class:`UnreadableImageError` naming the file, the record index and the image, or
with ``on_missing_image="skip"`` the record is dropped, counted (``num_skipped``, ``skipped``) and logged with
its record index. Start-up checks catch what a stat and a header read can; an image that only fails when
decoded in ``__getitem__`` is handled the same way there (``skip``: the next readable record stands in).
Images are opened and tokenisation is done lazily in ``__getitem__``. ``image_aspect_ratio="pad"`` expands an image to a square filled with the image processor's
mean colour before the processor runs (LLaVA's ``pad``); ``"crop"`` leaves it to the processor (resize + crop).
With ``image_features`` set (a frozen tower's cached output, :mod:`vlmscale.features`), an item carries the
image's ``vision_patches`` (and ``vision_multilevel``) in place of ``pixel_values`` and no image is decoded.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from vlmscale.contract import parse_json
from vlmscale.data.conversation import ConversationError, encode_conversation, to_messages
from vlmscale.errors import MissingFileError, UserError

log = logging.getLogger(__name__)

ON_MISSING_IMAGE = ("error", "skip")
ASPECT_RATIOS = ("pad", "crop")


class LlavaFormatError(UserError):
    """A malformed record or file; the message names the file and the record index."""


class MissingImageError(MissingFileError):
    """A record's image file does not exist; the message names the data file, the record and the image."""


class UnreadableImageError(MissingImageError):
    """A record's image exists but cannot be decoded (corrupt, truncated, not an image). Handled like a
    missing one (``on_missing_image``); the message names the data file, the record and the image."""


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


def process_image(img: Image.Image, image_processor, aspect_ratio: str = "pad") -> torch.Tensor:
    """An RGB image -> ``pixel_values [3, H, W]``; ``pad`` first pads it to a square with the processor's mean
    colour (LLaVA-1.5), ``crop`` leaves the resize and centre crop to the processor. Training and eval both."""
    if aspect_ratio == "pad":
        mean = getattr(image_processor, "image_mean", None) or (0.5, 0.5, 0.5)
        img = expand2square(img, tuple(int(round(float(m) * 255)) for m in mean))
    return image_processor(images=img, return_tensors="pt")["pixel_values"][0]


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
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise LlavaFormatError(
            f"{path}: not UTF-8 text (byte {err.start}, line {line}: {err.reason}); "
            "LLaVA data files are UTF-8 JSON, re-encode it (e.g. iconv -t UTF-8)"
        ) from None
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
            records = parse_json(text, list)
        except ValueError as err:
            raise LlavaFormatError(f"{path}: {err}") from None
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
        # path -> {"vision_patches", "vision_multilevel"?}: the cached tower output read in place of the image
        self.image_features = None
        self.skipped: list[tuple[int, str]] = []  # (record index in the file, missing/unreadable image)
        self.records = list(records) if records is not None else read_records(self.data_path)
        self.file_index = list(range(len(self.records)))  # record i of this view is record file_index[i]
        if check_images:
            self._check_images()

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def image_path(self, record: dict) -> Path:
        rel = Path(record["image"]).expanduser()
        if rel.is_absolute() or self.image_folder is None:
            return rel
        return self.image_folder / rel

    def _image_error(self, index: int, path: Path, reason: str) -> MissingImageError:
        kind = MissingImageError if reason == "not found" else UnreadableImageError
        fix = "fix or remove it, or pass data.on_missing_image=skip to drop such records"
        return kind(f"{self.data_path}: record {index}: image {reason}: {path}; {fix}")

    def _skip(self, index: int, path: Path, reason: str) -> None:
        self.skipped.append((index, str(path)))
        log.warning(
            "%s: record %d skipped (on_missing_image=skip): image %s: %s", self.data_path, index, reason, path
        )

    def _check_images(self) -> None:
        """Drop (skip) or reject records whose image is missing or has no readable image header."""
        kept, kept_index = [], []
        for record, index in zip(self.records, self.file_index):
            reason = None if record.get("image") is None else _image_problem(self.image_path(record))
            if reason is None:
                kept.append(record)
                kept_index.append(index)
            elif self.on_missing_image == "error":
                raise self._image_error(index, self.image_path(record), reason)
            else:
                self._skip(index, self.image_path(record), reason)
        if self.skipped:
            log.warning(
                "%s: skipped %d of %d records whose image is missing or unreadable (first: record %d, %s)",
                self.data_path,
                len(self.skipped),
                len(self.records),
                *self.skipped[0],
            )
        self.records, self.file_index = kept, kept_index

    def select(self, indices: Sequence[int]) -> LlavaDataset:
        """A view on a subset of the records (e.g. a held-out validation slice), sharing tokenizer/processor."""
        view = copy.copy(self)
        view.records = [self.records[i] for i in indices]
        view.file_index = [self.file_index[i] for i in indices]
        view.num_truncated = 0
        return view

    def __len__(self) -> int:
        return len(self.records)

    def lengths(self) -> tuple[list[int], list[bool]]:
        """Per record, a cheap length (words over all turns: no tokenising of 665K records at start-up) and
        whether it has an image: what :class:`vlmscale.data.module.GroupedBatchSampler` groups batches by."""
        words = [sum(len(str(t.get("value", "")).split()) for t in r["conversations"]) for r in self.records]
        return words, [r.get("image") is not None for r in self.records]

    def load_image(self, record: dict, index: int) -> torch.Tensor:
        """The record's image as pixel values; a missing or undecodable file raises naming the data file,
        the record (``index``: its index in the data file) and the image."""
        path = self.image_path(record)
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except FileNotFoundError:
            raise self._image_error(index, path, "not found") from None
        except Exception as err:  # PIL raises OSError, SyntaxError, ValueError ... for broken files
            raise self._image_error(index, path, _unreadable(err)) from err
        return process_image(img, self.image_processor, self.image_aspect_ratio)

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
        """Item ``index``; with ``on_missing_image=skip`` a record whose image fails to load is counted,
        logged and replaced by the next readable record (a batch keeps its size, the stream its length)."""
        for offset in range(len(self.records)):
            position = (index + offset) % len(self.records)
            try:
                return self._item(position)
            except MissingImageError as err:
                if self.on_missing_image == "error":
                    raise
                reason = "not found" if err.__cause__ is None else _unreadable(err.__cause__)
                self._skip(self.file_index[position], self.image_path(self.records[position]), reason)
        raise UnreadableImageError(f"{self.data_path}: no record has a readable image")

    def _item(self, index: int) -> dict:
        record = self.records[index]
        file_index = self.file_index[index]
        has_image = record.get("image") is not None
        try:
            enc = encode_conversation(
                self.tokenizer,
                record["conversations"],
                has_image=has_image,
                system=self.system_prompt,
                max_length=self.max_length,
                question_first=self.question_first,
            )
        except ConversationError as err:
            raise LlavaFormatError(f"{self.data_path}: record {file_index}: {err}") from None
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
            **self._image_fields(record, file_index),
            "input_ids": enc["input_ids"],
            "labels": enc["labels"],
            "query_ids": enc["query_ids"],
            "prompt_ids": enc["prompt_ids"],
            "answer": enc["answer"],
            "category": str(record.get("category", self.default_category)),
            "id": str(record.get("id", index)),
        }

    def _image_fields(self, record: dict, file_index: int) -> dict:
        """``pixel_values`` (None without an image), or the image's cached tower features in their place."""
        if record.get("image") is None:
            return {"pixel_values": None}
        path = self.image_path(record)
        if self.image_features is not None and path in self.image_features:
            return self.image_features(path)
        return {"pixel_values": self.load_image(record, file_index)}


def _image_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable image, from a stat and a header read (no decode), or None."""
    if not path.is_file():
        return "not found"
    try:
        with Image.open(path):  # lazy: reads the header only
            return None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return _unreadable(err)


def _unreadable(err: BaseException) -> str:
    return f"unreadable ({type(err).__name__}: {err})"
