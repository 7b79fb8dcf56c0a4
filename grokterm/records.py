"""What the store hands out: plain, typed records of sweeps, runs, metric points,
workers and claimed cohorts. The store maps its rows to these once; analysis,
claims, figures, export and the app read fields, never row dicts. No SQL, no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from grokterm.config import RunConfig

Values = dict[str, "float | None"]  # series name -> value (grokterm.series)


@dataclass
class Dynamics:
    """A run's training-dynamics label and the numbers behind it (analysis.dynamics)."""

    label: str | None  # one of labels.LABELS; None where there is no validation set
    fit_step: int | None  # first eval with train accuracy >= FIT
    rise_step: int | None  # first eval with validation accuracy >= VAL_LOW
    gen_step: int | None  # first eval with validation accuracy >= VAL_GEN
    final_train: float
    final_val: float | None
    max_gap: float  # largest train - validation gap before the training set was fit
    norm_start: float
    norm_peak: float
    norm_final: float
    norm_change: float | None  # through the transition: at gen (or end) minus before the rise
    last_step: int
    bumps: int  # plateaus in train accuracy followed by a rise (progression, fig 5)
    alt: str | None = None  # the label across a threshold the run is within a margin of
    note: str | None = None  # why it is uncertain between label and alt
    trend: str | None = None  # "still rising" / "still falling": validation at the end
    half_step: int | None = None  # first eval with validation accuracy >= VAL_HALF
    circuit_step: int | None = None  # first eval with the circuit formed (labels.circuit)
    collapse_step: int | None = None  # first eval in softmax collapse (labels.collapsed)

    @property
    def shown(self) -> str:
        """The label as a person reads it: 'semi-grokking or ungrokking?', 'grokking'."""
        text = self.label or ""
        if self.alt:
            text += f" or {self.alt}?"
        return f"{text}, {self.trend}" if self.trend and text else text

    @property
    def short(self) -> str:
        """The label for a table cell: '?' where uncertain, '+'/'-' still rising/falling."""
        mark = "?" if self.alt else {"still rising": "+", "still falling": "-"}.get(self.trend, "")
        return (self.label or "") + mark

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Dynamics | None:
        """None for an empty dict (a run not yet labelled); keys of other versions are
        ignored, missing ones are None."""
        if not data:
            return None
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Sweep:
    id: int
    name: str
    title: str
    figure: str
    scale: str
    preset_path: str
    digest: str
    toml: str
    created: str


@dataclass(frozen=True)
class SweepCounts:
    """A sweep with its runs counted by status (the sweeps list, `grokterm ls`)."""

    sweep: Sweep
    runs: int
    done: int
    diverged: int
    running: int
    failed: int
    step: int = 0  # the furthest any of its runs got

    @property
    def status(self) -> str:
        """finished; running (a worker trains it); interrupted (stopped partway);
        queued (nothing trained yet)."""
        if self.done + self.diverged + self.failed == self.runs:
            return "finished"
        if self.running:
            return "running"
        return "interrupted" if self.step or self.done or self.diverged else "queued"


@dataclass(frozen=True)
class Progress:
    runs: int
    finished: int  # done, diverged or failed
    diverged: int
    failed: int
    cohorts: int
    cohorts_finished: int  # done or failed
    steps_done: int  # over cohorts: a cohort's step counts once for its runs
    steps: int
    run_steps_done: int = 0  # over runs: the work done (a finished cohort: all of it)
    run_steps: int = 0  # the work planned

    @property
    def complete(self) -> bool:
        return self.cohorts_finished == self.cohorts


@dataclass
class Run:
    id: int
    sweep_id: int
    cohort_id: int
    key: str
    grid: dict
    config: RunConfig
    status: str  # queued | running | done | diverged | failed
    step: int = 0
    final: Values = field(default_factory=dict)  # latest value of each series
    label: str | None = None
    info: Dynamics | None = None
    device: str | None = None
    error: str | None = None  # why it failed

    def value(self, name: str) -> float | None:
        return self.final.get(name)

    @property
    def short_label(self) -> str | None:
        """Its label for a table cell, marked where uncertain or still changing."""
        return self.info.short if self.info and self.info.label else self.label


@dataclass
class MetricPoint:
    run_id: int
    step: int
    values: Values
    rowid: int = 0  # the store's cursor for "rows since"

    def get(self, name: str) -> float | None:
        return self.values.get(name)


@dataclass(frozen=True)
class Worker:
    id: int
    pid: int
    host: str
    device: str
    sweep_id: int
    status: str  # running | finished | stopped | lost | failed
    started: float
    heartbeat: float
    cohort_id: int | None = None
    step: int | None = None
    steps_per_sec: float | None = None
    cohort_steps: int | None = None
    cohort_runs: int = 0
    error: str | None = None  # the last error it hit
    log: str | None = None  # where its output goes
    token: str | None = None  # which process it is (grokterm.processes.token)
    machine: str | None = None  # JSON of grokterm.provenance.machine: what trained here
    node: str | None = None  # the Ray node it trains on (host/node id); None: this host


@dataclass(frozen=True)
class Cohort:
    """Runs trained as one program, as the queue sees them."""

    id: int
    sweep_id: int
    status: str  # queued | running | done | failed
    step: int
    steps: int
    worker_id: int | None = None
    checkpoint: str | None = None  # file of the last saved state
    attempts: int = 0  # failed attempts so far
    error: str | None = None  # the last one's error


@dataclass(frozen=True)
class Assignment:
    """A cohort a worker has claimed: its runs in cohort order."""

    cohort_id: int
    sweep_id: int
    step: int
    steps: int
    attempts: int  # failed attempts before this one
    runs: list[Run]
