"""The generalization circuit measured directly: Fourier progress measures (Nanda et
al. 2023, "Progress measures for grokking via mechanistic interpretability"), for a
whole cohort at once, batched over runs.

The circuit Nanda et al. found in this model on (a + b) mod p embeds each token on a few
key frequencies w of Z_p and computes logits along cos(w (a + b - c)). So:

- `fourier_gini`: the Gini coefficient of the embedding's norm over the frequencies
  1..(p-1)/2 (each frequency's cos and sin components together): near 0 when the norm is
  spread evenly (initialization), near 1 when a few key frequencies carry it.
- key frequencies: the KEY frequencies with the most embedding norm, at each measurement.
- `restricted_loss`: the training loss of the logits kept only along cos(w (a + b)) and
  sin(w (a + b)) of the key frequencies (a projection over all p^2 inputs, per output
  class), plus the mean of what was removed (Nanda's bias correction): low once the
  circuit alone does the task.
- `excluded_loss`: the training loss with those components removed: it rises as the
  model comes to rely on the circuit instead of memorized lookups.

docs/circuits.md says where these follow Nanda et al.'s code and where they differ. Pure
torch: tensors in, tensors out."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KEY = 5  # key frequencies kept (Nanda et al. found 5 in their p = 113 model)
MEASURED_TASKS = ("add", "square")  # single-task runs over all pairs a, b


def frequencies(p: int) -> int:
    """The non-constant frequencies of Z_p with a cos and a sin: 1..(p-1)/2."""
    return (p - 1) // 2


def fourier_basis(p: int, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """[1 + 2F, p]: the constant, then cos and sin of each frequency 1..F, unit norm."""
    x = torch.arange(p, dtype=torch.float64, device=device)
    rows = [torch.ones(p, dtype=torch.float64, device=device)]
    for w in range(1, frequencies(p) + 1):
        rows += [torch.cos(2 * math.pi * w * x / p), torch.sin(2 * math.pi * w * x / p)]
    basis = torch.stack(rows)
    return (basis / basis.norm(dim=1, keepdim=True)).to(dtype)


def frequency_norms(embed: torch.Tensor, p: int) -> torch.Tensor:
    """[R, F]: the norm of each run's embedding of tokens 0..p-1 on each frequency."""
    basis = fourier_basis(p, embed.dtype, embed.device)
    coef = torch.einsum("fp,rpd->rfd", basis, embed[:, :p])  # [R, 1 + 2F, d]
    squares = coef[:, 1:].pow(2).sum(-1).view(embed.shape[0], -1, 2).sum(-1)
    return squares.sqrt()


def gini(x: torch.Tensor) -> torch.Tensor:
    """The Gini coefficient of each row of non-negative x [R, F]: 0 when equal, -> 1
    when one value holds everything."""
    n = x.shape[-1]
    ranked = x.sort(dim=-1).values
    i = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    total = ranked.sum(-1).clamp_min(torch.finfo(x.dtype).tiny)
    return (2 * (i * ranked).sum(-1) / (n * total)) - (n + 1) / n


def key_frequencies(norms: torch.Tensor, k: int = KEY) -> torch.Tensor:
    """[R, k]: each run's k frequencies (1-based) with the most norm, largest first."""
    return norms.topk(min(k, norms.shape[-1]), dim=-1).indices + 1


def sum_directions(p: int, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """[F, 2, p^2]: cos(w (a + b)) and sin(w (a + b)) over the grid of inputs (a, b) in
    row-major order, each of unit norm; mutually orthogonal."""
    a = torch.arange(p, device=device).repeat_interleave(p)
    b = torch.arange(p, device=device).repeat(p)
    s = ((a + b) % p).to(torch.float64)
    w = torch.arange(1, frequencies(p) + 1, dtype=torch.float64, device=device)[:, None]
    angle = 2 * math.pi * w * s / p
    d = torch.stack([torch.cos(angle), torch.sin(angle)], 1)  # [F, 2, p^2]
    return (d / d.norm(dim=-1, keepdim=True)).to(dtype)


def split_logits(
    logits: torch.Tensor, keys: torch.Tensor, directions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Restricted and excluded logits [R, p^2, p] of logits over the whole grid, for
    each run's key frequencies keys [R, K] (1-based): the components along the key
    directions with the mean of the rest added back, and everything but them."""
    dk = directions[keys - 1]  # [R, K, 2, p^2]
    coef = torch.einsum("rnc,rkjn->rkjc", logits, dk)
    kept = torch.einsum("rkjc,rkjn->rnc", coef, dk)
    restricted = kept + (logits - kept).mean(1, keepdim=True)
    return restricted, logits - kept


def masked_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[R]: mean cross-entropy over each run's masked inputs (logits [R, N, p], labels
    [N], mask [R, N] of 0/1 in the logits' dtype)."""
    r, n, p = logits.shape
    ce = F.cross_entropy(logits.reshape(r * n, p), labels.repeat(r), reduction="none")
    return (ce.view(r, n) * mask).sum(1) / mask.sum(1)


def measures(embed: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
             train_mask: torch.Tensor, directions: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
    """Every measure of every run: embed [R, V, d], logits over the grid [R, p^2, p],
    labels [p^2], train_mask [R, p^2]. Values [R]; `key_frequencies` [R, KEY]."""
    p = logits.shape[-1]
    norms = frequency_norms(embed, p)
    keys = key_frequencies(norms)
    restricted, excluded = split_logits(logits, keys, directions)
    return {
        "fourier_gini": gini(norms),
        "restricted_loss": masked_loss(restricted, labels, train_mask),
        "excluded_loss": masked_loss(excluded, labels, train_mask),
        "key_frequencies": keys,
    }


class CircuitProbe:
    """The measures of one cohort's runs: the grid of inputs, labels, each run's
    training pairs and the key directions, built once; `measure` runs the model over
    the grid (in chunks) and returns per-run values."""

    def __init__(self, configs, device, dtype, chunk: int = 4096):
        from grokterm.experiment.tasks import pair_grid

        grids = [pair_grid(c) for c in configs]
        p = configs[0].p
        self.x, self.labels = grids[0][0].to(device), grids[0][1].to(device)
        self.mask = torch.zeros(len(configs), p * p, dtype=dtype, device=device)
        for r, (_, _, train) in enumerate(grids):
            self.mask[r, train.to(device)] = 1
        self.directions = sum_directions(p, dtype, device)
        self.chunk = chunk

    def measure(self, flat: torch.Tensor, lay, fast: bool) -> dict[str, list]:
        from grokterm.experiment.model import forward, unpack

        r = flat.shape[0]
        group = torch.zeros(r, min(self.chunk, len(self.x)), dtype=torch.long, device=flat.device)
        parts = []
        for i in range(0, len(self.x), self.chunk):
            x = self.x[i : i + self.chunk].expand(r, -1, -1)
            parts.append(forward(flat, lay, x, group[:, : x.shape[1]], fast))
        embed = unpack(flat, lay)["embed"]
        out = measures(embed, torch.cat(parts, 1), self.labels, self.mask, self.directions)
        return {k: v.tolist() for k, v in out.items()}
