"""The paper's tasks as token tensors, deterministic from a run's seed.

Sequences are `a b =` (vocab p+1, `=` is token p) or, for the multitask mix,
`a op b =` with `+` = p+1 and `-` = p+2 so addition and memorization inputs never
coincide. Labels are classes 0..p-1. Every example carries a group: 0 for the
algorithmic task (or the only task), 1 for memorization (multitask)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grokterm.config import RunConfig

ADD, MEM = 0, 1  # example groups

# Independent random streams per run, so the split never depends on the init.
STREAM_INIT, STREAM_SPLIT, STREAM_LABELS, STREAM_MEM_SPLIT = range(4)


def generator(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1000 + stream)


@dataclass
class Split:
    x: torch.Tensor  # [N, T] token ids
    y: torch.Tensor  # [N] labels
    group: torch.Tensor  # [N] ADD or MEM

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class TaskData:
    train: Split
    val: Split | None  # None where nothing generalizable is held out (memorize)
    vocab: int
    seq_len: int


def make_data(cfg: RunConfig) -> TaskData:
    cfg.validate()
    p = cfg.p
    a, b = _all_pairs(p)
    order = _split_order(cfg)
    train_idx, val_idx = order[: cfg.n_train], order[cfg.n_train :]

    if cfg.task == "memorize":
        labels = _symmetric_random_labels(p, generator(cfg.seed, STREAM_LABELS))
        return TaskData(_split(p, a, b, labels, train_idx), None, cfg.vocab, cfg.seq_len)

    labels = _labels(cfg.task, a, b, p)
    if cfg.task != "multitask":
        train = _split(p, a, b, labels, train_idx)
        return TaskData(train, _split(p, a, b, labels, val_idx), cfg.vocab, cfg.seq_len)

    plus, minus = p + 1, p + 2
    mem_idx = torch.randperm(p * p, generator=generator(cfg.seed, STREAM_MEM_SPLIT))[: cfg.n_mem]
    mem_labels = torch.randint(p, (p * p,), generator=generator(cfg.seed, STREAM_LABELS))
    add_train = _split(p, a, b, labels, train_idx, op=plus)
    mem_train = _split(p, a, b, mem_labels, mem_idx, op=minus, group=MEM)
    train = Split(*(torch.cat(pair) for pair in zip(_fields(add_train), _fields(mem_train))))
    val = _split(p, a, b, labels, val_idx, op=plus)
    return TaskData(train, val, cfg.vocab, cfg.seq_len)


def pair_grid(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every input `a b =` of a single-task run in row-major order (a * p + b), its
    label, and the indices of this run's training pairs in that order."""
    p = cfg.p
    a, b = _all_pairs(p)
    order = _split_order(cfg)
    x = torch.stack([a, b, torch.full_like(a, p)], 1)
    return x, _labels(cfg.task, a, b, p), order[: cfg.n_train]


def _split_order(cfg: RunConfig) -> torch.Tensor:
    """The pairs in the order that makes the first n_train of them the training set."""
    return torch.randperm(cfg.p * cfg.p, generator=generator(cfg.seed, STREAM_SPLIT))


def _labels(task: str, a: torch.Tensor, b: torch.Tensor, p: int) -> torch.Tensor:
    return (a + b) % p if task in ("add", "multitask") else (a + b) ** 2 % p


def _all_pairs(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.arange(p * p)
    return k // p, k % p


def _symmetric_random_labels(p: int, gen: torch.Generator) -> torch.Tensor:
    """One random label per unordered pair: (a, b) and (b, a) share it."""
    raw = torch.randint(p, (p, p), generator=gen)
    upper = torch.triu(raw)
    return (upper + torch.triu(raw, 1).T).reshape(-1)


def _split(p, a, b, labels, idx, op: int | None = None, group: int = ADD) -> Split:
    eq = torch.full_like(idx, p)
    cols = [a[idx], b[idx], eq] if op is None else [a[idx], torch.full_like(idx, op), b[idx], eq]
    return Split(torch.stack(cols, 1), labels[idx], torch.full_like(idx, group))


def _fields(s: Split) -> tuple[torch.Tensor, ...]:
    return s.x, s.y, s.group
