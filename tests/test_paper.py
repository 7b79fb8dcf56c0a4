"""Figures for a paper (`grokterm show --out`, matplotlib) and exports for data tools
(`grokterm export --format parquet`, pyarrow): files that open, with what the terminal
shows; without the extra, one line saying how to get it."""

import pytest
from conftest import grokterm, without_module
from synth import make_sweep

from grokterm.cli import main

matplotlib = pytest.importorskip("matplotlib", reason='needs the plots extra (".[plots]")')


@pytest.fixture
def db(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32, 64], [2600, 4000], [0, 1, 2])
    return tmp_path / "runs.db"


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_show_out_writes_the_figure_and_its_claims_beside_it(tmp_path, db, suffix, capsys):
    out = tmp_path / f"fig6{suffix}"
    assert main(["show", "--db", str(db), "--width", "90", "--out", str(out)]) == 0
    assert f"wrote {out} and {tmp_path / 'fig6.claims.md'}" in capsys.readouterr().err
    head = out.read_bytes()[:8]
    assert head.startswith({".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix])
    if suffix == ".png":  # one column of a paper: 3.3 x 2.4 inches at 300 dpi
        image = matplotlib.image.imread(out)
        assert image.shape[:2] == (720, 990)
        assert image[..., :3].std() > 0.05  # something drawn, not a blank page
    if suffix == ".svg":  # the lines' names are text, in the legend beside the data
        text = out.read_text()
        assert "n_train=2600" in text and "n_train=4000" in text
    claims = (tmp_path / "fig6.claims.md").read_text().splitlines()
    assert claims[0] == "# Synthetic synth"
    assert claims[2] == "| claim | verdict | numbers | evidence | margin |"


def test_show_out_refuses_what_it_cannot_write_in_one_line(tmp_path, db):
    for target, says in (("fig.jpg", "expected a file ending in .png, .svg, .pdf"),
                         ("nodir/fig.png", "nodir is not a directory")):  # fmt: skip
        result = grokterm("show", "--db", str(db), "--out", target, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip() == f"grokterm: --out: {says}" + (
            ", got 'fig.jpg'" if target == "fig.jpg" else ""
        )
    env = without_module(tmp_path, "matplotlib")
    result = grokterm("show", "--db", str(db), "--out", "fig.png", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        'grokterm: --out: figures for a paper need matplotlib: pip install -e ".[plots]"'
    )
    assert not (tmp_path / "fig.png").exists()


def test_the_terminal_figure_names_each_line_by_a_letter_under_the_plot(db):
    from grokterm.report import report, stored_preset
    from grokterm.store import Store

    store = Store.reader(db)
    sweep = store.sweep(1)
    shown = report(store, stored_preset(sweep), sweep, (), (90, 24))
    plain = [line for line in _plain(shown.figure).splitlines() if line.strip()]
    legend = plain[-1]  # under the plot, not over its data
    assert "a n_train=2600 (. 95% band)" in legend and "b n_train=4000 (. 95% band)" in legend
    body = "\n".join(plain[:-1])
    assert "a" in body and "b" in body  # each line drawn with its own letter
    ticks = plain[-3]  # the x axis is ticked at the sizes trained, d = 8, 32, 64
    assert ticks.split() == ["8", "32", "64"]


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


pyarrow = pytest.importorskip("pyarrow", reason='needs the parquet extra (".[parquet]")')
pandas = pytest.importorskip("pandas")


@pytest.mark.parametrize("metrics", [False, True])
def test_parquet_export_reads_back_as_the_csv_does_with_typed_columns(tmp_path, db, metrics):
    extra = ["--metrics"] if metrics else []
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "x.parquet"), *extra]) == 0
    assert main(["export", "--db", str(db), "--csv", str(tmp_path / "x.csv"), *extra]) == 0
    table = pandas.read_parquet(tmp_path / "x.parquet")
    from_csv = pandas.read_csv(tmp_path / "x.csv")
    assert list(table.columns) == list(from_csv.columns)
    assert len(table) == len(from_csv) == (18 * 21 if metrics else 18)
    for column in table.columns:
        if from_csv[column].isna().all():  # CSV cannot type an empty column; Parquet does
            assert table[column].isna().all()
            continue
        assert table[column].dtype == from_csv[column].dtype, column
        pandas.testing.assert_series_equal(table[column], from_csv[column], check_exact=False,
                                           rtol=1e-12)  # fmt: skip
    schema = pyarrow.parquet.read_schema(tmp_path / "x.parquet")
    assert str(schema.field("d").type) == "int64" and str(schema.field("val_acc").type) == "double"
    if not metrics:
        assert str(schema.field("split_ffn").type) == "bool"
        assert str(schema.field("fit_step").type) == "int64"  # nullable: not a float
        assert str(schema.field("label").type) == "string"


def test_parquet_without_pyarrow_says_how_to_get_it(tmp_path, db):
    env = without_module(tmp_path, "pyarrow")
    result = grokterm("export", "--db", str(db), "--out", "x.parquet", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        'grokterm: --out: Parquet export needs pyarrow: pip install -e ".[parquet]"'
    )
    both = grokterm("export", "--db", str(db), "--csv", "x.csv", "--format", "parquet",
                    cwd=tmp_path)  # fmt: skip
    assert both.returncode == 2 and "--csv writes CSV" in both.stderr
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.parquet").exists()
