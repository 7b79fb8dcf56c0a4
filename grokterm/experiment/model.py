"""The paper's transformer, written once with a leading run dimension R.

All of a cohort's parameters live in one flat tensor [R, n_params]; `unpack` gives
named views [R, *shape]. One flat buffer keeps the optimizer to a handful of
elementwise ops and makes each run's parameter norm a single reduction.

Architecture (Nanda et al. 2023): token + learned position embeddings, n_layers of
causal attention (n_heads, d_head = d / n_heads, no biases) and a ReLU MLP (d_mlp = 4d),
residual stream, no LayerNorm, logits over p classes read at the last position.
`layernorm` (Davies et al.'s setting, from OpenAI's grokking code): a LayerNorm after each
residual add, x = LN(x + attn(x)), then x = LN(x + mlp(x)), gains 1 and biases 0 at init."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from grokterm.config import RunConfig
from grokterm.experiment.tasks import MEM, STREAM_INIT, generator


@dataclass(frozen=True)
class Layout:
    """Names, shapes and offsets of one run's parameters inside the flat vector."""

    shapes: dict[str, tuple[int, ...]]
    vocab: int
    seq_len: int
    p: int  # classes; also the id of the `=` token that ends every sequence
    split_ffn: bool
    layernorm: bool = False

    @property
    def size(self) -> int:
        return sum(math.prod(s) for s in self.shapes.values())

    @property
    def n_layers(self) -> int:
        return sum(name.endswith(".w_in") for name in self.shapes)


def layout(cfg: RunConfig) -> Layout:
    d, h, dh, v, t = cfg.d, cfg.n_heads, cfg.d_head, cfg.vocab, cfg.seq_len
    shapes: dict[str, tuple[int, ...]] = {"embed": (v, d), "pos": (t, d)}
    for i in range(cfg.n_layers):
        shapes |= {
            f"l{i}.q": (h, d, dh), f"l{i}.k": (h, d, dh), f"l{i}.v": (h, d, dh),
            f"l{i}.o": (h, dh, d),
            f"l{i}.w_in": (d, 4 * d), f"l{i}.b_in": (4 * d,),
            f"l{i}.w_out": (4 * d, d), f"l{i}.b_out": (d,),
        }  # fmt: skip
        if cfg.layernorm:
            shapes |= {f"l{i}.{g}_ln{j}": (d,) for j in (1, 2) for g in "gb"}
    shapes["unembed"] = (d, cfg.p)
    return Layout(shapes, v, t, cfg.p, cfg.split_ffn, cfg.layernorm)


def init_params(cfg: RunConfig) -> torch.Tensor:
    """One run's initial flat parameters (float32), from its seed alone.
    Nanda init: weights N(0,1)/sqrt(d), unembedding N(0,1)/sqrt(vocab), biases zero;
    LayerNorm gains one (they draw nothing, so the other weights are as without them)."""
    lay = layout(cfg)
    gen = generator(cfg.seed, STREAM_INIT)
    parts = []
    for name, shape in lay.shapes.items():
        if ".g_" in name:
            parts.append(torch.ones(shape))
        elif ".b_" in name:
            parts.append(torch.zeros(shape))
        else:
            scale = math.sqrt(lay.vocab if name == "unembed" else cfg.d)
            parts.append(torch.randn(shape, generator=gen) / scale)
    return torch.cat([x.reshape(-1) for x in parts])


def unpack(flat: torch.Tensor, lay: Layout) -> dict[str, torch.Tensor]:
    """Named views [R, *shape] into the flat parameters [R, n_params]."""
    views, offset = {}, 0
    for name, shape in lay.shapes.items():
        n = math.prod(shape)
        views[name] = flat[:, offset : offset + n].view(flat.shape[0], *shape)
        offset += n
    return views


def forward(
    flat: torch.Tensor, lay: Layout, x: torch.Tensor, group: torch.Tensor, fast: bool = True
) -> torch.Tensor:
    """Logits [R, N, p] at the last position for tokens x [R, N, T]."""
    w = unpack(flat, lay)
    ffn_mask = _ffn_mask(lay, group, w["l0.b_in"]) if lay.split_ffn else None
    if fast and lay.n_layers == 1 and not lay.layernorm:
        resid = _last_position_one_layer(w, lay.p, x, ffn_mask)
    else:
        resid = _full_sequence(w, lay, x, ffn_mask, fast)
    return torch.einsum("rnd,rdp->rnp", resid, w["unembed"])


def _full_sequence(w, lay: Layout, x, ffn_mask, fast: bool = False) -> torch.Tensor:
    """Every position through every layer; `fast`: the last layer's queries and MLP
    only at the last position, the only one that reaches the logits."""
    r = torch.arange(x.shape[0], device=x.device)[:, None, None]
    resid = w["embed"][r, x] + w["pos"][:, None]  # [R, N, T, d]
    t = x.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
    mask = None if ffn_mask is None else ffn_mask[:, :, None]
    for i in range(lay.n_layers):
        last = fast and i == lay.n_layers - 1
        queries = resid[:, :, -1:] if last else resid
        q = torch.einsum("rntd,rhde->rnhte", queries, w[f"l{i}.q"])
        k, v = (torch.einsum("rntd,rhde->rnhte", resid, w[f"l{i}.{m}"]) for m in "kv")
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        attn = scores.masked_fill(~causal[-q.shape[-2] :], float("-inf")).softmax(-1)
        resid = queries + torch.einsum("rnhte,rhed->rntd", attn @ v, w[f"l{i}.o"])
        resid = _norm(w, i, 1, resid) if lay.layernorm else resid
        resid = resid + _mlp(w, i, resid, mask)
        resid = _norm(w, i, 2, resid) if lay.layernorm else resid
    return resid[:, :, -1]


def _norm(w, i: int, j: int, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm of x [R, ..., d] with each run's own gain and bias [R, d]."""
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    gain, bias = w[f"l{i}.g_ln{j}"].view(shape), w[f"l{i}.b_ln{j}"].view(shape)
    return F.layer_norm(x, x.shape[-1:]) * gain + bias


def _last_position_one_layer(w, eq: int, x, ffn_mask) -> torch.Tensor:
    """Only the last position reaches the logits. Its query is a constant per run
    (the last token is always `=`), so attention scores and values are tables over
    (position, token) built once per step and gathered per example."""
    n_runs, _, t = x.shape
    v = w["embed"].shape[1]
    table = w["embed"][:, None] + w["pos"][:, :, None]  # [R, T, V, d]: (position, token)
    q = torch.einsum("rd,rhde->rhe", table[:, -1, eq], w["l0.q"])
    k = torch.einsum("rtvd,rhde->rtvhe", table, w["l0.k"])
    scores = torch.einsum("rtvhe,rhe->rtvh", k, q) / math.sqrt(q.shape[-1])
    values = torch.einsum("rtvd,rhde->rtvhe", table, w["l0.v"])
    # row of (run, position, token) in the flattened tables; index_select has a far
    # cheaper backward on CPU than advanced indexing
    offset = torch.arange(n_runs, device=x.device)[:, None, None] * t + torch.arange(
        t, device=x.device
    )
    idx = (offset * v + x).flatten()  # [R * N * T]
    shape = (*x.shape, -1)
    attn = scores.flatten(0, 2).index_select(0, idx).view(shape).softmax(2)  # [R, N, T, H]
    picked = values.flatten(0, 2).index_select(0, idx).view(*x.shape, *values.shape[-2:])
    # a multiply and a sum over the T = 3 positions: bit-identical to the einsum, which
    # becomes R * N * H tiny matrix products, and 1.1x faster a step on the CPU
    if torch.compiler.is_compiling():  # inductor hands the einsum to the BLAS: 1.1x faster
        z = torch.einsum("rnth,rnthe->rnhe", attn, picked)
    else:  # eagerly the einsum is R * N * H tiny matrix products; this is bit-identical
        z = (attn[..., None] * picked).sum(2)  # to it and 1.1x faster a step on the CPU
    resid = table[:, -1, eq][:, None] + torch.einsum("rnhe,rhed->rnd", z, w["l0.o"])
    return resid + _mlp(w, 0, resid, ffn_mask)


def _mlp(w, i: int, resid: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    hidden = F.relu(_linear(resid, w[f"l{i}.w_in"], w[f"l{i}.b_in"]))
    if mask is not None:
        hidden = hidden * mask
    return _linear(hidden, w[f"l{i}.w_out"], w[f"l{i}.b_out"])


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x [R, ..., a] @ weight [R, a, b] + bias [R, b], one batched matmul over runs."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    out = torch.baddbmm(bias[:, None], flat, weight)
    return out.view(*x.shape[:-1], weight.shape[-1])


def _ffn_mask(lay: Layout, group: torch.Tensor, b_in: torch.Tensor) -> torch.Tensor:
    """Split FFN: addition examples use the first half of the MLP units, memorization
    examples the second. Returns [R, N, d_mlp] of 0/1 in the parameters' dtype."""
    d_mlp = b_in.shape[-1]
    second_half = torch.arange(d_mlp, device=group.device) >= d_mlp // 2
    return ((group[..., None] == MEM) == second_half).to(b_in.dtype)
