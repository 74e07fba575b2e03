"""The feature cache entry: equal to the live tower, keyed by what it depends on, rebuilt when damaged, built
once by concurrent processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from feature_helpers import llava_data, make_tower, run_config

from vlmscale.data import UnreadableImageError, build_datasets
from vlmscale.features import attach_features, prepare_features, split_images
from vlmscale.features.store import is_complete

REPO = Path(__file__).resolve().parents[2]


def live(tower, dataset, multilevel: bool, batch: int = 5):
    """The tower's forward over the dataset's images, read as live training reads them, in batches of 5
    (the entry was computed in batches of 64: the features must not depend on the batch)."""
    _, paths = split_images(dataset)
    by_path = {}
    for index in range(len(dataset)):
        record = dataset.records[index]
        if record.get("image") is not None:
            by_path.setdefault(dataset.image_path(record), dataset.load_image(record, index))
    pixels = torch.stack([by_path[p] for p in paths])
    parts = [tower(pixels[i : i + batch], multilevel=multilevel) for i in range(0, len(pixels), batch)]
    patches = torch.cat([f.patches for f in parts])
    levels = torch.cat([f.multilevel for f in parts]) if multilevel else None
    return paths, patches, levels


def assert_equal_to_live(tower, datasets, readers, multilevel):
    for split, dataset in datasets.items():
        paths, patches, levels = live(tower, dataset, multilevel)
        reader = readers[split]
        assert len(reader) == len(paths) > 0
        for i, path in enumerate(paths):
            fields = reader(path)
            assert torch.equal(fields["vision_patches"], patches[i]), (split, path)
            if multilevel:
                assert torch.equal(fields["vision_multilevel"], levels[i]), (split, path)
            else:
                assert "vision_multilevel" not in fields


def entries(cache) -> list[Path]:
    return sorted(p for p in Path(cache).iterdir() if p.name.startswith("features-"))


@pytest.mark.parametrize("multilevel", [True, False], ids=["quecc-multilevel", "avgpool-selected"])
def test_synthetic_features_equal_the_live_tower(multilevel, synthetic, synthetic_data, tower, tmp_path):
    folder, readers = prepare_features(run_config(tmp_path, synthetic_data), tower, multilevel, synthetic)
    meta = json.loads((folder / "meta.json").read_text())
    # the selected layer (-2 = 3) is one of the multi-level ones [1, 2, 3, 4]: stored once
    assert meta["layers"] == ([1, 2, 3, 4] if multilevel else [3])
    assert meta["splits"]["train"]["shape"] == [12, len(meta["layers"]), 256, 64]
    assert meta["params"]["images"]["synthetic"] == Path(synthetic["train"].data_path).parent.name
    assert_equal_to_live(tower, synthetic, readers, multilevel)


def test_dataset_items_carry_the_features_and_decode_nothing(
    synthetic, synthetic_data, tower, tmp_path, monkeypatch
):
    expected = synthetic["val"][1]["pixel_values"]
    assert attach_features(run_config(tmp_path, synthetic_data), tower, True, synthetic) is not None
    monkeypatch.setattr(type(synthetic["val"]), "load_image", lambda *a: pytest.fail("an image was decoded"))
    item = synthetic["val"][1]
    assert "pixel_values" not in item and item["vision_patches"].shape == (256, 64)
    features = tower(expected[None], multilevel=True)
    assert torch.equal(item["vision_patches"], features.patches[0])
    assert torch.equal(item["vision_multilevel"], features.multilevel[0])


def test_llava_folder_features_equal_the_live_tower(llava_dir, tokenizer, tower, tmp_path):
    data = llava_data(llava_dir)
    datasets = build_datasets(tokenizer, tower.image_processor, **data)
    folder, readers = prepare_features(run_config(tmp_path, data), tower, True, datasets)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["splits"]["train"]["count"] == 3  # red.png is read by two records: stored once
    assert (folder / "train.images.txt").read_text().split() == ["red.png", "sub/tall_blue.jpg", "noise.png"]
    assert "files" in meta["params"]["images"]  # path, size and mtime of each image
    assert_equal_to_live(tower, datasets, readers, True)


def test_a_changed_image_gets_a_new_entry(llava_dir, tokenizer, tower, tmp_path):
    from PIL import Image

    data = llava_data(llava_dir)
    datasets = build_datasets(tokenizer, tower.image_processor, **data)
    first, _ = prepare_features(run_config(tmp_path, data), tower, True, datasets)
    Image.new("RGB", (64, 64), (0, 255, 0)).save(llava_dir / "images" / "red.png")  # now green
    second, readers = prepare_features(run_config(tmp_path, data), tower, True, datasets)
    assert second != first and entries(tmp_path) == sorted([first, second])
    assert_equal_to_live(tower, datasets, readers, True)


def test_another_tower_gets_a_new_entry_the_same_one_reuses_it(synthetic, synthetic_data, tower, tmp_path):
    cfg = run_config(tmp_path, synthetic_data)
    folder, _ = prepare_features(cfg, tower, True, synthetic)
    built = (folder / "train.npy").stat().st_mtime_ns
    again, _ = prepare_features(cfg, make_tower(seed=0), True, synthetic)  # same weights, rebuilt tower
    assert again == folder and (folder / "train.npy").stat().st_mtime_ns == built
    others = [
        prepare_features(cfg, make_tower(seed=1), True, synthetic)[0],  # other weights
        prepare_features(cfg, tower, False, synthetic)[0],  # other layers: the selected one only
        prepare_features(cfg, make_tower(select_layer=-1), False, synthetic)[0],  # another selected layer
    ]
    assert len({folder, *others}) == 4 and len(entries(tmp_path)) == 4


def _cut_short(npy: Path) -> None:
    os.truncate(npy, npy.stat().st_size - 4096)


def _drop_the_marker(npy: Path) -> None:
    (npy.parent / "meta.json").unlink()


def _unwritten_rows(npy: Path) -> None:
    array = np.load(npy, mmap_mode="r+")  # rows never written: zeros, the file keeps its size
    array[-1] = 0
    array.flush()


@pytest.mark.parametrize("damage", [_cut_short, _drop_the_marker, _unwritten_rows])
def test_a_damaged_entry_is_detected_and_rebuilt(damage, synthetic, synthetic_data, tower, tmp_path):
    cfg = run_config(tmp_path, synthetic_data)
    folder, _ = prepare_features(cfg, tower, True, synthetic)
    good = np.load(folder / "train.npy").copy()
    damage(folder / "train.npy")
    assert not is_complete(folder)
    again, readers = prepare_features(cfg, tower, True, synthetic)
    assert again == folder and is_complete(folder) and entries(tmp_path) == [folder]
    assert np.array_equal(np.load(folder / "train.npy"), good)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".broken-" in p.name]
    assert_equal_to_live(tower, {"train": synthetic["train"]}, readers, True)


def test_bfloat16_tower_round_trips(synthetic, synthetic_data, tmp_path):
    tower = make_tower(dtype="bfloat16")
    _, readers = prepare_features(run_config(tmp_path, synthetic_data), tower, True, synthetic)
    assert np.load(readers["val"].array_path, mmap_mode="r").dtype == np.int16  # its bits
    assert readers["val"](split_images(synthetic["val"])[1][0])["vision_patches"].dtype == torch.bfloat16
    assert_equal_to_live(tower, {"val": synthetic["val"]}, readers, True)


def test_an_undecodable_image_fails_as_it_would_live(llava_dir, tokenizer, tower, tmp_path):
    image = llava_dir / "images" / "noise.png"
    image.write_bytes(image.read_bytes()[:200])  # the header reads, the pixels do not
    data = llava_data(llava_dir)
    datasets = build_datasets(tokenizer, tower.image_processor, **data)
    folder = attach_features(run_config(tmp_path, data), tower, True, datasets)
    assert "noise.png" in json.loads((folder / "meta.json").read_text())["splits"]["train"]["unreadable"]
    assert "vision_patches" in datasets["train"][0]
    with pytest.raises(UnreadableImageError, match="noise.png"):
        datasets["train"][3]


BUILD = """
import os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from feature_helpers import make_tower, run_config
from vlmscale.data import build_datasets
from vlmscale.features import prepare_features, store
write_split = store.write_split
def slow_write_split(*args, **kwargs):  # a build long enough for the other process to arrive meanwhile
    print("building", args[1], flush=True)
    time.sleep(1.0)
    return write_split(*args, **kwargs)
store.write_split = slow_write_split
tower = make_tower()
data = {data!r}
datasets = build_datasets(None, tower.image_processor, **data)
barrier = Path({barrier!r})  # both start building at the same moment: each waits until both are here
(barrier / str(os.getpid())).touch()
while len(list(barrier.iterdir())) < 2:
    time.sleep(0.02)
print(prepare_features(run_config({cache!r}, data), tower, True, datasets)[0])
"""


def test_two_processes_building_at_once_leave_one_entry(synthetic, synthetic_data, tmp_path):
    barrier, cache = tmp_path / "barrier", tmp_path / "cache"
    barrier.mkdir()
    script = BUILD.format(
        tests=str(Path(__file__).parent), data=synthetic_data, cache=str(cache), barrier=str(barrier)
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].strip().splitlines() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    builders = [out for out in outputs if any(line.startswith("building") for line in out)]
    assert len(builders) == 1, outputs  # one built every split; the other waited on the lock and read it
    folders = {out[-1] for out in outputs}
    assert len(folders) == 1 and entries(cache) == [Path(folders.pop())]
    assert is_complete(entries(cache)[0])
    leftovers = [p for p in cache.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
    assert not leftovers


def test_a_batch_carries_the_features_and_zeros_for_text_only_rows(llava_dir, tokenizer, tower, tmp_path):
    from vlmscale.data import collate

    data = llava_data(llava_dir)
    datasets = build_datasets(tokenizer, tower.image_processor, **data)
    attach_features(run_config(tmp_path, data), tower, True, datasets)
    items = [datasets["train"][i] for i in range(5)]  # r2 is text-only
    batch = collate(items, tokenizer.pad_token_id)
    assert "pixel_values" not in batch and batch["has_image"].tolist() == [True, True, False, True, True]
    assert batch["vision_patches"].shape == (5, 256, 64) and batch["vision_multilevel"].shape == (5, 256, 256)
    assert not batch["vision_patches"][2].any() and not batch["vision_multilevel"][2].any()
    assert torch.equal(batch["vision_patches"][0], batch["vision_patches"][4])  # one image, two records
    with pytest.raises(ValueError, match="mixes cached image features and pixel_values"):
        live = {k: v for k, v in items[1].items() if not k.startswith("vision_")}
        collate([items[0], {**live, "pixel_values": torch.zeros(3, 64, 64)}], tokenizer.pad_token_id)
