"""Checkpoint converters: other formats -> a plain vlmscale checkpoint that `init_from=` and `vlmscale.eval` load.

    python -m vlmscale.convert seed-quecc <reference projector .bin/.pt> <out.ckpt>
    python -m vlmscale.convert deepspeed <run>/checkpoints/last.ckpt <run>/checkpoints/last-fp32.ckpt

``seed-quecc``: a QueCC projector checkpoint of the paper's reference implementation (LLaVA's
``mm_projector.bin`` layout: ``text_projection``, ``q_proj``/``k_proj``/``v_proj`` feature MLPs, the depthwise
``q_downsample`` conv, ``clip_attn`` as one ``nn.MultiheadAttention``, then the two-layer GELU MLP) mapped onto
vlmscale's parameter names (:class:`vlmscale.models.QueCC` inside a :class:`vlmscale.models.Projector`).

``deepspeed``: a DeepSpeed (ZeRO-2/3) checkpoint folder, as Lightning writes it, consolidated into one fp32
file (Lightning's ``convert_zero_checkpoint_to_fp32_state_dict``), keeping vlmscale's ``vlm.*`` names.

Both write ``{"state_dict": {"vlm.projector...": tensor, ...}}``: a checkpoint is data, loaded with
``weights_only=True``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import torch

# Reference name (after its wrapper prefix) -> vlmscale name inside the projector. The reference's MLPs are
# nn.Sequential(Linear, LayerNorm, GELU, Linear) stacks; vlmscale's feature MLPs and LLaVA's mlp2x_gelu keep
# the same module indices, so only the stems are renamed; the fused attention in-projection is split below.
_STEMS = {
    "text_projection": "compressor.query_proj",
    "q_proj": "compressor.q_mlp",
    "k_proj": "compressor.k_mlp",
    "v_proj": "compressor.v_mlp",
    "q_downsample": "compressor.downsample",
    "clip_attn.out_proj": "compressor.attn.out_proj",
}
_MLP_STEMS = ("mlp", "mm_projector", "readout", "projector")
_IN_PROJ = ("q_proj", "k_proj", "v_proj")


def strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the reference's wrapper prefixes (``model.mm_projector.``, ``module.``) so names start at the
    projector's own submodules (``q_proj.0.weight``, ``clip_attn.in_proj_weight``, ...)."""
    anchors = ("text_projection", "q_proj", "k_proj", "v_proj", "q_downsample", "clip_attn", *_MLP_STEMS)
    pattern = re.compile(r"^(?:.*?\.)?((?:" + "|".join(anchors) + r")(?:\.|_|$).*)$")
    out = {}
    for key, value in state.items():
        match = pattern.match(key)
        out[match.group(1) if match else key] = value
    return out


def seed_quecc_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference QueCC projector weights -> vlmscale ``Projector`` state dict (keys relative to the projector).

    ``clip_attn.in_proj_weight/bias`` ([3C, C] / [3C]) split into the q/k/v in-projections; vlmscale's key
    projection has no bias (softmax is invariant to a per-query constant), so the reference's key bias must be
    zero-effect: it is dropped, as it adds the same q.b_k to every score of a query.
    """
    state = strip_prefix(state)
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key == "clip_attn.in_proj_weight":
            for name, part in zip(_IN_PROJ, value.chunk(3, dim=0)):
                out[f"compressor.attn.{name}.weight"] = part
            continue
        if key == "clip_attn.in_proj_bias":
            q_bias, _key_bias, v_bias = value.chunk(3, dim=0)
            out["compressor.attn.q_proj.bias"] = q_bias
            out["compressor.attn.v_proj.bias"] = v_bias
            continue
        stem, _, rest = key.partition(".")
        two_part = ".".join(key.split(".")[:2])
        if two_part in _STEMS:
            out[f"{_STEMS[two_part]}.{key.split('.', 2)[2]}"] = value
        elif stem in _STEMS:
            out[f"{_STEMS[stem]}.{rest}"] = value
        elif stem in _MLP_STEMS:
            out[f"mlp.{rest}"] = value
        elif re.fullmatch(r"\d+\.(weight|bias)", key):  # a bare nn.Sequential MLP saved at the top level
            out[f"mlp.{key}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"unrecognised reference QueCC parameter names {unknown[:8]}; expected text_projection, q_proj, "
            "k_proj, v_proj, q_downsample, clip_attn.in_proj_weight/bias, clip_attn.out_proj and the MLP"
        )
    return out


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A reference checkpoint: a bare state dict (``mm_projector.bin``) or one under ``state_dict``/``model``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    return dict(state)


def convert_seed_quecc(src: str | Path, dst: str | Path) -> dict[str, torch.Tensor]:
    """Write ``dst`` with the projector under ``vlm.projector.``; returns the converted projector state."""
    projector = seed_quecc_state(load_state(src))
    state = {f"vlm.projector.{k}": v.contiguous() for k, v in projector.items()}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "vlmscale_converted_from": str(src)}, dst)
    return projector


def convert_deepspeed(src: str | Path, dst: str | Path) -> Path:
    """Consolidate a Lightning DeepSpeed checkpoint folder into one fp32 ``.ckpt`` file (needs deepspeed)."""
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"{src} is not a DeepSpeed checkpoint folder; a .ckpt file needs no conversion")
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    convert_zero_checkpoint_to_fp32_state_dict(str(src), str(dst))
    # Lightning keeps the client state (loops, callbacks) too; vlmscale reads only the weights.
    checkpoint = torch.load(dst, map_location="cpu", weights_only=False)
    # Trainable weights come back from the fp32 master copy; frozen ones (the tower) from the engine's bf16
    # module: up-cast them too, so the file is uniformly fp32 as its name says.
    state = {
        k: v.float() if v.is_floating_point() else v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("vlm.")
    }
    torch.save({"state_dict": state, "vlmscale_converted_from": str(src)}, dst)
    return Path(dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlmscale.convert", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    seed = commands.add_parser("seed-quecc", help="the paper's reference QueCC projector -> vlmscale names")
    seed.add_argument("checkpoint")
    seed.add_argument("out")
    deep = commands.add_parser("deepspeed", help="a DeepSpeed checkpoint folder -> one fp32 .ckpt")
    deep.add_argument("checkpoint")
    deep.add_argument("out")
    args = parser.parse_args(argv)
    if args.command == "seed-quecc":
        state = convert_seed_quecc(args.checkpoint, args.out)
        print(f"wrote {args.out}: {len(state)} projector tensors (use init_from={args.out})")
    else:
        convert_deepspeed(args.checkpoint, args.out)
        print(f"wrote {args.out} (evaluate: python -m vlmscale.eval ckpt={args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
