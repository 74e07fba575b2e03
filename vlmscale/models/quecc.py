"""QueCC: query-based convolutional cross-attention token compression (arXiv 2411.03312, section 4).

The patch grid (G x G) is compressed to T = (G/k)^2 tokens with kernel = stride = k:

1. the user's question, summarised by the LLM's last hidden state, is projected to the vision width and added to
   every selected-layer patch feature;
2. a query MLP maps those, and a depthwise conv with kernel = stride = k pools each k x k window into one query;
3. keys and values are MLP projections of the multi-level features (several encoder layers concatenated);
4. each query attends only to the k*k patches of its own window (local cross-attention).

All windows go through one batched ``scaled_dot_product_attention`` call (windows folded into the batch axis);
the key/value in-projections are applied on the query side (see ``LocalCrossAttention``), so attention costs
O(T) projections rather than O(G^2) and the module's cost beyond the key/value MLPs shrinks with T.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Where QueCC's question vector comes from: a second LLM pass over the bare question (the paper), or the last
# question token of the prompt itself, the question placed before the image and run once as a cached prefix.
QUERY_MODES = ("separate", "prefix")


def check_query_mode(query: str) -> str:
    if query not in QUERY_MODES:
        raise ValueError(f"compressor option query={query!r}: use one of {QUERY_MODES}")
    return query


def valid_token_counts(grid: int) -> list[int]:
    """Every T a G x G grid can be compressed to with kernel = stride = k, k dividing G."""
    return sorted((grid // k) ** 2 for k in range(1, grid + 1) if grid % k == 0)


def kernel_for_tokens(grid: int, visual_tokens: int) -> int:
    """The window side k giving ``visual_tokens`` = (grid / k)^2, or a ValueError listing the valid T."""
    side = math.isqrt(int(visual_tokens)) if visual_tokens > 0 else 0
    if side * side != visual_tokens or side == 0 or grid % side:
        raise ValueError(
            f"visual_tokens={visual_tokens} does not tile a {grid}x{grid} patch grid; "
            f"valid values are {valid_token_counts(grid)}"
        )
    return grid // side


def feature_mlp(in_width: int, out_width: int, eps: float = 1e-6) -> nn.Sequential:
    """Linear -> GELU -> Linear -> LayerNorm, the block QueCC uses for queries, keys and values."""
    return nn.Sequential(
        nn.Linear(in_width, out_width),
        nn.GELU(),
        nn.Linear(out_width, out_width),
        nn.LayerNorm(out_width, eps=eps),
    )


def split_windows(x: torch.Tensor, grid: int, kernel: int) -> torch.Tensor:
    """[B, G*G, C] in row-major grid order -> [B * (G/k)^2, 1, k*k, C]: one batch row per k x k window."""
    batch, _, width = x.shape
    side = grid // kernel
    x = x.view(batch, side, kernel, side, kernel, width).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch * side * side, 1, kernel * kernel, width)


class LocalCrossAttention(nn.Module):
    """Multi-head attention of one query per window to that window's k*k keys/values.

    Same maths and parameters (q/k/v in-projections, output projection) as ``nn.MultiheadAttention`` applied to
    a batch of (batch x windows) sequences with one query each, but the key and value in-projections are moved
    to the query side, where there are T vectors instead of G*G:

    - scores: q_h . (W_k,h y + b_k,h) = (W_k,h^T q_h) . y + q_h . b_k,h, and the second term is the same for
      every key of a query, so the softmax ignores it;
    - values: sum_j a_j (W_v,h y_j + b_v,h) = W_v,h (sum_j a_j y_j) + b_v,h, as the weights a_j sum to one.

    That saves 2 * (G*G - T) * C^2 multiply-adds per image. All heads then attend to the same raw keys, so the
    heads go on the query axis and every window is one row of a single batched SDPA call.
    """

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(width, width)
        # A key bias adds the same score to every key of a query: softmax ignores it (its gradient is zero in
        # nn.MultiheadAttention too), so there is none here; an unused parameter would trip DDP.
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, grid: int, kernel: int
    ) -> torch.Tensor:
        """queries [B, (G/k)^2, C] (row-major windows); keys, values [B, G*G, C] -> [B, (G/k)^2, C]."""
        batch, windows, width = queries.shape
        heads, head_dim = self.num_heads, width // self.num_heads
        if kernel == 1:
            return self._one_key_per_query(queries, keys, values)
        q = self.q_proj(queries).view(batch, windows, heads, head_dim)
        q = torch.einsum("bthd,hdc->bthc", q, self.k_proj.weight.view(heads, head_dim, width))
        mixed = F.scaled_dot_product_attention(
            q.reshape(batch * windows, 1, heads, width),  # one query row per head
            split_windows(keys, grid, kernel),
            split_windows(values, grid, kernel),
            scale=head_dim**-0.5,
        )  # [B * windows, 1, heads, C]: per head, the attention-weighted mean of the raw values
        out = torch.einsum(
            "nhc,hdc->nhd",
            mixed.view(batch * windows, heads, width),
            self.v_proj.weight.view(heads, head_dim, width),
        )
        return self.out_proj(out.reshape(batch, windows, width) + self.v_proj.bias)

    def _one_key_per_query(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """k = 1 (T = G*G): moving projections to the query side saves nothing, so project keys/values as usual.

        With one key per window the softmax weight is exactly 1; the scores are still computed so the graph (and
        the parameters' zero gradients) match every other T.
        """
        batch, windows, width = queries.shape
        heads, head_dim = self.num_heads, width // self.num_heads

        def per_window(x: torch.Tensor) -> torch.Tensor:  # [B, N, C] -> [B*N, heads, 1, head_dim]
            return x.reshape(batch * windows, 1, heads, head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            per_window(self.q_proj(queries)), per_window(self.k_proj(keys)), per_window(self.v_proj(values))
        )
        return self.out_proj(out.reshape(batch, windows, width))


class QueCC(nn.Module):
    """Query-conditioned compressor: patches [B, G*G, C] (+ multi-level, + query) -> [B, T, C]."""

    uses_query: bool = True
    uses_multilevel: bool = True

    def __init__(
        self,
        vision_width: int,
        multilevel_width: int,
        query_width: int,
        grid: int,
        visual_tokens: int,
        num_heads: int = 8,
        use_query: bool = True,
        eps: float = 1e-6,
        query: str = "separate",
        detach_query: bool = True,
    ) -> None:
        super().__init__()
        self.query_mode = check_query_mode(query)
        self.detach_query = bool(detach_query)  # the paper's no-grad query; False lets the loss reach it
        if multilevel_width <= 0:
            raise ValueError("QueCC needs multi-level features: set the vision tower's multilevel_layers")
        self.vision_width = vision_width
        self.multilevel_width = multilevel_width
        self.query_width = query_width
        self.grid = grid
        self.visual_tokens = visual_tokens
        self.kernel = kernel_for_tokens(grid, visual_tokens)
        self.uses_query = use_query
        # The question vector lives in the LLM's width; a Linear + LayerNorm brings it to the vision width.
        self.query_proj = (
            nn.Sequential(nn.Linear(query_width, vision_width), nn.LayerNorm(vision_width, eps=eps))
            if use_query
            else None
        )
        self.q_mlp = feature_mlp(vision_width, vision_width, eps)
        self.k_mlp = feature_mlp(multilevel_width, vision_width, eps)
        self.v_mlp = feature_mlp(multilevel_width, vision_width, eps)
        # Depthwise (groups = channels) conv: each channel pools its own k x k window into one query.
        self.downsample = nn.Conv2d(
            vision_width, vision_width, self.kernel, stride=self.kernel, groups=vision_width
        )
        self.attn = LocalCrossAttention(vision_width, num_heads)

    @property
    def out_width(self) -> int:
        return self.vision_width

    def _check(
        self, patches: torch.Tensor, multilevel: torch.Tensor | None, query: torch.Tensor | None
    ) -> None:
        n = self.grid * self.grid
        if patches.dim() != 3 or patches.shape[1:] != (n, self.vision_width):
            raise ValueError(
                f"QueCC expects patches [B, {n}, {self.vision_width}], got {list(patches.shape)} "
                "(mismatched widths or grid)"
            )
        if multilevel is None or multilevel.shape[1:] != (n, self.multilevel_width):
            got = None if multilevel is None else list(multilevel.shape)
            raise ValueError(
                f"QueCC expects multi-level features [B, {n}, {self.multilevel_width}], got {got}"
            )
        if self.uses_query:
            if query is None:
                raise ValueError(
                    "QueCC needs the question's query vector (query_ids); use quecc_noquery without"
                )
            if query.shape != (patches.shape[0], self.query_width):
                raise ValueError(
                    f"QueCC expects a query [B, {self.query_width}] (the LLM width), got {list(query.shape)}"
                )

    def forward(
        self, patches: torch.Tensor, multilevel: torch.Tensor | None = None, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        self._check(patches, multilevel, query)
        x = patches
        if self.query_proj is not None:
            x = x + self.query_proj(query.to(x.dtype)).unsqueeze(1)
        batch = x.shape[0]
        q = self.q_mlp(x).transpose(1, 2).reshape(batch, self.vision_width, self.grid, self.grid)
        q = self.downsample(q).flatten(2).transpose(1, 2)  # [B, side*side, C], row-major windows
        keys, values = self.k_mlp(multilevel), self.v_mlp(multilevel)
        return self.attn(q, keys, values, self.grid, self.kernel)

    def flops(self) -> float:
        """Matmul/conv FLOPs (2 per multiply-add) for one image; norms and activations are not counted."""
        n, t, c, cm = self.grid**2, self.visual_tokens, self.vision_width, self.multilevel_width
        macs = 0
        if self.query_proj is not None:
            macs += self.query_width * c  # one question vector
        macs += n * 2 * c * c  # query MLP over every patch
        macs += n * c  # depthwise conv: each patch feeds one output once per channel
        macs += 2 * n * (cm * c + c * c)  # key and value MLPs over every patch: the same at every T
        macs += 4 * t * c * c  # q, k, v in-projections and the output projection, all on the T queries
        # Scores and weighted sums: each patch meets one query per head, over the full width (k > 1), or over
        # one head's slice (k = 1, where keys/values are projected directly).
        macs += 2 * n * c * (self.attn.num_heads if self.kernel > 1 else 1)
        return 2.0 * macs
