"""Nothing a user types or a disk does destroys data or prints a traceback: each case
through the real CLI gives one line naming the file or option and the problem, a
non-zero exit, and every file as it was, byte for byte."""

import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from conftest import TINY, grokterm, write_preset

from grokterm.store import Store

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "results" / "quick.db"
DEMO = ROOT / "presets" / "demo.toml"


# What SQLite makes beside a good WAL store on any read of it; a bad store gets none.
JOURNALS = {"v.db-shm", "v.db-wal", "runs.db-shm", "runs.db-wal"}


def snapshot(folder: Path) -> dict:
    """Every file under a folder with its bytes (but a good store's journal files)."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in JOURNALS)
    return {p.relative_to(folder): p.read_bytes() for p in files}


def one_line_error(result, *parts: str, status: int = 2) -> str:
    """The command failed with one line on stderr, no traceback, naming each part."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status, result.stdout + result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("grokterm"), lines[0]
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "v.db"
    shutil.copy(QUICK, path)
    return path


# -- 1. export onto the database ------------------------------------------------------


@pytest.mark.parametrize("target", ["v.db", "./v.db", "v.db-wal", "v.db-shm", "link.db"])
def test_export_onto_the_database_is_refused_and_the_database_is_untouched(tmp_path, db, target):
    (tmp_path / "link.db").symlink_to(db)
    before = db.read_bytes()
    result = grokterm("export", "--db", "v.db", "--csv", target, cwd=tmp_path)
    one_line_error(result, f"--csv: {target}", "is the database")
    assert db.read_bytes() == before
    assert len(Store.reader(db).runs(1)) > 0


def test_a_failed_export_leaves_the_file_that_was_there(tmp_path, db, monkeypatch):
    from grokterm import export

    out = tmp_path / "out.csv"
    out.write_text("yesterday's export\n")

    def half(table, stream):
        stream.write("sweep_id,run_id\n1,")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(export.FORMATS, "csv", half)
    store = Store.reader(db)
    with pytest.raises(export.ExportError, match="out.csv: cannot be written .No space left"):
        export.export_to(store, store.sweep(1), out)
    assert out.read_text() == "yesterday's export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "target, says",
    [(".", "is a folder"), ("nodir/x.csv", "the folder nodir does not exist"),
     ("/dev/full", "No space left on device")],
)  # fmt: skip
def test_export_to_a_target_that_cannot_be_written_is_one_line(tmp_path, db, target, says):
    if target == "/dev/full" and not Path(target).exists():
        pytest.skip("no /dev/full here")
    before = snapshot(tmp_path)
    result = grokterm("export", "--db", "v.db", "--csv", target, cwd=tmp_path)
    one_line_error(result, "--csv", says)
    assert snapshot(tmp_path) == before


# -- 2. stores that cannot be used as asked -------------------------------------------


def _bad_stores(tmp_path: Path, db: Path) -> dict[str, Path]:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all\n" * 10)
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(db.read_bytes()[:5000])
    newer = tmp_path / "newer.db"
    shutil.copy(db, newer)
    with closing(sqlite3.connect(newer)) as conn:
        conn.execute("PRAGMA user_version = 7")
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE notes (text)")
    return {"not a database": garbage, "truncated": truncated, "newer grokterm": newer,
            "not a grokterm store": other}  # fmt: skip


@pytest.mark.parametrize("command", ["ls", "show", "export", "run", "relabel"])
def test_a_bad_store_is_refused_with_one_line_and_left_as_it_was(tmp_path, db, command):
    preset = write_preset(tmp_path)
    for says, path in _bad_stores(tmp_path, db).items():
        before = snapshot(tmp_path)
        args = {"ls": ["ls"], "show": ["show"], "export": ["export", "--csv", "x.csv"],
                "run": ["run", str(preset)], "relabel": ["relabel"]}[command]  # fmt: skip
        result = grokterm(*args, "--db", path.name, cwd=tmp_path)
        one_line_error(result, path.name, says)
        assert snapshot(tmp_path) == before, says  # no journal made beside it, nothing changed


def test_a_new_store_records_its_schema_version(tmp_path):
    with closing(Store(tmp_path / "runs.db")) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_training_into_a_read_only_file_or_folder_or_none_is_refused(tmp_path, db):
    preset = write_preset(tmp_path)
    db.chmod(0o444)
    before = snapshot(tmp_path)
    result = grokterm("run", str(preset), "--db", "v.db", cwd=tmp_path)
    one_line_error(result, "v.db: read-only")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    result = grokterm("run", str(preset), "--db", "locked/runs.db", cwd=tmp_path)
    one_line_error(result, "the folder locked is read-only")
    result = grokterm("run", str(preset), "--db", "missing/runs.db", cwd=tmp_path)
    one_line_error(result, "the folder missing does not exist")
    result = grokterm("run", str(preset), "--db", "a" * 300 + ".db", cwd=tmp_path)
    one_line_error(result, "file name too long")
    assert snapshot(tmp_path) == before
    folder.chmod(0o755)


def test_reading_commands_work_on_a_store_in_a_read_only_folder(tmp_path, db):
    folder = tmp_path / "results"
    folder.mkdir()
    shutil.move(db, folder / "quick.db")
    folder.chmod(0o555)
    before = snapshot(tmp_path)
    try:
        ls = grokterm("ls", "--db", "results/quick.db", cwd=tmp_path)
        assert ls.returncode == 0 and "fig3" in ls.stdout, ls.stderr
        show = grokterm("show", "--db", "results/quick.db", "fig3", "--width", "70", cwd=tmp_path)
        assert show.returncode == 0 and "claim" in show.stdout, show.stderr
        out = tmp_path / "out.csv"
        export = grokterm("export", "--db", "results/quick.db", "--csv", str(out), cwd=tmp_path)
        assert export.returncode == 0, export.stderr
        out.unlink()
        assert snapshot(tmp_path) == before  # not even a journal file beside it
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    "args, says",
    [(["show", "²"], "no sweep '²'"),
     (["show", "99999999999999999999"], "no sweep '99999999999999999999'"),
     (["export", "--sweep", "99999999999999999999", "--csv", "-"], "--sweep: no sweep")],
)  # fmt: skip
def test_sweep_references_that_name_nothing_are_one_line(tmp_path, db, args, says):
    one_line_error(grokterm(*args, "--db", "v.db", cwd=tmp_path), says)


def test_a_preset_that_is_not_utf8_is_one_line(tmp_path):
    preset = tmp_path / "latin1.toml"
    preset.write_bytes('name = "caf\u00e9"\ntitle = "x"\n'.encode("latin-1"))
    result = grokterm("run", str(preset), "--dry-run", cwd=tmp_path)
    one_line_error(result, "latin1.toml: file: expected UTF-8 text, got byte 0xe9")


@pytest.mark.parametrize(
    "name, value", [("GROKTERM_LEASE_S", "abc"), ("GROKTERM_FLUSH_S", "-1"),
                    ("GROKTERM_CHECKPOINT_S", "nan"), ("GROKTERM_BUSY_TIMEOUT_S", "0")],
)  # fmt: skip
def test_a_bad_timing_variable_is_one_line_before_anything_starts(tmp_path, name, value):
    preset = write_preset(tmp_path)
    result = grokterm("run", str(preset), cwd=tmp_path, env={name: value})
    one_line_error(result, f"{name}: expected a positive number of seconds, got {value!r}")
    assert not (tmp_path / "runs.db").exists()


# -- 6. values that must not be accepted -------------------------------------------------


@pytest.mark.parametrize(
    "args, says",
    [(["--cohort-size", "0"], "--cohort-size: expected a positive integer, got '0'"),
     (["--cohort-size", "-1"], "--cohort-size: expected a positive integer, got '-1'"),
     (["--workers", "1000"], f"--workers: expected at most {os.cpu_count()}")],
)  # fmt: skip
def test_impossible_option_values_are_one_line(tmp_path, args, says):
    preset = write_preset(tmp_path)
    one_line_error(grokterm("run", str(preset), "--dry-run", *args, cwd=tmp_path), says)


def test_an_error_in_a_scale_names_the_scale_key(tmp_path):
    preset = write_preset(tmp_path, TINY + "[scale.broken]\nsteps = 0\n")
    result = grokterm("run", str(preset), "--dry-run", "--scale", "broken", cwd=tmp_path)
    one_line_error(result, "tiny.toml: scale.broken.steps: expected a positive integer, got 0")
    fixed = write_preset(tmp_path, TINY + "[scale.broken.grid]\nd = [0]\n", "grid.toml")
    result = grokterm("run", str(fixed), "--dry-run", "--scale", "broken", cwd=tmp_path)
    one_line_error(result, "grid.toml: scale.broken.grid.d: expected a positive integer, got 0")


# -- 7. the app's export names ------------------------------------------------------------


@pytest.mark.parametrize("name", ["../escaped", "a/b", "..", "/etc/passwd"])
def test_the_apps_export_stays_in_the_working_folder(tmp_path, monkeypatch, name):
    from synth import make_sweep

    from grokterm.tui.app import GroktermApp

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    db = tmp_path / "runs.db"
    make_sweep(db, [8], [100], 1, steps=200, name=name)
    app = GroktermApp(db, ROOT / "presets")
    app.notify = lambda *a, **k: None  # not running: nothing to show it on
    paths = app.export_sweep(1)
    assert len(paths) == 2 and all(p.parent == work and p.exists() for p in paths)
    assert snapshot(tmp_path).keys() == {Path("runs.db"), *(Path("work") / p.name for p in paths)}


# -- 8. huge presets -----------------------------------------------------------------------


MILLION = "[grid]\n" + "\n".join(
    f"{key} = [{', '.join(str(v) for v in values)}]"
    for key, values in {"d": range(8, 808, 8), "n_train": range(1, 101),
                        "lr": [i / 1e3 for i in range(1, 101)]}.items()
)  # fmt: skip


@pytest.mark.parametrize(
    "text, says",
    [('seeds = 1000000000000\n', "seeds: expected at most 100,000 (a sweep's runs at most), got 1,000,000,000,000"),
     (MILLION, "grid: 1,000,000 runs (points x grid x seeds); expected at most 100,000"),
     ("[run]\nd = 1000000000000000000000000000000\n", "run.d: expected at most 65,536"),
     ("[scale.quick]\nseeds = 1000000000000\n", "scale.quick.seeds: expected at most 100,000")],
)  # fmt: skip
def test_a_preset_too_big_to_expand_is_one_line_before_expanding(tmp_path, text, says):
    preset = write_preset(tmp_path, f'name = "huge"\ntitle = "huge"\n{text}')
    one_line_error(grokterm("run", str(preset), "--dry-run", cwd=tmp_path), says)


def test_a_dry_run_of_many_runs_prints_a_summary_not_a_line_per_run(tmp_path):
    axes = {"n_train": range(20, 120), "lr": [i / 1e4 for i in range(1, 101)]}
    grid = "\n".join(f"{k} = [{', '.join(map(str, v))}]" for k, v in axes.items())
    preset = write_preset(tmp_path, f'name = "many"\ntitle = "10,000 runs"\n[run]\np = 17\nsteps = 10\n[grid]\n{grid}\n')  # fmt: skip
    result = grokterm("run", str(preset), "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("many (paper): 10000 runs in ")
    assert len(lines) < 20 and "more cohorts (--verbose lists every cohort" in lines[-1]


def test_readers_opened_and_closed_keep_this_processs_connections_current(tmp_path):
    """Closing a descriptor of runs.db drops every SQLite lock the process holds on it: a
    worker exiting then believes it is the last user and removes the journal, and this
    process reads a stale copy from then on (the app stopped seeing new workers).
    Opening and closing readers, as the app's threads do every poll, must not do that."""
    import subprocess
    import sys

    db = tmp_path / "runs.db"
    store = Store(db)
    code = ("import sys; from grokterm.store import Store; Store(sys.argv[1]).register_worker(1, "
            "'cpu'); print('registered', flush=True); sys.stdin.readline()")  # fmt: skip

    def worker() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", code, str(db)], text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        assert proc.stdout.readline().strip() == "registered"
        return proc

    first = worker()
    for _ in range(3):
        Store.reader(db).close()
    first.communicate("\n", timeout=30)  # it exits
    second = worker()
    assert [w.id for w in store.workers(1)] == [1, 2]
    second.communicate("\n", timeout=30)


def test_every_shipped_sweep_is_shown_without_a_traceback(tmp_path):
    """`show` on each sweep of results/quick.db, the calibration sweeps too (one whose
    grid fixes d in [run] died in D_crit with a KeyError)."""
    with closing(Store.reader(QUICK)) as store:
        ids = [c.sweep.id for c in store.sweeps()]
    for sweep_id in ids:
        result = grokterm("show", str(sweep_id), "--db", str(QUICK), "--width", "80", cwd=tmp_path)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (
            sweep_id,
            result.stderr,
        )
