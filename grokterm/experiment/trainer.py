"""Train a cohort of runs as one batched program, exactly as if each ran alone.

Each run has its own seed, training set and optimizer hyper-parameters; training
sets (or each step's minibatches, drawn from each run's seed) are padded to the
cohort's largest and the loss masked, so run r's gradient is the gradient of its own
mean loss. AdamW is elementwise, so one update of the stacked parameters is R
independent updates. Pure torch: metric rows go to a callback; no SQL, printing or UI
here."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from grokterm.config import RunConfig
from grokterm.devices import FORMS
from grokterm.experiment import circuits, engines
from grokterm.experiment.model import forward, init_params, layout
from grokterm.experiment.tasks import ADD, MEM, Minibatches, Split, make_data


@dataclass
class MetricRow:
    """One run's measures at one evaluation, by series name (grokterm.series):
    train and validation loss and accuracy, the L2 norm of all its parameters, and
    per-task train accuracy in multitask runs."""

    run: int  # index of the run in the cohort
    step: int
    values: dict[str, float | None] = field(default_factory=dict)
    diverged: bool = False


class CheckpointMismatch(ValueError):
    """A checkpoint saved by another cohort than the one loading it."""


@dataclass
class Batch:
    """Splits of R runs padded to a common length N."""

    x: torch.Tensor  # [R, N, T]
    y: torch.Tensor  # [R, N]
    group: torch.Tensor  # [R, N]
    valid: torch.Tensor  # [R, N] bool, False on padding

    @classmethod
    def pad(cls, splits: Sequence[Split], pad_token: int, device) -> Batch:
        n = max(len(s) for s in splits)
        r, t = len(splits), splits[0].x.shape[1]
        x = torch.full((r, n, t), pad_token, dtype=torch.long)
        y = torch.zeros(r, n, dtype=torch.long)
        group = torch.zeros(r, n, dtype=torch.long)
        valid = torch.zeros(r, n, dtype=torch.bool)
        for i, s in enumerate(splits):
            x[i, : len(s)], y[i, : len(s)], group[i, : len(s)] = s.x, s.y, s.group
            valid[i, : len(s)] = True
        return cls(*(v.to(device) for v in (x, y, group, valid)))

    def chunks(self, size: int):
        for i in range(0, self.x.shape[1], size):
            yield Batch(self.x[:, i : i + size], self.y[:, i : i + size],
                        self.group[:, i : i + size], self.valid[:, i : i + size])  # fmt: skip


def configure_torch(threads: int | None = None, tf32: bool = False) -> None:
    """Process-wide settings for training, made before the first tensor op.

    Flushing denormal floats to zero: as weight decay shrinks values, float32
    activations and gradients go denormal and a CPU step runs about 2x slower
    (measured: 24 vs 50 steps/s at p=59, d=64); values below 1.2e-38 change no result
    that matters. The flag is per thread and a CPU thread pool's threads copy it when
    they start, so it is set before any op starts them.

    Deterministic kernels: the gather's backward is an index_add with atomic adds on
    CUDA, and inductor's CPU code for it (the compiled engine) adds atomically across
    threads too; their order, and so their float32 sums, vary run to run (measured: two
    identical compiled trainings on 2 threads differed by 4e-7 in 2 of 8 tries, none of
    6 with these kernels, at the same speed). Deterministic kernels keep a resumed
    cohort bit-for-bit (cuBLAS needs its workspace fixed before its first call).

    `tf32`: a GPU's matmuls round their inputs to TF32 (asked for only; float32
    otherwise)."""
    torch.set_flush_denormal(True)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    # (which would also fill every new empty tensor with NaN, a cost per step for nothing:
    # the engine writes every buffer before it reads it)
    torch.utils.deterministic.fill_uninitialized_memory = False
    if threads:
        torch.set_num_threads(threads)
    _keep_freed_memory()


# glibc's malloc parameters (mallopt): a step allocates and frees the same tens of MB
# of activations every time; by default glibc maps and unmaps each block above its
# threshold and trims the heap, page-faulting the memory in again on every step.
# Keeping it: 1.05-1.2x a step on this CPU, bit-identical (only where memory lives).
_MALLOPT = {-3: 32 * 2**20, -1: 1 * 2**30, -2: 256 * 2**20}  # mmap, trim, top pad


def _keep_freed_memory() -> None:
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc's; elsewhere the allocator stays as is
    except (OSError, AttributeError):
        return
    for param, value in _MALLOPT.items():
        mallopt(param, value)


def pick_device(spec: str = "auto") -> str:
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but CUDA is not available here")
    return spec


class Cohort:
    """R runs sharing a cohort key (RunConfig.cohort_key), trained together."""

    def __init__(
        self,
        configs: Sequence[RunConfig],
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        fast: bool = True,
        eval_chunk: int = 4096,
        engine: str = "eager",
    ):
        keys = {c.validate().cohort_key() for c in configs}
        if len(keys) != 1:
            raise ValueError(f"runs of one cohort must share a cohort key, got {sorted(keys)}")
        if engine not in FORMS:
            raise ValueError(f"expected eager, compiled or graphs, got {engine!r}")
        self.configs = list(configs)
        self.engine = engine
        self.lay = layout(configs[0])
        self.fast, self.eval_chunk = fast, eval_chunk
        self.steps, self.eval_every = configs[0].steps, configs[0].eval_every
        data = [make_data(c) for c in configs]
        pad = configs[0].p  # `=`: padded rows stay well-formed sequences
        self.train_batch = Batch.pad([d.train for d in data], pad, device)
        self.val_batch = (
            None if data[0].val is None else Batch.pad([d.val for d in data], pad, device)
        )
        self.train_weight = self._mean_weights(self.train_batch, dtype)
        # minibatches: one static buffer per step, refilled in place (a CUDA graph
        # replays the same tensors); full batch: the training set itself
        self.step_batch, self.minibatches = None, []
        if configs[0].batch_size:
            self.step_batch = self._batch_buffer(dtype)
            self.minibatches = [Minibatches(c, len(d.train)) for c, d in zip(configs, data)]
        self.multitask = configs[0].task == "multitask"
        measured = configs[0].task in circuits.MEASURED_TASKS and configs[0].measure_every
        self.probe = circuits.CircuitProbe(configs, device, dtype, eval_chunk) if measured else None

        def per_run(name: str) -> torch.Tensor:
            values = [float(getattr(c, name)) for c in configs]
            return torch.tensor(values, dtype=dtype, device=device)[:, None]

        self.lr, self.wd = per_run("lr"), per_run("weight_decay")
        self.beta1, self.beta2, self.warmup = per_run("beta1"), per_run("beta2"), per_run("warmup")

        self.flat = torch.stack([init_params(c) for c in configs]).to(device, dtype)
        self.flat.requires_grad_(engine != "compiled")  # torch.func.grad needs no flag
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.step = 0
        self.step_t = torch.zeros((), dtype=dtype, device=device)  # compiled, graphs
        self._fast_step = None  # built at the first update, after any resume
        self.last_eval = -1
        self.diverged = [False] * len(configs)

    # -- training ---------------------------------------------------------------------

    def train(
        self,
        on_metrics: Callable[[list[MetricRow]], None],
        until: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Train to `until` (default: the budget), evaluating every eval_every steps
        and at the end. Returns True when the whole budget is done."""
        until = self.steps if until is None else min(until, self.steps)
        while True:
            if self.last_eval < self.step and (
                self.step % self.eval_every == 0 or self.step == self.steps
            ):
                on_metrics(self.evaluate())
            if self.step >= until or (should_stop is not None and should_stop()):
                return self.step >= self.steps
            self.update()

    def loss_per_run(self) -> torch.Tensor:
        return engines.run_losses(self.flat, self.lay, self.fast, *self._data())

    def update(self) -> None:
        """One AdamW step for every run, as torch.optim.AdamW computes it."""
        if self.step_batch is not None:
            self._load_batch()
        if self.engine == "eager":
            (grad,) = torch.autograd.grad(self.loss_per_run().sum(), self.flat)
            with torch.no_grad():
                engines.adamw_(self.flat, self.exp_avg, self.exp_avg_sq, grad, self.step,
                             *self._hyper())  # fmt: skip
        else:
            if self._fast_step is None:
                self._fast_step = self._build_step()
            self._fast_step()
        self.step += 1

    def _data(self) -> tuple:
        if self.step_batch is not None:
            return self.step_batch
        b = self.train_batch
        return b.x, b.y, b.group, self.train_weight

    def _batch_buffer(self, dtype: torch.dtype) -> tuple:
        size = max(c.batch for c in self.configs)
        x = self.train_batch.x[:, :size].clone()
        y, group = self.train_batch.y[:, :size].clone(), self.train_batch.group[:, :size].clone()
        return x, y, group, torch.zeros(x.shape[:2], dtype=dtype, device=x.device)

    def _load_batch(self) -> None:
        """Gather every run's minibatch of this step into the static buffers."""
        x, y, group, weight = self.step_batch
        idx = torch.zeros(x.shape[:2], dtype=torch.long)
        count = torch.zeros(x.shape[0], 1, dtype=weight.dtype)
        for r, batches in enumerate(self.minibatches):
            picked = batches.at(self.step)
            idx[r, : len(picked)], count[r] = picked, len(picked)
        valid = torch.arange(x.shape[1]) < count
        idx, rows = idx.to(x.device), torch.arange(x.shape[0], device=x.device)[:, None]
        b = self.train_batch
        x.copy_(b.x[rows, idx]), y.copy_(b.y[rows, idx]), group.copy_(b.group[rows, idx])
        weight.copy_(valid / count)

    def _hyper(self) -> tuple:
        return self.lr, self.wd, self.beta1, self.beta2, self.warmup

    def _build_step(self) -> Callable[[], None]:
        self.step_t.fill_(self.step)
        state = (self.flat, self.exp_avg, self.exp_avg_sq, self.step_t)
        args = (self._data(), self._hyper(), self.lay, self.fast)
        if self.engine == "graphs":
            return engines.GraphStep(state, *args)
        compiled = engines.compiled_step()

        def step() -> None:
            compiled(*state, *args)
            self.step_t.add_(1)

        return step

    # -- evaluation -------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> list[MetricRow]:
        """Metrics of every live run at the current step, on the whole train and
        validation sets. A run whose loss or norm is not finite is reported once as
        diverged and then left out."""
        self.last_eval = self.step
        train = self._split_metrics(self.train_batch)
        val = None if self.val_batch is None else self._split_metrics(self.val_batch)
        norms = self.flat.double().norm(dim=1).tolist()
        circuit = self._circuit()
        rows = []
        for r in range(len(self.configs)):
            if self.diverged[r]:
                continue
            values = {
                "train_loss": train["loss"][r], "train_acc": train["acc"][r],
                "val_loss": None if val is None else val["loss"][r],
                "val_acc": None if val is None else val["acc"][r], "norm": norms[r],
                "softmax_collapse": train["collapsed"][r],
            }  # fmt: skip
            values |= {name: v[r] for name, v in circuit.items()}
            if self.multitask:
                values |= {
                    "train_add_acc": train["acc_add"][r],
                    "train_mem_acc": train["acc_mem"][r],
                }
            row = MetricRow(run=r, step=self.step, values=values)
            if not all(map(_finite, (values["train_loss"], values["norm"]))):
                row.diverged = self.diverged[r] = True
            rows.append(row)
        return rows

    def _circuit(self) -> dict[str, list]:
        """The circuit's measures at every measure_every-th evaluation and at the end."""
        every = self.configs[0].measure_every
        due = self.step == self.steps or (self.step // self.eval_every) % max(every, 1) == 0
        return self.probe.measure(self.flat, self.lay, self.fast) if self.probe and due else {}

    def _split_metrics(self, batch: Batch) -> dict[str, list[float]]:
        sums = {k: 0.0 for k in ("loss", "correct", "correct_add", "correct_mem", "zero")}
        for c in batch.chunks(self.eval_chunk):
            logits = forward(self.flat, self.lay, c.x, c.group, self.fast)
            ce = F.cross_entropy(logits.flatten(0, 1), c.y.flatten(), reduction="none")
            ce = ce.view(c.y.shape)
            # softmax collapse (Prieto et al. 2025): a float32 loss of exactly zero
            ce32 = ce if ce.dtype == torch.float32 else _float32_loss(logits, c.y)
            sums["zero"] = sums["zero"] + ((ce32 == 0) & c.valid).sum(1)
            ce = ce.double()
            correct = (logits.argmax(-1) == c.y) & c.valid
            sums["loss"] = sums["loss"] + (ce * c.valid).sum(1)
            sums["correct"] = sums["correct"] + correct.sum(1)
            sums["correct_add"] = sums["correct_add"] + (correct & (c.group == ADD)).sum(1)
            sums["correct_mem"] = sums["correct_mem"] + (correct & (c.group == MEM)).sum(1)
        count = batch.valid.sum(1).double()
        n_add = (batch.valid & (batch.group == ADD)).sum(1).double().clamp(min=1)
        n_mem = (batch.valid & (batch.group == MEM)).sum(1).double().clamp(min=1)
        return {
            "loss": (sums["loss"] / count).tolist(),
            "acc": (sums["correct"] / count).tolist(),
            "acc_add": (sums["correct_add"] / n_add).tolist(),
            "acc_mem": (sums["correct_mem"] / n_mem).tolist(),
            "collapsed": (sums["zero"] / count).tolist(),
        }

    @staticmethod
    def _mean_weights(batch: Batch, dtype: torch.dtype) -> torch.Tensor:
        valid = batch.valid.to(dtype)
        return valid / valid.sum(1, keepdim=True)

    # -- checkpoints ------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to resume bit-for-bit (data is rebuilt from the configs)."""
        return {
            "configs": [c.to_dict() for c in self.configs],
            "step": self.step,
            "last_eval": self.last_eval,
            "diverged": list(self.diverged),
            # one copy on the host (`.cpu().clone()` made two from a GPU)
            "flat": self.flat.detach().to("cpu", copy=True),
            "exp_avg": self.exp_avg.to("cpu", copy=True),
            "exp_avg_sq": self.exp_avg_sq.to("cpu", copy=True),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a saved state; its runs must be this cohort's, compared by identity
        (RunConfig.identity), so a state saved before a new option was added loads."""
        saved = [RunConfig.from_dict(c).identity() for c in state["configs"]]
        mine = [c.identity() for c in self.configs]
        if saved != mine:
            diff = (
                next((i, a, b) for i, (a, b) in enumerate(zip(saved, mine)) if a != b)
                if len(saved) == len(mine)
                else None
            )
            detail = (f"run {diff[0]} was saved as {diff[1]}, is {diff[2]}" if diff
                      else f"it has {len(saved)} runs, this cohort {len(mine)}")  # fmt: skip
            raise CheckpointMismatch(f"checkpoint belongs to a different cohort: {detail}")
        with torch.no_grad():
            self.flat.copy_(state["flat"])
            self.exp_avg.copy_(state["exp_avg"])
            self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.step, self.last_eval = state["step"], state["last_eval"]
        self.step_t.fill_(self.step)
        self.diverged = list(state["diverged"])


def _float32_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    ce = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
    return ce.view(y.shape)


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")
