"""VisionLanguageModel: vision tower -> connector (optional compressor + projector) -> LLM, LLaVA-style.

``forward`` returns the LM loss over answer tokens; ``generate`` decodes greedily with a KV cache from
left-padded prompts. Rows without an image (``has_image`` False, or no ``<image>`` token) get no visual tokens.
Both take the images as ``pixel_values`` (the tower runs) or as ``features``, the frozen tower's output computed
beforehand (a feature cache, :mod:`vlmscale.features`): then the tower is skipped.

QueCC's question vector comes from one of two places (the compressor's ``query`` option):

* ``separate`` (the paper): a second LLM pass over the bare question, then one forward over the prompt;
* ``prefix``: the prompt puts the question before ``<image>``; the LLM runs once over that prefix, keeping its
  KV cache, the last prefix token's final hidden state is the query, and the visual tokens plus the rest of
  the prompt continue from the cache (:func:`~vlmscale.models.llm.split_at_image`). No token is run twice.
  Query-free compressors need no split: for them ``prefix`` only reorders the prompt (done by the data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import flops
from ..contract import IMAGE_TOKEN
from .connector import Connector, build_connector
from .llm import LanguageModel, TwoPartInputs, build_llm, split_at_image
from .vision import VisionFeatures, VisionTower, build_vision_tower


@dataclass
class VLMOutput:
    loss: torch.Tensor | None  # mean cross-entropy over the answer tokens (LanguageModel.loss)
    logits: torch.Tensor | None  # [B, L', vocab] over the spliced sequence; only when asked (return_logits)
    labels: torch.Tensor | None  # [B, L'] aligned with logits (visual tokens and padding are -100)
    attention_mask: torch.Tensor  # [B, L']


class VisionLanguageModel(nn.Module):
    def __init__(
        self,
        vision: VisionTower,
        connector: Connector,
        llm: LanguageModel,
        image_token_id: int,
        pad_token_id: int,
        eos_token_id: int | None = None,
    ) -> None:
        super().__init__()
        self.vision = vision
        self.connector = connector
        self.llm = llm
        self.image_token_id = int(image_token_id)
        self.pad_token_id = int(pad_token_id)
        self.eos_token_id = None if eos_token_id is None else int(eos_token_id)

    @property
    def visual_tokens(self) -> int:
        return self.connector.visual_tokens

    @property
    def query_mode(self) -> str:
        """``separate`` or ``prefix`` (the compressor's ``query`` option; no compressor: ``separate``)."""
        return getattr(self.connector.compressor, "query_mode", "separate")

    @property
    def question_first(self) -> bool:
        """Whether prompts put the question before the image (what the data must encode for this model)."""
        return self.query_mode == "prefix"

    @property
    def detach_query(self) -> bool:
        return bool(getattr(self.connector.compressor, "detach_query", True))

    @property
    def _cached_prefix(self) -> bool:
        """The two-part forward: prefix mode and a compressor that reads the query."""
        return self.query_mode == "prefix" and self.connector.needs_query

    def image_rows(self, input_ids: torch.Tensor, has_image: torch.Tensor | None) -> torch.Tensor:
        """Rows that get visual tokens: flagged as having an image and holding exactly one ``<image>``."""
        count = (input_ids == self.image_token_id).sum(dim=1)
        if bool((count > 1).any()):
            raise ValueError(
                f"each row may hold at most one {IMAGE_TOKEN} token, got counts {count.tolist()}"
            )
        rows = count == 1
        if has_image is not None:
            rows = rows & has_image.to(device=rows.device, dtype=torch.bool)
        return rows

    def _rows_with_pixels(
        self,
        input_ids: torch.Tensor,
        has_image: torch.Tensor | None,
        pixel_values: torch.Tensor | None,
        features: VisionFeatures | None = None,
    ) -> torch.Tensor:
        """:meth:`image_rows`, refusing rows with an image but no ``pixel_values`` (or ``features``) for it."""
        rows = self.image_rows(input_ids, has_image)
        if pixel_values is None and features is None and bool(rows.any()):
            raise ValueError(
                f"{int(rows.sum())} row(s) hold the <image> token but no pixel_values were given: pass the images, "
                "or has_image=False for text-only rows (their <image> is then an ordinary token)"
            )
        return rows

    def vision_features(
        self, pixel_values: torch.Tensor | None, features: VisionFeatures | None = None
    ) -> VisionFeatures:
        """The tower's output for these images: ``features`` when given (computed beforehand), else the tower
        runs on ``pixel_values``."""
        if features is None:
            return self.vision(pixel_values, multilevel=self.connector.needs_multilevel)
        if self.connector.needs_multilevel and features.multilevel is None:
            raise ValueError(
                f"connector {self.connector.name!r} reads the multi-level features, but the precomputed "
                "features hold only the selected layer"
            )
        return features

    def encode_images(
        self,
        pixel_values: torch.Tensor | None,
        query_ids: torch.Tensor | None = None,
        query_attention_mask: torch.Tensor | None = None,
        features: VisionFeatures | None = None,
    ) -> torch.Tensor:
        """Images (+ their questions, for QueCC) -> [B, T, llm_width] visual embeddings."""
        features = self.vision_features(pixel_values, features)
        query = None
        if self.connector.needs_query:
            if query_ids is None:
                raise ValueError(f"connector {self.connector.name!r} needs query_ids (the question text)")
            query = self.llm.query_features(query_ids, query_attention_mask, grad=not self.detach_query)
        return self.connector(features, query).to(self.llm.dtype)

    def _splice(
        self,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None,
        query_ids: torch.Tensor | None,
        query_attention_mask: torch.Tensor | None,
        has_image: torch.Tensor | None,
        padding_side: str,
        features: VisionFeatures | None = None,
    ):
        rows = self._rows_with_pixels(input_ids, has_image, pixel_values, features)
        visual = None
        if (pixel_values is not None or features is not None) and bool(rows.any()):
            # Only rows with an image go through the tower, compressor and query pass.
            q_ids = query_ids[rows] if query_ids is not None else None
            q_mask = query_attention_mask[rows] if query_attention_mask is not None else None
            pixels, row_features = _image_rows(pixel_values, features, rows)
            visual = self.encode_images(pixels, q_ids, q_mask, features=row_features)
        return self.llm.splice(
            input_ids, attention_mask, visual, rows, self.image_token_id, labels, padding_side=padding_side
        )

    def forward(
        self,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        query_ids: torch.Tensor | None = None,
        query_attention_mask: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        features: VisionFeatures | None = None,
        return_logits: bool | None = None,
    ) -> VLMOutput:
        """The loss over answer tokens (with ``labels``); the full logits only with ``return_logits=True``
        (default: only when there are no labels), since training never needs the [B, L', vocab] tensor."""
        if return_logits is None:
            return_logits = labels is None
        if self._cached_prefix:
            return self._two_part_forward(
                pixel_values, input_ids, attention_mask, labels, has_image, return_logits, features
            )
        spliced = self._splice(
            pixel_values,
            input_ids,
            attention_mask,
            labels,
            query_ids,
            query_attention_mask,
            has_image,
            "right",
            features,
        )
        hidden = self.llm.hidden_states(spliced.inputs_embeds, spliced.attention_mask, spliced.position_ids)
        return self._output(hidden, spliced.labels, spliced.attention_mask, return_logits)

    def _output(
        self, hidden: torch.Tensor, labels: torch.Tensor | None, mask: torch.Tensor, return_logits: bool
    ) -> VLMOutput:
        """Loss at the answer positions only (both query modes), logits when asked."""
        loss = None if labels is None else self.llm.loss(hidden, labels)
        logits = self.llm.logits(hidden) if return_logits else None
        return VLMOutput(loss, logits, labels, mask)

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor | None,
        prompt_ids: torch.Tensor,
        prompt_attention_mask: torch.Tensor,
        query_ids: torch.Tensor | None = None,
        query_attention_mask: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        max_new_tokens: int = 16,
        features: VisionFeatures | None = None,
    ) -> torch.Tensor:
        """Greedy decoding with a KV cache. Prompts must be LEFT-padded. Returns [B, n <= max_new_tokens]:
        the new tokens, the eos included, ``pad_token_id`` after a row has finished."""
        if bool((prompt_attention_mask[:, -1] == 0).any()):
            raise ValueError(
                "generate needs LEFT-padded prompts (every row's last column must be a real token)"
            )
        cache = self.llm.new_cache()
        if self._cached_prefix:
            parts = self._split(
                pixel_values, prompt_ids, prompt_attention_mask, None, has_image, "left", features
            )
            hidden = self._two_part_hidden(pixel_values, parts, cache, features)
            last_logits = self.llm.logits(hidden[:, -1:])
            mask, positions = parts.attention_mask, parts.position_ids
        else:
            spliced = self._splice(
                pixel_values,
                prompt_ids,
                prompt_attention_mask,
                None,
                query_ids,
                query_attention_mask,
                has_image,
                "left",
                features,
            )
            mask, positions = spliced.attention_mask, spliced.position_ids
            last_logits = self.llm(
                inputs_embeds=spliced.inputs_embeds,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                logits_to_keep=1,
            ).logits
        batch = prompt_ids.shape[0]
        finished = torch.zeros(batch, dtype=torch.bool, device=prompt_ids.device)
        next_pos = positions[:, -1:] + 1
        generated: list[torch.Tensor] = []
        for step in range(max_new_tokens):
            token = last_logits[:, -1].argmax(dim=-1)
            token = torch.where(finished, torch.full_like(token, self.pad_token_id), token)
            generated.append(token)
            if self.eos_token_id is not None:
                finished |= token == self.eos_token_id
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
            last_logits = self.llm(
                input_ids=token[:, None], attention_mask=mask, position_ids=next_pos, cache=cache
            ).logits
            next_pos = next_pos + 1
        if not generated:
            return prompt_ids.new_zeros(batch, 0)
        return torch.stack(generated, dim=1)

    # -- query: prefix -----------------------------------------------------------------------------------

    def _split(
        self,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None,
        has_image: torch.Tensor | None,
        padding_side: str,
        features: VisionFeatures | None = None,
    ) -> TwoPartInputs:
        rows = self._rows_with_pixels(input_ids, has_image, pixel_values, features)
        return split_at_image(
            input_ids,
            attention_mask,
            rows,
            self.image_token_id,
            self.visual_tokens,
            self.pad_token_id,
            labels,
            padding_side,
        )

    def _two_part_hidden(
        self,
        pixel_values: torch.Tensor | None,
        parts: TwoPartInputs,
        cache: Any = None,
        features: VisionFeatures | None = None,
    ) -> torch.Tensor:
        """Final hidden states [B, P + S] of a two-part batch; ``cache`` (if given) ends up holding all of it.

        Part 1 runs the prefix block and reads the query at its last column; part 2 continues from the cache.
        Gradient checkpointing drops caches in training, so there part 2 re-runs the prefix (same result).
        """
        rows = parts.image_rows
        length, mask, positions = parts.prefix_len, parts.attention_mask, parts.position_ids
        prefix_embeds = self.llm.embed(parts.prefix_ids)
        suffix_embeds = self.llm.embed(parts.suffix_ids)
        if not bool(rows.any()):  # no image: nothing to compress, one plain pass
            embeds = torch.cat([prefix_embeds, suffix_embeds], dim=1)
            return self.llm.hidden_states(embeds, mask, positions, cache)
        if cache is None and not (self.llm.checkpointing and self.training and torch.is_grad_enabled()):
            cache = self.llm.new_cache()
        prefix = self.llm.hidden_states(prefix_embeds, mask[:, :length], positions[:, :length], cache)
        query = prefix[rows, -1]
        if self.detach_query:
            query = query.detach()
        row_features = self.vision_features(*_image_rows(pixel_values, features, rows))
        visual = self.connector(row_features, query).to(suffix_embeds.dtype)
        suffix_embeds = suffix_embeds.masked_scatter(parts.visual_slots[..., None], visual)
        if cache is None:
            embeds = torch.cat([prefix_embeds, suffix_embeds], dim=1)
            return self.llm.hidden_states(embeds, mask, positions)
        suffix = self.llm.hidden_states(suffix_embeds, mask, positions[:, length:], cache)
        return torch.cat([prefix, suffix], dim=1)

    def _two_part_forward(
        self,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None,
        has_image: torch.Tensor | None,
        return_logits: bool,
        features: VisionFeatures | None = None,
    ) -> VLMOutput:
        parts = self._split(pixel_values, input_ids, attention_mask, labels, has_image, "right", features)
        hidden = self._two_part_hidden(pixel_values, parts, features=features)
        return self._output(hidden, parts.labels, parts.attention_mask, return_logits)

    def accounting(self, text_tokens: float, query_tokens: float | None = None) -> dict[str, Any]:
        """N, T, Q and inference FLOPs (the paper's 2N(Q+T) and a fuller count); see :mod:`vlmscale.flops`."""
        return flops.vlm_accounting(self, text_tokens, query_tokens)


def _image_rows(
    pixel_values: torch.Tensor | None, features: VisionFeatures | None, rows: torch.Tensor
) -> tuple[torch.Tensor | None, VisionFeatures | None]:
    """The image rows' pixels, or their precomputed features when given (then the pixels are not needed)."""
    if features is not None:
        return None, features.rows(rows)
    return pixel_values[rows], None


def build_vlm(
    llm: Mapping[str, Any],
    vision: Mapping[str, Any],
    compressor: Mapping[str, Any],
    projector: Mapping[str, Any],
    visual_tokens: int,
    tokenizer: Any,
) -> VisionLanguageModel:
    """Build the parts from their config dicts (YAML keys = builder kwargs) around ``tokenizer``.

    ``compressor`` is ``{"name": ..., "type"?: ..., **options}`` (conf/compressor/; ``type`` is the registered
    class when it differs from the name), ``projector`` is ``{"name": ...}`` (conf/projector/)."""
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if image_token_id is None or image_token_id == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no {IMAGE_TOKEN} token; add it as a special token first")
    if tokenizer.pad_token_id is None:
        raise ValueError("tokenizer has no pad token")
    tower = build_vision_tower(**dict(vision))
    lm = build_llm(**dict(llm))
    # Random-init LLMs take exactly the tokenizer's vocabulary; checkpoints grow only when tokens were added.
    vocab = lm.model.get_input_embeddings().weight.shape[0]
    random_init = dict(llm).get("pretrained") is None
    if len(tokenizer) > vocab or (random_init and len(tokenizer) != vocab):
        # Mean-resizing only helps trained embeddings; random ones are just re-drawn.
        lm.model.resize_token_embeddings(len(tokenizer), mean_resizing=not random_init)
    compressor_options = dict(compressor)
    name = compressor_options.pop("name")
    # `type` picks the registered class when a YAML names a variant of it (quecc_prefix is a quecc).
    registered = compressor_options.pop("type", name)
    connector = build_connector(
        registered,
        dict(projector)["name"],
        **compressor_options,
        visual_tokens=int(visual_tokens),
        vision_width=tower.hidden_size,
        multilevel_width=tower.multilevel_size,
        llm_width=lm.hidden_size,
        grid=tower.grid,
    )
    return VisionLanguageModel(
        tower, connector, lm, image_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id
    )
