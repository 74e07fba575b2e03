"""vlmscale.assemble: config checks (old spellings), the compressor interface checked at build time,
checkpoint weights into a built model (also from before the Connector rename), the frozen-weight filter and
the resume lookup. Lightning-free: a checkpoint here is a plain torch.save of {"state_dict": ...}."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from vlmscale.assemble import (
    check_config,
    frozen_state_keys,
    load_weights,
    resume_checkpoint,
    upgrade_state_dict,
)
from vlmscale.models import COMPRESSORS, build_connector, register_compressor

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_train(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("old", ["quecc", "quecc_noquery", "avgpool"])
def test_old_projector_spellings_fail_naming_the_new_one(old):
    with pytest.raises(ValueError, match=f"use `compressor={old} projector=mlp2x_gelu`"):
        check_config(compose_train(f"projector={old}"))


def test_compressor_and_projector_compose_independently():
    cfg = compose_train("compressor=avgpool", "projector=linear")
    check_config(cfg)
    assert cfg.compressor.name == "avgpool" and cfg.projector.name == "linear"
    assert compose_train().compressor.name == "quecc" and compose_train().projector.name == "mlp2x_gelu"


def test_a_run_config_from_before_the_split_names_the_new_spelling():
    old = {"projector": {"name": "avgpool", "compressor": "avgpool", "mlp": "linear"}, "compressor": None}
    with pytest.raises(ValueError, match="`compressor=avgpool projector=linear`"):
        check_config(old)


def test_a_config_without_a_compressor_is_refused():
    cfg = {"llm": {}, "projector": {"name": "mlp2x_gelu"}}
    with pytest.raises(ValueError, match="compressor=quecc"):
        check_config(cfg)


DIMS = dict(vision_width=64, multilevel_width=256, llm_width=32, grid=16)


def test_a_compressor_without_the_interface_fails_when_built():
    class NoFlops(nn.Module):
        uses_query = False
        uses_multilevel = False
        out_width = 64

        def __init__(self, *args):
            super().__init__()

        def forward(self, patches, multilevel=None, query=None):
            return patches

    register_compressor("no_flops")(NoFlops)
    try:
        with pytest.raises(TypeError, match=r"no_flops.*`flops\(\)`"):
            build_connector("no_flops", "linear", visual_tokens=4, **DIMS)
        NoFlops.flops = lambda self: 0.0
        NoFlops.uses_query = "yes"  # not a bool
        with pytest.raises(TypeError, match="`uses_query` must be a bool"):
            build_connector("no_flops", "linear", visual_tokens=4, **DIMS)
        NoFlops.uses_query = False
        assert build_connector("no_flops", "linear", visual_tokens=4, **DIMS).name == "no_flops-linear"
    finally:
        COMPRESSORS.pop("no_flops")


class TinyVLM(nn.Module):
    """The three parts a VLM has, as far as checkpoints care."""

    def __init__(self):
        super().__init__()
        self.vision = nn.Linear(2, 2)
        self.connector = build_connector("avgpool", "linear", visual_tokens=4, **DIMS)
        self.llm = nn.Linear(3, 3)


def test_load_weights_takes_the_connector_and_whatever_else_is_stored(tmp_path):
    source, target = TinyVLM(), TinyVLM()
    state = {f"vlm.{k}": v for k, v in source.state_dict().items() if not k.startswith("vision.")}
    torch.save({"state_dict": state}, tmp_path / "a.ckpt")
    assert load_weights(target, tmp_path / "a.ckpt") == ["connector", "llm"]
    assert torch.equal(target.connector.projector.weight, source.connector.projector.weight)
    assert not torch.equal(target.vision.weight, source.vision.weight)  # not stored: left as built
    llm_only = {f"vlm.llm.{k}": v for k, v in source.llm.state_dict().items()}
    torch.save({"state_dict": llm_only}, tmp_path / "b.ckpt")
    with pytest.raises(ValueError, match="no connector weights"):
        load_weights(target, tmp_path / "b.ckpt")
    with pytest.raises(FileNotFoundError, match="init_from="):
        load_weights(target, tmp_path / "missing.ckpt")


def test_checkpoints_from_before_the_connector_rename_still_load(tmp_path):
    source, target = TinyVLM(), TinyVLM()
    old = {f"vlm.projector.mlp.{k}": v for k, v in source.connector.projector.state_dict().items()}
    assert set(upgrade_state_dict(old)) == {"vlm.connector.projector.weight", "vlm.connector.projector.bias"}
    torch.save({"state_dict": old}, tmp_path / "old.ckpt")
    load_weights(target, tmp_path / "old.ckpt")
    assert torch.equal(target.connector.projector.weight, source.connector.projector.weight)


def test_frozen_state_keys_lists_only_frozen_weights_of_the_given_parts():
    vlm = TinyVLM()
    vlm.vision.requires_grad_(False)
    vlm.llm.requires_grad_(False)
    vlm.llm.bias.requires_grad_(True)
    assert frozen_state_keys(vlm, ("vision", "llm")) == {
        "vlm.vision.weight",
        "vlm.vision.bias",
        "vlm.llm.weight",
    }
    assert frozen_state_keys(vlm, ("llm",)) == {"vlm.llm.weight"}


def test_resume_checkpoint_finds_last_ckpt_and_refuses_a_foreign_one(tmp_path):
    assert resume_checkpoint({"resume": "auto"}, tmp_path, "h1") is None
    assert resume_checkpoint({"resume": "never"}, tmp_path, "h1") is None
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    torch.save({"vlmscale_config_hash": "h1"}, last)
    assert resume_checkpoint({"resume": "auto"}, tmp_path, "h1") == str(last)
    with pytest.raises(ValueError, match="resume=never"):
        resume_checkpoint({"resume": "auto"}, tmp_path, "h2")
    with pytest.raises(FileNotFoundError, match="resume=auto"):
        resume_checkpoint({"resume": str(tmp_path / "nope.ckpt")}, tmp_path, "h1")
