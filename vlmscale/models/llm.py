"""LLM wrapper: any HF causal LM, the QueCC query pass, and splicing visual embeddings at ``<image>``.

The prompt holds one ``<image>`` placeholder; it is replaced by the T projected visual embeddings. Position ids
are recomputed from the attention mask (cumulative count of real tokens), so right-padded training batches and
left-padded generation batches place every real token at the position it would have alone.

For QueCC's ``query: prefix`` mode, :func:`split_at_image` lays a batch out as two blocks instead: the tokens
before ``<image>`` (template + question), then the visual slots and the rest. The LLM runs over the first block
once, keeping its KV cache; its last hidden state is the query, and the second block continues from the cache.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

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


@dataclass
class TwoPartInputs:
    """A batch as [prefix block | suffix block], for the forward that continues from the prefix's KV cache.

    The prefix block holds each image row's tokens before ``<image>``, LEFT-padded so that every prefix ends
    at its last column (the query is read there). The suffix block holds the T visual slots (image rows),
    then the rest of the row; a text-only row has an empty prefix and its whole sequence in the suffix.
    Attention mask, positions and labels span both blocks; positions count real tokens only.
    """

    prefix_ids: torch.Tensor  # [B, P]
    suffix_ids: torch.Tensor  # [B, S], pad ids on the visual slots
    visual_slots: torch.Tensor  # [B, S] bool: where the visual embeddings go (T per image row, in order)
    attention_mask: torch.Tensor  # [B, P + S]
    position_ids: torch.Tensor  # [B, P + S]
    labels: torch.Tensor | None  # [B, P + S], IGNORE_INDEX on visual slots and padding
    image_rows: torch.Tensor  # [B] bool: the rows with visual slots

    @property
    def prefix_len(self) -> int:
        return self.prefix_ids.shape[1]


def _pad_block(pieces: list[torch.Tensor], value: int | bool, left: bool) -> torch.Tensor:
    """Stack 1-d tensors into [B, longest], padded with ``value`` on the left or right."""
    width = max(len(p) for p in pieces)
    out = pieces[0].new_full((len(pieces), width), value)
    for i, p in enumerate(pieces):
        if len(p):
            if left:
                out[i, width - len(p) :] = p
            else:
                out[i, : len(p)] = p
    return out


def split_at_image(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    image_rows: torch.Tensor,
    image_token_id: int,
    visual_tokens: int,
    pad_token_id: int,
    labels: torch.Tensor | None = None,
    padding_side: str = "right",
) -> TwoPartInputs:
    """Lay ``input_ids`` (padded on either side) out as :class:`TwoPartInputs`.

    ``padding_side`` pads the suffix block: "right" for training, "left" for generation (every row's last
    column is then a real token). Each image row needs a non-empty prefix: the question goes before the image.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    real_mask = attention_mask.bool()
    labels_in = labels if labels is not None else torch.full_like(input_ids, IGNORE_INDEX)
    prefixes, suffixes, slots, prefix_labels, suffix_labels = [], [], [], [], []
    for row in range(input_ids.shape[0]):
        real = real_mask[row]
        ids, labs = input_ids[row][real], labels_in[row][real]
        if bool(image_rows[row]):
            at = int((ids == image_token_id).nonzero()[0])
            if at == 0:
                raise ValueError(
                    f"row {row} starts with the image: query=prefix reads the question from the tokens before "
                    "<image>; encode the data question-first (question_first=True) or use query=separate"
                )
            visual = ids.new_full((visual_tokens,), pad_token_id)
            prefixes.append(ids[:at])
            prefix_labels.append(labs[:at])
            suffixes.append(torch.cat([visual, ids[at + 1 :]]))
            suffix_labels.append(torch.cat([visual.new_full((visual_tokens,), IGNORE_INDEX), labs[at + 1 :]]))
            slots.append(torch.arange(len(suffixes[-1]), device=ids.device) < visual_tokens)
        else:
            prefixes.append(ids[:0])
            prefix_labels.append(labs[:0])
            suffixes.append(ids)
            suffix_labels.append(labs)
            slots.append(torch.zeros(len(ids), dtype=torch.bool, device=ids.device))
    left = padding_side == "left"
    real = [
        [torch.ones(len(p), dtype=torch.long, device=input_ids.device) for p in block]
        for block in (prefixes, suffixes)
    ]
    mask = torch.cat([_pad_block(real[0], 0, left=True), _pad_block(real[1], 0, left=left)], dim=1)
    new_labels = None
    if labels is not None:
        new_labels = torch.cat(
            [
                _pad_block(prefix_labels, IGNORE_INDEX, left=True),
                _pad_block(suffix_labels, IGNORE_INDEX, left),
            ],
            dim=1,
        )
    return TwoPartInputs(
        prefix_ids=_pad_block(prefixes, pad_token_id, left=True),
        suffix_ids=_pad_block(suffixes, pad_token_id, left=left),
        visual_slots=_pad_block(slots, False, left=left),
        attention_mask=mask.to(attention_mask.dtype),
        position_ids=positions_from_mask(mask),
        labels=new_labels,
        image_rows=image_rows.to(device=input_ids.device, dtype=torch.bool),
    )


class LanguageModel(nn.Module):
    """Holds the HF causal LM as ``.model``."""

    # Answer positions per LM-head chunk in :meth:`loss`: 1024 x 151936 fp32 logits are 0.6 GB.
    loss_chunk_size: int = 1024

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

    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing on (its layers then drop KV caches while training)."""
        return any(getattr(m, "gradient_checkpointing", False) for m in self.model.modules())

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

    @property
    def decoder(self) -> nn.Module:
        """The base model (no LM head): its ``last_hidden_state`` is the final, normed hidden state."""
        return self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.base_model

    def hidden_states(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Any = None,
    ) -> torch.Tensor:
        """Final hidden states [B, L, D] of ``inputs_embeds``; ``attention_mask`` spans the cached tokens too."""
        kwargs: dict[str, Any] = {"use_cache": cache is not None}
        if cache is not None:
            kwargs[self._cache_kwarg] = cache
        return self.decoder(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        ).last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.get_output_embeddings()(hidden)

    def loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy over the answer tokens, from final hidden states [B, L, D].

        Position i predicts labels[i + 1] (HF's shift), so only the hidden states whose NEXT label is not
        IGNORE_INDEX reach the LM head: the full [B, L, vocab] logits (5 GB in fp32 for Qwen1.5's 151936-word
        vocabulary at 16 x 511) are never built. Above ``loss_chunk_size`` answer positions the head and the
        cross-entropy run per chunk under activation checkpointing, so backward recomputes one chunk's logits
        at a time instead of keeping them all. Equal to HF's loss over the full logits; a batch without any
        answer token gives 0 (HF: nan).
        """
        targets = labels[:, 1:]
        answer = targets != IGNORE_INDEX
        hidden, targets = hidden[:, :-1][answer], targets[answer]  # [N, D], [N]
        count = targets.numel()
        if count == 0:
            return hidden.sum() * 0.0  # keeps the graph (and DDP's every-parameter bookkeeping) intact
        chunk = self.loss_chunk_size
        recompute = count > chunk and torch.is_grad_enabled() and hidden.requires_grad
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, count, chunk):
            part = (hidden[start : start + chunk], targets[start : start + chunk])
            if recompute:
                total = total + checkpoint(self._summed_cross_entropy, *part, use_reentrant=False)
            else:
                total = total + self._summed_cross_entropy(*part)
        return total / count

    def _summed_cross_entropy(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # The head is called as a module (not its weight directly): ZeRO-3 gathers its weight in its forward.
        logits = self.logits(hidden).float()  # fp32 softmax, as HF's loss upcasts
        return nn.functional.cross_entropy(logits, targets, reduction="sum")

    def query_features(
        self, query_ids: torch.Tensor, query_attention_mask: torch.Tensor | None = None, grad: bool = False
    ) -> torch.Tensor:
        """Final hidden state at the last real token of each question: [B, hidden_size]; no gradient unless
        ``grad``.

        Positions come from the mask, so left- and right-padded batches give the same vectors.
        """
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            return self._query_features(query_ids, query_attention_mask)

    def _query_features(
        self, query_ids: torch.Tensor, query_attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        if query_attention_mask is None:
            query_attention_mask = torch.ones_like(query_ids)
        mask = query_attention_mask.long()
        hidden = self.decoder(
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
