"""LLM wrapper: any HF causal LM, the QueCC query pass, and splicing visual embeddings at ``<image>``.

The prompt holds one ``<image>`` placeholder; it is replaced by the T projected visual embeddings. Position ids
are recomputed from the attention mask (cumulative count of real tokens), so right-padded training batches and
left-padded generation batches place every real token at the position it would have alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vlmscale.contract import IGNORE_INDEX, to_plain

from .dtypes import resolve_dtype


@dataclass
class SplicedInputs:
    inputs_embeds: torch.Tensor  # [B, L', D]
    attention_mask: torch.Tensor  # [B, L']
    position_ids: torch.Tensor  # [B, L']
    labels: torch.Tensor | None  # [B, L'] with IGNORE_INDEX on visual tokens and padding


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over real tokens whatever side the padding is on (padding gets a harmless 0/last value)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class LanguageModel(nn.Module):
    """Holds the HF causal LM as ``.model``."""

    def __init__(self, model: nn.Module, name: str = "") -> None:
        super().__init__()
        self.model = model
        self.name = name
        # transformers renamed past_key_values -> cache; pass whichever this version's forward takes.
        params = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(input_ids)

    def new_cache(self) -> Any:
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.model.config)
        except TypeError:  # older transformers: no config argument
            return DynamicCache()

    def forward(
        self,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        cache: Any = None,
        logits_to_keep: int = 0,
    ) -> Any:
        kwargs: dict[str, Any] = {}
        if logits_to_keep:  # generation needs the last position only: skip the vocab projection elsewhere
            kwargs["logits_to_keep"] = logits_to_keep
        if cache is not None:
            kwargs[self._cache_kwarg] = cache
            kwargs["use_cache"] = True
        else:
            kwargs["use_cache"] = False
        return self.model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            **kwargs,
        )

    @torch.no_grad()
    def query_features(
        self, query_ids: torch.Tensor, query_attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Final hidden state at the last real token of each question: [B, hidden_size], no gradient.

        Positions come from the mask, so left- and right-padded batches give the same vectors.
        """
        if query_attention_mask is None:
            query_attention_mask = torch.ones_like(query_ids)
        mask = query_attention_mask.long()
        base = self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.base_model
        hidden = base(
            input_ids=query_ids, attention_mask=mask, position_ids=positions_from_mask(mask), use_cache=False
        ).last_hidden_state
        index = torch.arange(mask.shape[1], device=mask.device)
        last = (mask * index).argmax(dim=1)  # last position whose mask is 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def splice(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        visual_embeds: torch.Tensor | None,
        image_rows: torch.Tensor | None,
        image_token_id: int,
        labels: torch.Tensor | None = None,
        padding_side: str = "right",
    ) -> SplicedInputs:
        """Replace the ``<image>`` token of each row in ``image_rows`` by that row's T visual embeddings.

        visual_embeds: [R, T, D] for the R rows where ``image_rows`` is True (in order). Other rows keep their
        tokens and are padded by T-1 on ``padding_side`` so the batch stays rectangular. Done with one scatter
        per tensor: every token's new column is its old one shifted by T-1 when it sits after the image.
        """
        batch, length = input_ids.shape
        text = self.embed(input_ids)
        dtype = text.dtype
        if visual_embeds is None or image_rows is None or not bool(image_rows.any()):
            return SplicedInputs(text, attention_mask, positions_from_mask(attention_mask), labels)
        device = input_ids.device
        tokens = visual_embeds.shape[1]
        extra = tokens - 1
        is_image = input_ids == image_token_id
        rows = image_rows.to(device=device, dtype=torch.bool)
        image_pos = is_image.int().argmax(dim=1)  # the placeholder's column (meaningful where rows is True)
        columns = torch.arange(length, device=device)
        after = rows[:, None] & (columns[None, :] > image_pos[:, None])
        # Left padding: rows without an image get their T-1 extra pads in front, so prompts stay right-aligned.
        shift = (~rows).long() * extra if padding_side == "left" else torch.zeros_like(image_pos)
        new_col = columns[None, :] + extra * after.long() + shift[:, None]
        keep = ~(rows[:, None] & is_image)
        row_idx = torch.arange(batch, device=device)[:, None].expand(batch, length)
        r, c = row_idx[keep], new_col[keep]

        new_len = length + extra
        embeds = text.new_zeros(batch, new_len, text.shape[-1])
        embeds = embeds.index_put((r, c), text[keep])
        mask = attention_mask.new_zeros(batch, new_len).index_put((r, c), attention_mask[keep])
        vis_rows = torch.nonzero(rows).squeeze(1)
        vis_cols = image_pos[vis_rows, None] + torch.arange(tokens, device=device)[None, :]
        embeds = embeds.index_put((vis_rows[:, None].expand_as(vis_cols), vis_cols), visual_embeds.to(dtype))
        mask = mask.index_put((vis_rows[:, None].expand_as(vis_cols), vis_cols), mask.new_ones(()))
        new_labels = None
        if labels is not None:
            new_labels = labels.new_full((batch, new_len), IGNORE_INDEX).index_put((r, c), labels[keep])
        return SplicedInputs(embeds, mask, positions_from_mask(mask), new_labels)


def build_llm(
    name: str,
    pretrained: str | None = None,
    config: Mapping[str, Any] | None = None,
    dtype: str | None = "float32",
    attn_implementation: str | None = "sdpa",
) -> LanguageModel:
    """Build from an HF name/local path (``pretrained``) or a config dict with a ``model_type`` (e.g. qwen2)."""
    import transformers

    torch_dtype = resolve_dtype(dtype)
    if pretrained is not None:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            pretrained, dtype=torch_dtype, attn_implementation=attn_implementation
        )
    elif config is not None:
        cfg = dict(to_plain(config))
        model_type = cfg.pop("model_type", "qwen2")
        hf_config = transformers.AutoConfig.for_model(model_type, **cfg)
        model = transformers.AutoModelForCausalLM.from_config(
            hf_config, dtype=torch_dtype, attn_implementation=attn_implementation
        )
    else:
        raise ValueError("LLM needs either `pretrained` (HF name or path) or `config`")
    return LanguageModel(model, name=name)
