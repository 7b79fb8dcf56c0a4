"""Preset files: parse and validate a sweep's TOML into plain dataclasses, apply a
scale, expand the grid into runs. No torch.

Format (see docs/presets.md):

    name = "demo"                  # identifier, used by `grokterm run` to resume
    title = "..."                  # one line
    figure = "2"                   # which paper figure this reproduces
    description = "..."            # what it shows, and why its settings were chosen
    seeds = [0, 1, 2]              # or a count: seeds = 3 means [0, 1, 2]

    [run]                          # base values of any RunConfig field
    task = "add"
    d = 64

    [grid]                         # axes: lists of values for any RunConfig field
    n_train = [2600, 3000]

    points = [{d = 8}, {d = 32}]   # explicit points, each crossed with the grid

    [scale.quick]                  # a named scale overrides run fields, grid axes, seeds
    steps = 3000
    seeds = 1
    [scale.quick.grid]
    d = [8, 32]

    [[claims]]                     # the paper's claims, checked by `grokterm show`
    ...
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from grokterm import series
from grokterm.claims import Claim, ClaimProblem, parse_claim
from grokterm.config import ConfigError, RunConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_SCALE = "paper"
# A sweep's runs at most: fig 3, the largest paper figure, has 847. Counted before a
# grid is expanded, so a typo of a seed count is an error, not a machine out of memory.
MAX_RUNS = 100_000
TOP_KEYS = {"name", "title", "figure", "description", "seeds", "run", "grid", "points", "scale",
            "claims", "plot"}  # fmt: skip
PLOT_KINDS = ("curves", "final", "capacity", "emergence", "zones")
FIELD_TYPES = {f.name: f.type for f in fields(RunConfig)}


class PresetError(ValueError):
    """Names the file, the key and what was expected."""

    def __init__(self, path: str | Path, key: str, message: str):
        super().__init__(f"{path}: {key}: {message}")


@dataclass(frozen=True)
class RunSpec:
    key: str  # unique inside a sweep, e.g. "d=32 n_train=3000 seed=0"
    grid: dict  # this run's values of the grid axes and its seed
    config: RunConfig
    index: int = 0  # place in the preset's expansion: the order tables list runs in


@dataclass
class Preset:
    path: str
    text: str  # the TOML as read, stored with the sweep
    name: str
    title: str
    figure: str
    description: str
    run: dict  # base RunConfig fields
    grid: dict[str, list]
    seeds: list[int]
    points: list[dict] = field(default_factory=lambda: [{}])  # explicit grid points
    scales: dict[str, dict] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    plot: dict = field(default_factory=lambda: {"kind": "curves"})  # how `show` draws it
    scale: str = DEFAULT_SCALE  # the scale applied
    overridden: frozenset = frozenset()  # its keys: "run.steps", "grid.d", "seeds", "points"

    @property
    def is_view(self) -> bool:
        """A zones figure (fig 1) trains nothing: it is drawn from other sweeps."""
        return self.plot["kind"] == "zones"

    @property
    def sources(self) -> list[str]:
        """The sweeps a view is drawn from, by name: [D_crit's, D_mem's]."""
        return list(self.plot.get("sources", []))

    def view_error(self) -> str:
        return (f"{self.path}: plot: this figure is drawn from the {' and '.join(self.sources)} "
                f"sweeps; run those, then grokterm show {self.path}")  # fmt: skip

    @property
    def scale_names(self) -> list[str]:
        return [DEFAULT_SCALE, *self.scales]

    def at_scale(self, scale: str) -> Preset:
        """This preset with a named scale's overrides applied."""
        if scale == DEFAULT_SCALE:
            return self
        if scale not in self.scales:
            raise PresetError(self.path, "scale", f"expected one of {', '.join(self.scale_names)}, got {scale!r}")  # fmt: skip
        over = self.scales[scale]
        where = f"scale.{scale}"
        run = {k: v for k, v in over.items() if k not in ("grid", "seeds", "points")}
        return Preset(
            path=self.path, text=self.text, name=self.name, title=self.title,
            figure=self.figure, description=self.description,
            run=self.run | _run_table(self.path, where, run),
            grid=self.grid | _grid_table(self.path, f"{where}.grid", over.get("grid", {})),
            seeds=_seeds(self.path, f"{where}.seeds", over["seeds"]) if "seeds" in over else self.seeds,
            points=_points(self.path, f"{where}.points", over["points"]) if "points" in over else self.points,
            claims=self.claims, plot=self.plot, scale=scale,
            overridden=frozenset([*(f"run.{k}" for k in run), *(f"grid.{k}" for k in over.get("grid", {})),
                                  *(k for k in ("seeds", "points") if k in over)]),
        )  # fmt: skip

    def count(self) -> int:
        """How many runs expand() makes, without making them."""
        return len(self.points) * math.prod(len(v) for v in self.grid.values()) * len(self.seeds)

    def expand(self) -> list[RunSpec]:
        """Every point times every run of the grid times the seeds, each checked."""
        if (n := self.count()) > MAX_RUNS:
            where = "grid" if self.scale == DEFAULT_SCALE else f"scale.{self.scale}"
            raise PresetError(self.path, where, f"{n:,} runs (points x grid x seeds); expected at "
                              f"most {MAX_RUNS:,} in one sweep: split it into several presets")  # fmt: skip
        axes = list(self.grid.items())
        specs = []
        for extra, values in itertools.product(
            self.points, itertools.product(*(v for _, v in axes))
        ):
            point = extra | dict(zip((k for k, _ in axes), values))
            for seed in self.seeds:
                grid = point | {"seed": seed}
                try:
                    cfg = RunConfig(**(self.run | grid)).validate()
                except ConfigError as err:
                    raise PresetError(self.path, self._where(err.key, extra), err.message) from None
                key = " ".join(f"{k}={v}" for k, v in grid.items())
                specs.append(RunSpec(key, grid, cfg, index=len(specs)))
        return specs

    def _where(self, key: str, point: dict) -> str:
        """The preset key a bad run field came from: a scale's, where it set it."""
        if key == "seed":
            where, source = "seeds", "seeds"
        elif key in point:
            where, source = f"points[{self.points.index(point)}].{key}", "points"
        elif key in self.grid:
            where = source = f"grid.{key}"
        else:
            where = source = f"run.{key}"
        if source not in self.overridden:
            return where
        return f"scale.{self.scale}.{where.removeprefix('run.')}"

    def digest(self) -> str:
        """Identity of what this preset trains, to find the sweep to resume: its runs'
        keys and identities, so editing a description, a plot or a claim still resumes,
        and so does a sweep stored before a new run option was added."""
        return self.digests()[0]

    def digests(self) -> list[str]:
        """The digests a stored sweep of exactly these runs may carry: today's first,
        then the one over whole configs that sweeps stored before identities carry."""
        specs = self.expand()
        digests = [_digest([[s.key, s.config.identity()] for s in specs])]
        legacy = [[s.key, s.config.legacy_dict()] for s in specs]
        if all(config is not None for _, config in legacy):
            digests.append(_digest(legacy))
        return digests


def _digest(runs: list) -> str:
    return hashlib.sha256(json.dumps(runs, sort_keys=True).encode()).hexdigest()[:16]


def load_preset(path: str | Path) -> Preset:
    path = Path(path)
    try:
        text = path.read_bytes().decode()
    except OSError as err:
        raise PresetError(path, "file", f"cannot be read ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise PresetError(path, "file", f"expected UTF-8 text, got byte 0x{err.object[err.start]:02x} "
                          f"at offset {err.start}") from None  # fmt: skip
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PresetError(path, "toml", f"not valid TOML ({err})") from None
    return parse_preset(data, path, text)


def parse_preset(data: dict, path: str | Path = "<preset>", text: str = "") -> Preset:
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise PresetError(path, unknown[0], f"unknown key; expected one of {', '.join(sorted(TOP_KEYS))}")  # fmt: skip
    for key in ("name", "title"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise PresetError(path, key, f"expected a non-empty string, got {_show(data.get(key))}")
    scales = data.get("scale", {})
    if not isinstance(scales, dict) or not all(isinstance(v, dict) for v in scales.values()):
        raise PresetError(path, "scale", "expected tables such as [scale.quick]")
    claims = data.get("claims", [])
    if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
        raise PresetError(path, "claims", "expected an array of tables, [[claims]]")
    parsed = []
    for i, claim in enumerate(claims):
        try:
            parsed.append(parse_claim(claim))
        except ClaimProblem as err:
            raise PresetError(path, f"claims[{i}].{err.key}", err.message) from None
    preset = Preset(
        path=str(path), text=text, name=data["name"], title=data["title"],
        figure=str(data.get("figure", "")), description=str(data.get("description", "")),
        run=_run_table(path, "run", data.get("run", {})),
        grid=_grid_table(path, "grid", data.get("grid", {})),
        seeds=_seeds(path, "seeds", data.get("seeds", 1)),
        points=_points(path, "points", data.get("points", [{}])),
        scales=scales, claims=parsed, plot=_plot(path, data.get("plot", {"kind": "curves"})),
    )  # fmt: skip
    for name in preset.scale_names:
        preset.at_scale(name).expand()  # every scale must expand cleanly
    return preset


def _run_table(path, where: str, table) -> dict:
    if not isinstance(table, dict):
        raise PresetError(path, where, f"expected a table, got {_show(table)}")
    for key, value in table.items():
        _check_field(path, f"{where}.{key}", key, value)
    return dict(table)


def _grid_table(path, where: str, table) -> dict[str, list]:
    if not isinstance(table, dict):
        raise PresetError(path, where, f"expected a table, got {_show(table)}")
    for key, values in table.items():
        if key == "seed":
            raise PresetError(path, f"{where}.seed", "seeds are set by the top-level `seeds` key")
        _check_known(path, f"{where}.{key}", key)
        plural = _kind(key)[1]
        if not isinstance(values, list) or not all(_type_ok(key, v) for v in values):
            raise PresetError(path, f"{where}.{key}", f"expected a list of {plural}, got {_show(values)}")  # fmt: skip
        if not values:
            raise PresetError(
                path, f"{where}.{key}", f"expected a non-empty list of {plural}, got []"
            )
    return dict(table)


def _plot(path, value) -> dict:
    if not isinstance(value, dict) or value.get("kind") not in PLOT_KINDS:
        got = value.get("kind") if isinstance(value, dict) else value
        raise PresetError(
            path, "plot.kind", f"expected one of {', '.join(PLOT_KINDS)}, got {_show(got)}"
        )
    for key in ("x", "series"):
        if key in value and value[key] not in FIELD_TYPES:
            raise PresetError(path, f"plot.{key}", f"expected a run field, got {_show(value[key])}")
    if "metric" in value and (problem := series.unknown(value["metric"])):
        raise PresetError(path, "plot.metric", problem)
    sources = value.get("sources")
    if value["kind"] == "zones" and not (
        isinstance(sources, list) and len(sources) == 2 and all(isinstance(s, str) for s in sources)
    ):
        raise PresetError(path, "plot.sources", f"expected two sweep names [D_crit, D_mem], got {_show(sources)}")  # fmt: skip
    return value


def _points(path, where: str, value) -> list[dict]:
    if not isinstance(value, list) or not value or not all(isinstance(p, dict) for p in value):
        raise PresetError(path, where, f"expected a non-empty array of tables such as {{d = 8, n_train = 3000}}, got {_show(value)}")  # fmt: skip
    for i, point in enumerate(value):
        _run_table(path, f"{where}[{i}]", point)
    return list(value)


def _seeds(path, where: str, value) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_RUNS:
        raise PresetError(path, where, f"expected at most {MAX_RUNS:,} (a sweep's runs at most), got {value:,}")  # fmt: skip
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return list(range(value))
    if (isinstance(value, list) and value
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):  # fmt: skip
        return list(value)
    raise PresetError(path, where, f"expected a positive count or a list of non-negative integers, got {_show(value)}")  # fmt: skip


def _check_field(path, where: str, key: str, value) -> None:
    _check_known(path, where, key)
    if not _type_ok(key, value):
        raise PresetError(path, where, f"expected {_kind(key)[0]}, got {_show(value)}")


def _check_known(path, where: str, key: str) -> None:
    if key not in FIELD_TYPES:
        raise PresetError(
            path, where, f"unknown run field; expected one of {', '.join(FIELD_TYPES)}"
        )


def _type_ok(key: str, value) -> bool:
    kind = FIELD_TYPES[key]
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"str": str, "bool": bool}[kind])


NON_NEGATIVE = {"n_mem", "warmup", "seed"}


def _kind(key: str) -> tuple[str, str]:
    """How to name the allowed values of a field: (one, several)."""
    kind = FIELD_TYPES[key]
    if kind == "int":
        adj = "non-negative" if key in NON_NEGATIVE else "positive"
        return f"a {adj} integer", f"{adj} integers"
    return {"float": ("a number", "numbers"), "str": ("a string", "strings"),
            "bool": ("true or false", "booleans")}[kind]  # fmt: skip


def _show(value) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, list)) else repr(value)
