"""A textbook single-run transformer and training loop with torch.optim.AdamW.

Written independently of the cohort engine on purpose: it is the oracle the engine
is tested against (same weights in, same curves out) and the baseline of
`grokterm bench`. Only the initial weights are shared, so both start equal."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from grokterm.config import RunConfig
from grokterm.experiment.model import init_params, layout, unpack
from grokterm.experiment.tasks import MEM, Minibatches, make_data


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int, layernorm: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(d) if layernorm else nn.Identity()
        self.ln2 = nn.LayerNorm(d) if layernorm else nn.Identity()
        dh = d // n_heads
        self.q = nn.Parameter(torch.empty(n_heads, d, dh))
        self.k = nn.Parameter(torch.empty(n_heads, d, dh))
        self.v = nn.Parameter(torch.empty(n_heads, d, dh))
        self.o = nn.Parameter(torch.empty(n_heads, dh, d))
        self.w_in = nn.Parameter(torch.empty(d, 4 * d))
        self.b_in = nn.Parameter(torch.empty(4 * d))
        self.w_out = nn.Parameter(torch.empty(4 * d, d))
        self.b_out = nn.Parameter(torch.empty(d))

    def forward(self, x: torch.Tensor, ffn_mask: torch.Tensor | None) -> torch.Tensor:
        q = torch.einsum("ntd,hde->nhte", x, self.q)
        k = torch.einsum("ntd,hde->nhte", x, self.k)
        v = torch.einsum("ntd,hde->nhte", x, self.v)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        t = x.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        z = scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v
        x = self.ln1(x + torch.einsum("nhte,hed->ntd", z, self.o))
        hidden = F.relu(x @ self.w_in + self.b_in)
        if ffn_mask is not None:
            hidden = hidden * ffn_mask[:, None, :]
        return self.ln2(x + hidden @ self.w_out + self.b_out)


class Transformer(nn.Module):
    def __init__(self, cfg: RunConfig):
        super().__init__()
        lay = layout(cfg)
        self.split_ffn = cfg.split_ffn
        self.embed = nn.Parameter(torch.empty(lay.vocab, cfg.d))
        self.pos = nn.Parameter(torch.empty(lay.seq_len, cfg.d))
        self.blocks = nn.ModuleList(
            Block(cfg.d, cfg.n_heads, cfg.layernorm) for _ in range(cfg.n_layers)
        )
        self.unembed = nn.Parameter(torch.empty(cfg.d, cfg.p))
        # Start from the engine's initial weights (same seed, same values).
        views = unpack(init_params(cfg)[None], lay)
        with torch.no_grad():
            for name, param in self.named_parameters():
                param.copy_(views[_flat_name(name)][0])

    def forward(self, x: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        mask = None
        if self.split_ffn:
            d_mlp = self.blocks[0].b_in.shape[0]
            second = torch.arange(d_mlp, device=x.device) >= d_mlp // 2
            mask = ((group[:, None] == MEM) == second).to(self.embed.dtype)
        h = self.embed[x] + self.pos
        for block in self.blocks:
            h = block(h, mask)
        return h[:, -1] @ self.unembed


def _flat_name(name: str) -> str:
    """blocks.0.q -> l0.q; blocks.0.ln1.weight -> l0.g_ln1 (the engine's layout)."""
    name = name.replace("blocks.", "l")
    for ln in ("ln1", "ln2"):
        name = name.replace(f"{ln}.weight", f"g_{ln}").replace(f"{ln}.bias", f"b_{ln}")
    return name


class ReferenceRun:
    """One run trained alone: torch.optim.AdamW with Nanda's warm-up,
    lr * min(step / warmup, 1), on the whole training set or on the run's minibatches."""

    def __init__(self, cfg: RunConfig, dtype: torch.dtype = torch.float32, device: str = "cpu"):
        self.cfg, self.device = cfg, device
        self.data = make_data(cfg)
        self.model = Transformer(cfg).to(device=device, dtype=dtype)
        self.opt = torch.optim.AdamW(
            self.model.parameters(),
            lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(cfg.beta1, cfg.beta2),
        )  # fmt: skip
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(s / cfg.warmup, 1.0) if cfg.warmup else 1.0
        )
        train = self.data.train
        self.x, self.y, self.g = (t.to(device) for t in (train.x, train.y, train.group))
        self.minibatches = Minibatches(cfg, len(self.y)) if cfg.batch_size else None
        self.step = 0

    def update(self) -> None:
        x, y, g = self.x, self.y, self.g
        if self.minibatches is not None:
            idx = self.minibatches.at(self.step).to(self.device)
            x, y, g = x[idx], y[idx], g[idx]
        loss = F.cross_entropy(self.model(x, g), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.step += 1

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        out = {}
        for name, split in (("train", self.data.train), ("val", self.data.val)):
            if split is None:
                continue
            x, y, g = (t.to(self.device) for t in (split.x, split.y, split.group))
            logits = self.model(x, g)
            correct = (logits.argmax(-1) == y).double()
            out[f"{name}_loss"] = F.cross_entropy(logits, y).item()
            out[f"{name}_acc"] = correct.mean().item()
            if name == "train" and g.max() == MEM:
                out["train_add_acc"] = correct[g != MEM].mean().item()
                out["train_mem_acc"] = correct[g == MEM].mean().item()
        params = self.model.parameters()
        out["norm"] = torch.sqrt(sum((p.double() ** 2).sum() for p in params)).item()
        return out


def train_reference(
    cfg: RunConfig,
    on_eval: Callable[[int, dict[str, float]], None],
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> None:
    """Train one run for its whole budget, reporting metrics every eval_every steps."""
    run = ReferenceRun(cfg, dtype, device)
    for step in range(cfg.steps + 1):
        if step % cfg.eval_every == 0 or step == cfg.steps:
            on_eval(step, run.evaluate())
        if step < cfg.steps:
            run.update()
