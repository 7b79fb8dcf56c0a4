"""Preset files: parsing, scales, grid expansion, and one clear line for bad input."""

import hashlib
import shutil
from pathlib import Path

import pytest
from conftest import TINY, grokterm, write_preset

from grokterm.presets import PresetError, load_preset

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_preset_expands_grid_times_seeds(tiny):
    preset = load_preset(tiny)
    specs = preset.expand()
    assert [s.key for s in specs] == [
        "n_train=80 seed=0", "n_train=80 seed=1", "n_train=120 seed=0", "n_train=120 seed=1",
    ]  # fmt: skip
    assert all(s.config.d == 16 and s.config.p == 17 and s.config.steps == 200 for s in specs)
    assert specs[2].grid == {"n_train": 120, "seed": 0}


def test_scale_overrides_run_fields_grid_and_seeds(tmp_path):
    path = write_preset(tmp_path, TINY + "\n[scale.quick.grid]\nn_train = [50]\n")
    quick = load_preset(path).at_scale("quick")
    specs = quick.expand()
    assert [s.key for s in specs] == ["n_train=50 seed=0"]
    assert specs[0].config.steps == 60
    with pytest.raises(PresetError, match="scale: expected one of paper, quick, got 'huge'"):
        load_preset(path).at_scale("huge")


@pytest.mark.parametrize(
    "claim, message",
    [
        ('kind = "final"\nvalue = 0.5', "claims[0].op: a final claim needs it"),
        ('kind = "final"\nop = "=="\nvalue = 0.5', "claims[0].op: expected one of >=, <=, >, <, got '=='"),
        ('kind = "vibes"', "claims[0].kind: expected one of label, final,"),
        ('kind = "label"\nlabel = "grokking"\nwhere = 3', "claims[0].where: expected a table"),
        ('kind = "final"\nop = ">="\nvalue = 0.5\nmetric = "val_los"',
         "claims[0].metric: expected one of the series train_loss, train_acc, val_loss, val_acc,"),
        ('kind = "label"\nlabel = "grokking"\nwher = {d = 8}', "claims[0].wher: unknown key;"),
    ],
)  # fmt: skip
def test_a_claim_that_cannot_be_checked_is_a_preset_error(tmp_path, claim, message):
    path = write_preset(tmp_path, TINY + f"\n[[claims]]\n{claim}\n")
    with pytest.raises(PresetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_preset(path)


def test_every_shipped_preset_parses_at_every_scale():
    paths = sorted((ROOT / "presets").rglob("*.toml"))  # calibration/ included
    assert paths, "presets/ is empty"
    for path in paths:
        preset = load_preset(path)
        for scale in preset.scale_names:
            assert preset.at_scale(scale).expand()


BAD = [
    ('[grid]\nn_train = "abc"', 'grid.n_train: expected a list of positive integers, got "abc"'),
    (
        "[grid]\nn_train = []",
        "grid.n_train: expected a non-empty list of positive integers, got []",
    ),
    ("[grid]\nd = [30]", "grid.d: expected a multiple of n_heads (4), got 30"),
    (
        "[grid]\nn_train = [20000]",
        "grid.n_train: expected at most 289 (all pairs for p=17), got 20000",
    ),
    ("[run]\nsteps = -5", "run.steps: expected a positive integer, got -5"),
    ("[run]\nhidden = 3", "run.hidden: unknown run field; expected one of task, p,"),
    ('[run]\nlr = "fast"', 'run.lr: expected a number, got "fast"'),
    (
        '[run]\ntask = "divide"',
        "run.task: expected one of add, square, sub, mul, div, memorize, multitask, got 'divide'",
    ),
    ("colour = 1", "colour: unknown key; expected one of"),
    ("seeds = 0", "seeds: expected a positive count or a list of non-negative integers, got 0"),
]


def _bad_preset(tmp_path: Path, change: str) -> Path:
    """The tiny preset with one table replaced or one key added."""
    text = TINY.replace("[grid]\nn_train = [80, 120]\n", "")
    text = text.replace("seeds = [0, 1]\n", "") if change.startswith("seeds") else text
    if change.startswith("[run]"):
        key = change.split("\n")[1].split(" =")[0]
        text = "\n".join(line for line in text.split("\n") if not line.startswith(f"{key} = "))
        text = text.replace("[run]\n", change + "\n", 1)
    elif change.startswith("[grid]"):
        text = text.replace("[scale.quick]", change + "\n\n[scale.quick]")
    else:
        text = change + "\n" + text
    return write_preset(tmp_path, text, "bad.toml")


@pytest.fixture(scope="module")
def finished_db(tmp_path_factory) -> Path:
    """A database holding one finished sweep, made once for the module."""
    directory = tmp_path_factory.mktemp("db")
    tiny = write_preset(directory)
    result = grokterm("run", str(tiny), "--scale", "quick", "--db", "runs.db", cwd=directory)
    assert result.returncode == 0, result.stderr
    return directory / "runs.db"


@pytest.mark.parametrize("change, message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_preset_one_line_exit_2_database_untouched(tmp_path, finished_db, change, message):
    shutil.copy(finished_db, tmp_path / "runs.db")
    before = hashlib.sha256((tmp_path / "runs.db").read_bytes()).hexdigest()
    bad = _bad_preset(tmp_path, change)
    result = grokterm("run", str(bad), "--db", "runs.db", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"grokterm: {bad}: ")
    assert message in lines[0]
    assert hashlib.sha256((tmp_path / "runs.db").read_bytes()).hexdigest() == before


def test_bad_preset_creates_no_database(tmp_path):
    bad = _bad_preset(tmp_path, "[grid]\nd = [30]")
    assert grokterm("run", str(bad), cwd=tmp_path).returncode == 2
    assert not (tmp_path / "runs.db").exists()


def test_missing_file_and_invalid_toml(tmp_path):
    result = grokterm("run", "nope.toml", cwd=tmp_path)
    assert result.returncode == 2 and "grokterm: nope.toml: file: cannot be read" in result.stderr
    broken = write_preset(tmp_path, "name = [", "broken.toml")
    result = grokterm("run", str(broken), cwd=tmp_path)
    assert result.returncode == 2 and f"{broken}: toml: not valid TOML" in result.stderr
    assert not (tmp_path / "runs.db").exists()


def test_unknown_scale_is_a_clear_error(tmp_path, tiny):
    result = grokterm("run", str(tiny), "--scale", "huge", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"grokterm: {tiny}: scale: expected one of paper, quick, got 'huge'"
    )


PAPER_RUNS = {"fig2": 4, "fig3": 847, "fig4": 21, "fig5": 5, "fig6": 660, "fig7": 165,
              "fig8": 84, "fig9": 6, "fig10": 36}  # fmt: skip


def test_figure_presets_expand_to_the_papers_run_counts():
    for name, runs in PAPER_RUNS.items():
        preset = load_preset(ROOT / "presets" / f"{name}.toml")
        assert preset.figure == name[3:]
        assert len(preset.expand()) == runs, name
        assert "quick" in preset.scale_names and preset.claims, name
        assert len(preset.at_scale("quick").expand()) < runs or name in ("fig2", "fig5")


def test_fig8_ladder_runs_from_one_layer_d64_to_eight_layers_d1024():
    specs = load_preset(ROOT / "presets" / "fig8.toml").expand()
    multi = [s.config for s in specs if s.config.n_mem > 0]
    sizes = sorted({(c.n_layers, c.d) for c in multi})
    assert sizes[0] == (1, 64) and sizes[-1] == (8, 1024)
    assert {c.n_mem for c in multi} == {3000, 4000, 5000, 6000}
    single = min(c.n_params for c in multi if (c.n_layers, c.d) == (1, 64))
    biggest = max(c.n_params for c in multi)
    assert 1000 < biggest / single < 2500  # the paper's ~1570x spans this ladder


def test_points_cross_the_grid_and_name_bad_keys(tmp_path):
    text = TINY.replace("[run]", "points = [{d = 8}, {d = 12}]\n\n[run]")
    specs = load_preset(write_preset(tmp_path, text)).expand()
    assert len(specs) == 2 * 2 * 2 and specs[0].key == "d=8 n_train=80 seed=0"
    bad = write_preset(
        tmp_path, TINY.replace("[run]", "points = [{d = 8}, {d = 30}]\n\n[run]"), "b.toml"
    )
    with pytest.raises(PresetError, match=r"points\[1\]\.d: expected a multiple of n_heads"):
        load_preset(bad)


def test_fig1_is_a_view_and_run_says_what_to_do(tmp_path):
    result = grokterm("run", str(ROOT / "presets" / "fig1.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "drawn from the fig3 and fig4 sweeps; run those" in result.stderr
    assert not (tmp_path / "runs.db").exists()


def test_a_claim_or_plot_naming_an_unknown_series_stops_show_with_one_line(tmp_path, finished_db):
    """Before, `show` died with a KeyError traceback (and the app's Figure tab crashed)."""
    shutil.copy(finished_db, tmp_path / "runs.db")
    for extra, key in [('\n[[claims]]\nkind = "final"\nop = ">="\nvalue = 0.5\nmetric = "val_los"\n',
                        "claims[0].metric"),
                       ('\n[plot]\nkind = "final"\nx = "n_train"\nmetric = "val_los"\n', "plot.metric")]:  # fmt: skip
        path = write_preset(tmp_path, TINY + extra)
        result = grokterm("show", str(path), "--scale", "quick", cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.strip().splitlines() == [
            f"grokterm: {path}: {key}: expected one of the series train_loss, train_acc, "
            "val_loss, val_acc, norm, train_add_acc, train_mem_acc, fourier_gini, "
            "restricted_loss, excluded_loss, softmax_collapse, got 'val_los'"
        ]


def test_the_modelwise_preset_is_davies_et_al_setting_at_paper_scale():
    """x / y mod 97 on half the pairs, 2 layers, 1 head, post-LayerNorm, minibatches of
    512, AdamW at their code's defaults, 3e5 steps; quick is smaller and has its claims."""
    preset = load_preset(ROOT / "presets" / "modelwise.toml")
    paper = preset.expand()
    assert sorted({s.config.d for s in paper}) == [8, 16, 32, 64, 128, 256, 512]
    c = paper[0].config
    assert (c.task, c.p, c.train_size, c.pairs) == ("div", 97, 4656, 9312)
    assert (c.n_layers, c.n_heads, c.layernorm, c.batch_size) == (2, 1, True, 512)
    assert (c.lr, c.weight_decay, c.beta1, c.beta2, c.warmup, c.steps) == (
        1e-3,
        1e-5,
        0.9,
        0.98,
        0,
        300_000,
    )
    quick = preset.at_scale("quick").expand()
    assert len(quick) < len(paper) and {s.config.p for s in quick} == {47}
    assert {claim.kind for claim in preset.claims} == {"final", "range"}
