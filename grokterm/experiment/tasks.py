"""The paper's tasks as token tensors, deterministic from a run's seed.

Single tasks are one operation a . b mod p over all pairs (division: b != 0), split at
random into training and validation pairs. Sequences are `a b =` (vocab p+1, `=` is
token p) or, for the multitask mix, `a op b =` with `+` = p+1 and `-` = p+2 so
addition and memorization inputs never coincide. Labels are classes 0..p-1. Every
example carries a group: 0 for the algorithmic task (or the only task), 1 for
memorization (multitask)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from grokterm.config import RunConfig

ADD, MEM = 0, 1  # example groups

# Independent random streams per run, so the split never depends on the init.
STREAM_INIT, STREAM_SPLIT, STREAM_LABELS, STREAM_MEM_SPLIT, STREAM_BATCHES = range(5)


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
    a, b = _all_pairs(cfg)
    order = _split_order(cfg)
    train_idx, val_idx = order[: cfg.train_size], order[cfg.train_size :]

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
    a, b = _all_pairs(cfg)
    order = _split_order(cfg)
    x = torch.stack([a, b, torch.full_like(a, p)], 1)
    return x, _labels(cfg.task, a, b, p), order[: cfg.train_size]


class Minibatches:
    """Which of a run's n training examples its minibatch at each step holds: each epoch
    a fresh shuffle from the run's seed, cut into batches of batch_size, the last one
    short (as a shuffling DataLoader without drop_last). A function of the step alone,
    so a resumed run draws what it would have drawn; the epoch's shuffle is drawn once."""

    def __init__(self, cfg: RunConfig, n: int):
        self.seed, self.n, self.size = cfg.seed, n, cfg.batch_size
        self.per_epoch = -(-n // cfg.batch_size)
        self.epoch, self.order = -1, torch.empty(0, dtype=torch.long)

    def at(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self.epoch:
            self.epoch, self.order = epoch, epoch_order(self.seed, self.n, epoch)
        return self.order[i * self.size : (i + 1) * self.size]


def batch_indices(cfg: RunConfig, n: int, step: int) -> torch.Tensor:
    """One run's minibatch at `step` (Minibatches, for a single look)."""
    return Minibatches(cfg, n).at(step)


def epoch_order(seed: int, n: int, epoch: int) -> torch.Tensor:
    """One epoch's shuffle of a run's n training examples, from its own stream."""
    key = hashlib.blake2b(f"{seed}:{STREAM_BATCHES}:{epoch}".encode(), digest_size=7).digest()
    return torch.randperm(n, generator=torch.Generator().manual_seed(int.from_bytes(key)))


def _split_order(cfg: RunConfig) -> torch.Tensor:
    """The pairs in the order that makes the first train_size of them the training set."""
    return torch.randperm(cfg.pairs, generator=generator(cfg.seed, STREAM_SPLIT))


def _labels(task: str, a: torch.Tensor, b: torch.Tensor, p: int) -> torch.Tensor:
    if task == "div":  # a / b = a * b^-1 (p prime, so every b != 0 has an inverse)
        inverse = torch.tensor([0] + [pow(v, -1, p) for v in range(1, p)])
        return a * inverse[b] % p
    ops = {"add": torch.add, "multitask": torch.add, "sub": torch.sub, "mul": torch.mul,
           "square": lambda a, b: (a + b) ** 2}  # fmt: skip
    return ops[task](a, b) % p


def _all_pairs(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Every input a, b in row-major order; division leaves out b = 0."""
    p = cfg.p
    k = torch.arange(p * p)
    a, b = k // p, k % p
    return (a[b != 0], b[b != 0]) if cfg.task == "div" else (a, b)


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
