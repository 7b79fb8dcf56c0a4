"""`grokterm show`: the figure from stored runs, then the claims table."""

from conftest import TINY, grokterm, write_preset

CLAIMED = (
    TINY
    + """
[[claims]]
kind = "final"
where = {n_train = 120}
op = ">="
value = 0.0
text = "validation is a number"

[[claims]]
kind = "label"
where = {n_train = 80}
label = "grokking"
text = "tiny runs grok"

[[claims]]
kind = "label"
where = {n_train = 999}
label = "grokking"
text = "no such runs"
"""
)


def test_show_draws_curves_and_checks_claims(tmp_path):
    preset = write_preset(tmp_path, CLAIMED)
    assert grokterm("run", str(preset), "--workers", "2", cwd=tmp_path).returncode == 0
    result = grokterm(
        "show", "--width", "100", "--height", "20", cwd=tmp_path, env={"COLUMNS": "140"}
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sweep 1: Tiny test sweep (paper), 4 of 4 runs finished" in out
    # where the numbers came from: float32 curves repeat bit for bit only there
    assert "sweep 1 trained on " in out and ", engine auto (2 workers)" in out
    assert "(upper case: validation)" in out and "parameter norm" in out
    assert "n_train=80 seed=0" in out and "1e2" in out  # legend, log-step ticks
    assert "the paper's claims" in out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 3}
    assert "reproduced" in lines["validation is a number"]
    assert "not enough" in lines["no such runs"]
    assert "not reproduced" in lines["tiny runs grok"]


def test_show_final_plot_and_by_preset_path(tmp_path):
    text = CLAIMED + '\n[plot]\nkind = "final"\nx = "n_train"\n'
    preset = write_preset(tmp_path, text)
    assert grokterm("run", str(preset), cwd=tmp_path).returncode == 0
    result = grokterm("show", str(preset), "--width", "90", cwd=tmp_path, env={"COLUMNS": "140"})
    assert result.returncode == 0, result.stderr
    assert "final val_acc (mean, 95% band)" in result.stdout
    missing = grokterm("show", "nope", cwd=tmp_path)
    assert missing.returncode == 2  # a positional argument, not --sweep
    assert (
        missing.stderr
        == "grokterm: runs.db: no sweep 'nope' (grokterm ls --db runs.db lists them)\n"
    )
    # A claim added to the file is checked on the stored sweep, without training again.
    preset.write_text(
        text + '\n[[claims]]\nkind = "final"\nop = "<="\nvalue = 1.0\ntext = "added later"\n'
    )
    again = grokterm("show", str(preset), "--width", "90", cwd=tmp_path, env={"COLUMNS": "140"})
    assert again.returncode == 0 and "added later" in again.stdout, again.stderr
    assert "sweep 1:" in again.stdout
    quick = grokterm("show", str(preset), "--scale", "quick", cwd=tmp_path)
    assert quick.returncode == 2 and "no sweep of this preset at scale 'quick'" in quick.stderr


def test_show_by_preset_path_picks_the_sweep_of_its_runs(tmp_path):
    """A later sweep of the same preset with another grid does not hide the one whose
    runs the file describes; a grid no sweep has trained shows the newest."""
    first = write_preset(tmp_path, TINY)
    wider = write_preset(tmp_path, TINY.replace("[80, 120]", "[80, 100]"), "wider.toml")
    for preset in (first, wider):
        run = grokterm("run", str(preset), "--scale", "quick", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
    edited = write_preset(tmp_path, TINY.replace("[80, 120]", "[90]"), "edited.toml")
    for preset, sweep in ((first, 1), (wider, 2), (edited, 2)):
        shown = grokterm("show", str(preset), "--scale", "quick", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert f"sweep {sweep}: Tiny test sweep (quick)" in shown.stdout


def test_relabel_recomputes_stored_labels_from_the_curves(tmp_path, capsys):
    from factory import dynamics_info
    from synth import make_sweep

    from grokterm.cli import main
    from grokterm.store import Store

    db = tmp_path / "runs.db"
    make_sweep(db, [8, 64], [2600, 4000], 2)
    store = Store(db)
    before = {r.id: r.label for r in store.runs(1)}
    old = dynamics_info("not learned")  # labels written by an older version's rules
    store.set_labels({i: old for i in (1, 2, 3)})
    points_before = store.points(1)
    assert main(["relabel", "--db", str(db)]) == 0
    changed = [i for i in (1, 2, 3) if before[i] != "not learned"]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sweep 1 (synth): 8 runs labelled, {len(changed)} labels changed"
    runs = store.runs(1)
    assert {r.id: r.label for r in runs} == before
    # each change on a line: the run, old -> new, and the numbers that decide the new one
    for line, run in zip(out[1:], (r for r in runs if r.id in changed), strict=True):
        assert line.startswith(f"  {run.key}: not learned -> {run.info.shown}: ")
        assert f"validation ends at {run.info.final_val:.3f}" in line or "by step" in line
    assert main(["relabel", "--all", "--db", str(db)]) == 0
    assert capsys.readouterr().out == "sweep 1 (synth): 8 runs labelled, 0 labels changed\n"
    assert all(r.info.last_step == 2000 for r in runs)
    assert store.points(1) == points_before  # the curves stay as they are


def test_show_draws_a_sweep_still_training_from_what_is_there(tmp_path, capsys):
    """Unfinished runs are drawn at their latest evaluation, and the axis says so;
    claims still wait for finished runs."""
    from synth import make_sweep

    from grokterm.cli import main

    make_sweep(tmp_path / "part.db", [8, 64], [2600, 4000], 1, finish=False)
    assert main(["show", "--db", str(tmp_path / "part.db"), "--width", "100"]) == 0
    out = capsys.readouterr().out
    assert "0 of 4 runs finished" in out
    assert "n_train=2600" in out and "n_train=4000" in out  # a line per data size
    assert "unfinished runs at their latest step" in out

    make_sweep(tmp_path / "done.db", [8, 64], [2600, 4000], 1)
    assert main(["show", "--db", str(tmp_path / "done.db"), "--width", "100"]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 runs finished" in out and "n_train=2600" in out
    assert "unfinished" not in out


def test_emergence_figure_ticks_the_ladders_rungs():
    """A quick ladder can lie inside one decade of model size, so the axis names the
    rungs (213k and 820k parameters for fig 10 quick), not the decades."""
    from factory import run

    from grokterm.figures import draw

    runs = [run(d, 1400, 0, v, grid={"d": d, "split_ffn": split, "seed": 0}, task="multitask",
                p=59, n_mem=1400, split_ffn=split)
            for d, split, v in [(128, True, 0.36), (256, True, 0.83), (128, False, 0.05),
                                (256, False, 0.44)]]  # fmt: skip
    out = draw({"kind": "emergence", "series": "split_ffn"}, runs, {}, (80, 16))
    assert "213k" in out and "820k" in out
    assert "split_ffn=True" in out and "split_ffn=False" in out


def test_show_with_pools_the_runs_of_sweeps_that_train_the_same_settings(tmp_path, capsys):
    """More seeds trained later, in a sweep of their own, join the figure and the claims;
    a sweep of other settings (here another budget) is left out, and says so."""
    from synth import make_sweep

    from grokterm.cli import main

    db = str(tmp_path / "runs.db")
    make_sweep(db, [32], [2600, 4000], [0], name="base")
    make_sweep(db, [32], [2600, 4000], [0, 1, 2], name="seeds")
    make_sweep(db, [32], [2600], [3], steps=1000, name="shorter")
    assert main(["show", "1", "--with", "seeds", "--with", "3", "--db", db, "--width", "90"]) == 0
    out = capsys.readouterr().out
    assert "sweep 1 + sweep 2 (seeds): 4 runs added, 2 already here, 0 of other" in out
    assert "sweep 1 + sweep 3 (shorter): 0 runs added, 0 already here, 1 of other" in out
    assert "final val_acc (mean, 95% band)" in out

    assert main(["show", "1", "--with", "9", "--db", db]) == 2
    assert "--with: no sweep '9'" in capsys.readouterr().err
