"""One run's full configuration: a plain dataclass with no torch, so presets,
the store and the CLI can build and check it cheaply."""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields

TASKS = ("add", "square", "sub", "mul", "div", "memorize", "multitask")
PAIR_TASKS = ("add", "square", "sub", "mul", "div")  # one operation a . b mod p, held-out pairs
# A run's identity (RunConfig.identity) carries this; raise it only when the same
# settings start to train differently, so that stored sweeps stop matching on purpose.
IDENTITY_VERSION = 1
# The fields RunConfig had when identities were whole configs (before version 1): a
# sweep stored then is found by its digest over these (Preset.digests).
OBSERVED = ("measure_every",)  # fields that change what is measured, never the training
LEGACY_FIELDS = ("task", "p", "n_train", "n_mem", "d", "n_layers", "n_heads", "split_ffn", "lr",
                 "weight_decay", "beta1", "beta2", "warmup", "steps", "eval_every", "seed")  # fmt: skip


# Far beyond any model or budget of the paper (its largest: d = 1024, 8 layers, 40k
# steps), and within what the engine's integer types hold.
LIMITS = {"p": 10_000, "d": 65_536, "n_layers": 1_024, "n_heads": 1_024, "steps": 10**9,
          "eval_every": 10**9, "warmup": 10**9, "seed": 2**63 - 1, "measure_every": 10**9}  # fmt: skip


class ConfigError(ValueError):
    """A bad value for one configuration key: says which key and what is allowed."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class RunConfig:
    # task and data
    task: str = "add"  # (a+b), (a+b)^2, (a-b), (a*b) or (a/b, b != 0) mod p; memorize; multitask
    p: int = 113
    n_train: int = 3000  # training pairs (multitask: addition examples)
    train_fraction: float = 0.0  # instead of n_train: this fraction of all pairs (0: off)
    n_mem: int = 0  # multitask only: random-labelled subtraction examples
    # model (DESIGN.md section 2)
    d: int = 128
    n_layers: int = 1
    n_heads: int = 4
    split_ffn: bool = False  # fig 10: addition and memorization use separate MLP halves
    layernorm: bool = False  # post-norm LayerNorm after each residual add (Davies et al.)
    # optimizer: AdamW with linear warm-up, full batch
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    warmup: int = 10
    batch_size: int = 0  # 0: full batch; else minibatches from each run's own seed
    # budget
    steps: int = 40_000
    eval_every: int = 100
    seed: int = 0
    # what is observed, not how it trains (not part of a run's identity): the circuit's
    # Fourier measures at every k-th evaluation of single-task runs (0: never)
    measure_every: int = 1

    @property
    def pairs(self) -> int:
        """All inputs a, b of the task (division leaves out b = 0)."""
        return self.p * (self.p - 1) if self.task == "div" else self.p * self.p

    @property
    def train_size(self) -> int:
        """Training pairs: n_train, or the fraction's share of all pairs, rounded."""
        return round(self.train_fraction * self.pairs) if self.train_fraction else self.n_train

    @property
    def batch(self) -> int:
        """Examples per step of the run: its minibatch, or its whole training set."""
        full = self.train_size + self.n_mem
        return min(self.batch_size, full) if self.batch_size else full

    @property
    def d_head(self) -> int:
        return self.d // self.n_heads

    @property
    def vocab(self) -> int:
        """Tokens 0..p-1, `=` (p), and for multitask `+` (p+1) and `-` (p+2)."""
        return self.p + 3 if self.task == "multitask" else self.p + 1

    @property
    def seq_len(self) -> int:
        return 4 if self.task == "multitask" else 3

    @property
    def n_params(self) -> int:
        """Parameters of the model: embeddings, per layer attention (4 d^2) and MLP
        (8 d^2 + 5d), unembedding. The model size of figs 8 and 10."""
        d = self.d
        per_layer = 4 * d * d + 8 * d * d + 5 * d + (4 * d if self.layernorm else 0)
        return (self.vocab + self.seq_len) * d + self.n_layers * per_layer + d * self.p

    def validate(self) -> RunConfig:
        """Raise ConfigError naming the first bad key; return self when all is well."""
        if self.task not in TASKS:
            raise ConfigError("task", f"expected one of {', '.join(TASKS)}, got {self.task!r}")
        _positive(self, "p", "n_train", "d", "n_layers", "n_heads", "steps", "eval_every")
        _non_negative(self, "n_mem", "warmup", "seed", "measure_every", "batch_size")
        for key, most in LIMITS.items():
            if getattr(self, key) > most:
                raise ConfigError(key, f"expected at most {most:,}, got {getattr(self, key):,}")
        if self.p < 2:
            raise ConfigError("p", f"expected an integer of at least 2, got {self.p}")
        if self.task == "div" and any(self.p % k == 0 for k in range(2, math.isqrt(self.p) + 1)):
            raise ConfigError("p", f"division needs a prime p (every b != 0 invertible), got {self.p}")  # fmt: skip
        if self.d % self.n_heads:
            raise ConfigError("d", f"expected a multiple of n_heads ({self.n_heads}), got {self.d}")
        self._validate_train_size()
        if self.n_mem > self.pairs:
            raise ConfigError(
                "n_mem",
                f"expected at most {self.pairs} (all pairs for p={self.p}), got {self.n_mem}",
            )
        if self.n_mem and self.task != "multitask":
            raise ConfigError(
                "n_mem", f"only the multitask task takes n_mem, task is {self.task!r}"
            )
        if self.split_ffn and self.task != "multitask":
            raise ConfigError(
                "split_ffn", f"only the multitask task can split the FFN, task is {self.task!r}"
            )
        for key in ("lr", "weight_decay"):
            if not 0 <= getattr(self, key) < math.inf:
                raise ConfigError(key, f"expected a finite number >= 0, got {getattr(self, key)}")
        for key in ("beta1", "beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(key, f"expected a number in [0, 1), got {getattr(self, key)}")
        return self

    def _validate_train_size(self) -> None:
        f, key = self.train_fraction, "train_fraction" if self.train_fraction else "n_train"
        if not (isinstance(f, (int, float)) and not isinstance(f, bool) and 0 <= f < 1):
            raise ConfigError("train_fraction", f"expected a number in [0, 1), got {f!r}")
        if f and self.n_train != DEFAULTS["n_train"]:
            raise ConfigError("train_fraction", "give n_train or train_fraction, not both")
        if f and self.task not in PAIR_TASKS:
            raise ConfigError("train_fraction", f"only single-task runs take it, task is {self.task!r}")  # fmt: skip
        n, pairs = self.train_size, self.pairs
        if n < 1:
            raise ConfigError(key, f"expected at least one training pair, got {n}")
        if n > pairs:
            raise ConfigError(key, f"expected at most {pairs} (all pairs for p={self.p}), got {n}")
        if self.task != "memorize" and n == pairs:
            raise ConfigError(
                key, f"expected fewer than {pairs} so that some pairs are left to validate on, got {n}"
            )  # fmt: skip

    def cohort_key(self) -> tuple:
        """Runs with equal keys share one program: same shapes, same step schedule.
        Seeds, data sizes and optimizer hyper-parameters may differ inside a cohort."""
        return (self.task, self.p, self.d, self.n_layers, self.n_heads, self.split_ffn,
                self.layernorm, self.batch_size, self.steps, self.eval_every,
                self.measure_every)  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """What makes this run this run: the fields not at their default, and the
        identity version. A field added later with a default leaves it unchanged,
        so stored sweeps and checkpoints keep resuming."""
        changed = {k: v for k, v in asdict(self).items() if v != DEFAULTS[k] and k not in OBSERVED}
        return changed | {"version": IDENTITY_VERSION}

    def legacy_dict(self) -> dict | None:
        """The whole config as stored before identities (None when a field added
        since is not at its default: no sweep of that time can have trained it)."""
        data = asdict(self)
        if any(data[k] != DEFAULTS[k] for k in data if k not in LEGACY_FIELDS + OBSERVED):
            return None
        return {k: data[k] for k in LEGACY_FIELDS}

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                unknown[0], f"unknown key; expected one of {', '.join(sorted(known))}"
            )
        return cls(**data)


def _positive(cfg: RunConfig, *keys: str) -> None:
    for key in keys:
        value = getattr(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(key, f"expected a positive integer, got {value!r}")


def _non_negative(cfg: RunConfig, *keys: str) -> None:
    for key in keys:
        value = getattr(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(key, f"expected a non-negative integer, got {value!r}")


DEFAULTS = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}
