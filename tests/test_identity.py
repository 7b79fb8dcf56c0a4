"""A run's identity is what finds its stored sweep and checks its checkpoint: the
fields not at their default plus a version. A field added later with a default
changes neither, and sweeps and checkpoints stored before identities (whole configs,
tests/fixtures/legacy) are still found and loaded."""

import dataclasses
import shutil
from contextlib import closing
from pathlib import Path

import pytest
import torch

from grokterm import config, presets, sweeps
from grokterm.config import IDENTITY_VERSION, LEGACY_FIELDS, RunConfig
from grokterm.experiment.trainer import CheckpointMismatch, Cohort
from grokterm.presets import Preset, load_preset
from grokterm.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "legacy"
# The fixture's cohort, in its order: runs sorted by training-set size, then seed.
LEGACY_RUNS = [dict(p=23, d=32, steps=1200, eval_every=50, n_train=n, seed=s)
               for n in (150, 250) for s in (0, 1)]  # fmt: skip


@pytest.fixture
def fixture_db(tmp_path) -> Path:
    shutil.copy(FIXTURE / "legacy.db", tmp_path)
    return tmp_path / "legacy.db"


@pytest.fixture
def add_grokfast(monkeypatch):
    """Turns RunConfig into what it is once a defaulted field is added (grokfast = 0.0):
    a subclass with the field, the module's DEFAULTS computed over its fields as
    config.py computes them, and presets building runs of it. Returns the new class."""

    def add() -> type:
        extended = dataclasses.make_dataclass(
            "RunConfig", [("grokfast", float, dataclasses.field(default=0.0))],
            bases=(RunConfig,), frozen=True,
        )  # fmt: skip
        defaults = {f.name: f.default for f in dataclasses.fields(extended)}
        monkeypatch.setattr(config, "DEFAULTS", defaults)
        monkeypatch.setattr(presets, "RunConfig", extended)
        return extended

    return add


def test_a_default_config_is_the_version_alone():
    assert RunConfig().identity() == {"version": IDENTITY_VERSION}
    assert RunConfig(d=RunConfig().d).identity() == {"version": IDENTITY_VERSION}


def test_the_fields_not_at_their_default_are_the_identity():
    assert RunConfig(d=32, seed=3).identity() == {"d": 32, "seed": 3, "version": IDENTITY_VERSION}
    assert RunConfig(d=32).identity() != RunConfig(d=64).identity()


def test_a_new_defaulted_field_leaves_identities_and_digests_alone(add_grokfast, fixture_db):
    preset = load_preset(FIXTURE / "legacy.toml")
    digests = preset.digests()
    base = RunConfig(p=23, d=32).identity()
    grokfast = add_grokfast()
    assert (
        grokfast(p=23, d=32).identity() == base == {"p": 23, "d": 32, "version": IDENTITY_VERSION}
    )
    assert grokfast(p=23, d=32, grokfast=0.5).identity() == base | {"grokfast": 0.5}
    assert all(type(s.config) is grokfast for s in preset.expand())
    assert preset.digests() == digests
    with closing(Store.reader(fixture_db)) as store:
        assert sweeps.find_sweep(store, preset, "paper").id == 1  # the legacy sweep, still


def test_legacy_digest_only_while_runs_use_legacy_fields(add_grokfast):
    def preset(run: dict) -> Preset:
        return Preset(path="p.toml", text="", name="p", title="t", figure="", description="",
                      run={"p": 23, "d": 32, "n_train": 150} | run, grid={}, seeds=[0])  # fmt: skip

    plain = preset({})
    digests = plain.digests()
    grokfast = add_grokfast()
    assert plain.digests() == digests and len(digests) == 2 and plain.digests()[0] == plain.digest()
    assert grokfast(p=23).legacy_dict() is not None
    assert set(grokfast(p=23).legacy_dict()) == set(LEGACY_FIELDS)
    # A run of the new option cannot have been stored before identities.
    assert grokfast(p=23, grokfast=0.5).legacy_dict() is None
    new = preset({"grokfast": 0.5})
    assert new.digests() == [new.digest()] and new.digest() != plain.digest()


def test_the_legacy_digest_is_the_one_stored_before_identities(fixture_db):
    preset = load_preset(FIXTURE / "legacy.toml")
    with closing(Store.reader(fixture_db)) as store:
        stored = store.sweep(1).digest
        today, legacy = preset.digests()
        assert legacy == stored and today != stored
        assert sweeps.find_sweep(store, preset, "paper").id == 1


def legacy_state() -> dict:
    return torch.load(FIXTURE / "legacy.db.checkpoints" / "cohort-1.pt", weights_only=True)


def test_a_legacy_checkpoint_loads_into_its_cohort():
    state = legacy_state()
    assert all(set(c) == set(LEGACY_FIELDS) for c in state["configs"])  # whole old configs
    cohort = Cohort([RunConfig(**run) for run in LEGACY_RUNS])
    cohort.load_state_dict(state)
    assert (cohort.step, cohort.last_eval) == (304, 300)
    assert torch.equal(cohort.flat.detach(), state["flat"])
    assert torch.equal(cohort.exp_avg, state["exp_avg"])
    assert torch.equal(cohort.exp_avg_sq, state["exp_avg_sq"])


def test_a_checkpoint_of_another_cohort_is_refused_naming_the_run():
    runs = [dict(run) for run in LEGACY_RUNS]
    runs[2]["seed"] = 7
    cohort = Cohort([RunConfig(**run) for run in runs])
    with pytest.raises(CheckpointMismatch, match="different cohort: run 2 was saved as") as err:
        cohort.load_state_dict(legacy_state())
    assert "'seed': 7" in str(err.value) and cohort.step == 0
    fewer = Cohort([RunConfig(**run) for run in LEGACY_RUNS[:3]])
    with pytest.raises(CheckpointMismatch, match="it has 4 runs, this cohort 3"):
        fewer.load_state_dict(legacy_state())
