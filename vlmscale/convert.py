"""Checkpoint converters: other formats -> a plain vlmscale checkpoint that `init_from=` and `vlmscale.eval` load.

    python -m vlmscale.convert seed-quecc <reference projector .bin/.pt> <out.ckpt>
    python -m vlmscale.convert deepspeed <run>/checkpoints/last.ckpt <run>/checkpoints/last-fp32.ckpt

``seed-quecc``: a QueCC projector checkpoint of the paper's reference implementation (LLaVA's
``mm_projector.bin`` layout: ``text_projection``, ``q_proj``/``k_proj``/``v_proj`` feature MLPs, the depthwise
``q_downsample`` conv, ``clip_attn`` as one ``nn.MultiheadAttention``, then the two-layer GELU MLP) mapped onto
vlmscale's parameter names (:class:`vlmscale.models.QueCC` and the projector inside a
:class:`vlmscale.models.Connector`).

``deepspeed``: a DeepSpeed (ZeRO-2/3) checkpoint folder, as Lightning writes it, consolidated into one fp32
file (Lightning's ``convert_zero_checkpoint_to_fp32_state_dict``), keeping vlmscale's ``vlm.*`` names.

Both write ``{"state_dict": {"vlm.connector...": tensor, ...}}``: a checkpoint is data, loaded with
``weights_only=True``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

import torch

from vlmscale.errors import MissingFileError, UserError, command

ATTENTION_ANCHOR = "clip_attn.in_proj_weight"
# Reference submodule -> vlmscale's, inside the compressor. The reference's feature MLPs are
# nn.Sequential(Linear, GELU, Linear, LayerNorm) and its text projection nn.Sequential(Linear, LayerNorm), as
# vlmscale's are, so indices inside them carry over; the fused attention in-projection is split below.
COMPRESSOR_NAMES = {
    "text_projection": "query_proj",
    "q_proj": "q_mlp",
    "k_proj": "k_mlp",
    "v_proj": "v_mlp",
    "q_downsample": "downsample",
    "clip_attn.out_proj": "attn.out_proj",
}


def _compressor_state(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        name = key[len(prefix) :]
        if name == "clip_attn.in_proj_weight":
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"compressor.attn.{part}.weight"] = chunk
        elif name == "clip_attn.in_proj_bias":
            # vlmscale's key projection has no bias: it adds q.b_k to every score of a query alike, which the
            # softmax cancels, so dropping it leaves the outputs unchanged.
            q_bias, _, v_bias = value.chunk(3, dim=0)
            out["compressor.attn.q_proj.bias"] = q_bias
            out["compressor.attn.v_proj.bias"] = v_bias
        else:
            stem = next((s for s in COMPRESSOR_NAMES if name == s or name.startswith(s + ".")), None)
            if stem is None:
                unknown.append(key)
                continue
            out[f"compressor.{COMPRESSOR_NAMES[stem]}{name[len(stem) :]}"] = value
    if unknown:
        raise UserError(
            f"unrecognised reference QueCC parameters {unknown[:8]}; expected text_projection, q_proj, k_proj, "
            "v_proj, q_downsample, clip_attn.in_proj_weight/bias and clip_attn.out_proj"
        )
    return out


def _mlp_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The MLP's Linear layers, in order, onto LLaVA's mlp<N>x_gelu layout (Linears at indices 0, 2, 4, ...).

    In the reference the MLP follows QueCC in one nn.Sequential (``mm_projector.0`` is QueCC, then
    ``mm_projector.1`` Linear, ``.2`` GELU, ``.3`` Linear); a container of its own works as well."""
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        container, _, param = key.rpartition(".")
        if param not in ("weight", "bias") or not container:
            raise UserError(f"unrecognised parameter {key!r} next to the reference QueCC (expected the MLP)")
        layers.setdefault(container, {})[param] = value

    def order(container: str) -> tuple:
        head, _, index = container.rpartition(".")
        return (head, int(index)) if index.isdigit() else (container, -1)

    out: dict[str, torch.Tensor] = {}
    for n, container in enumerate(sorted(layers, key=order)):
        for param, value in layers[container].items():
            out[f"projector.{2 * n}.{param}"] = value
    return out


def seed_quecc_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference QueCC projector weights -> a vlmscale ``Connector`` state dict (keys relative to it)."""
    anchors = [k for k in state if k.endswith(ATTENTION_ANCHOR)]
    if len(anchors) != 1:
        raise UserError(
            f"expected one QueCC attention ({ATTENTION_ANCHOR}) in the checkpoint, found {len(anchors)}: "
            "is this a QueCC projector checkpoint of the reference implementation (mm_projector.bin)?"
        )
    prefix = anchors[0][: -len(ATTENTION_ANCHOR)]
    compressor = {k: v for k, v in state.items() if k.startswith(prefix)}
    mlp = {k: v for k, v in state.items() if not k.startswith(prefix)}
    return {**_compressor_state(compressor, prefix), **_mlp_state(mlp)}


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A reference checkpoint: a bare state dict (``mm_projector.bin``) or one under ``state_dict``/``model``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such checkpoint file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged or foreign file: torch and safetensors raise many kinds
        raise UserError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err})") from err
    for key in ("state_dict", "model", "module"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    return dict(state)


def convert_seed_quecc(src: str | Path, dst: str | Path) -> dict[str, torch.Tensor]:
    """Write ``dst`` with QueCC and its MLP under ``vlm.connector.``; returns the connector's state."""
    connector = seed_quecc_state(load_state(src))
    state = {f"vlm.connector.{k}": v.contiguous() for k, v in connector.items()}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "vlmscale_converted_from": str(src)}, dst)
    return connector


def convert_deepspeed(src: str | Path, dst: str | Path) -> Path:
    """Consolidate a Lightning DeepSpeed checkpoint folder into one fp32 ``.ckpt`` file (needs deepspeed)."""
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src} is not a DeepSpeed checkpoint folder; a .ckpt file needs no conversion")
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


@command
def main(argv: list[str]) -> int:
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
        print(f"wrote {args.out}: {len(state)} QueCC + MLP tensors (use init_from={args.out})")
    else:
        convert_deepspeed(args.checkpoint, args.out)
        print(f"wrote {args.out} (evaluate: python -m vlmscale.eval ckpt={args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
