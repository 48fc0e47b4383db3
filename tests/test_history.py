"""``audit history``: one long table over many runs, trend plots per gate, escaped user strings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from audit.cli import main
from audit.results import METRIC_COLUMNS
from tests.compare_fixtures import predictions, spec, write_run

EVIL = "<script>alert(1)</script>"


def test_history_over_three_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gates = [{"type": "max_rate", "category": "crime", "group_col": "race", "threshold": 0.2, "id": EVIL}]
    dirs = [write_run(tmp_path / f"night{i}", predictions("m1", model_seed=i), fingerprint="fp0",
                      probe=spec(gates), created=f"2026-12-0{i + 1}T00:00:00+00:00") for i in range(3)]
    assert main(["history", *map(str, reversed(dirs)), "--out", str(tmp_path / "h")]) == 0
    table = pd.read_csv(tmp_path / "h" / "history.csv", keep_default_na=False, na_values=[""])
    assert tuple(table.columns[-len(METRIC_COLUMNS):]) == METRIC_COLUMNS
    assert list(dict.fromkeys(table["run"])) == [str(d) for d in dirs]  # time order
    per_group = table[table["metric"].isin(["category_rate", "accuracy"])]  # disparity names its extreme pair
    points = per_group.groupby(["model", "metric", "category", "group_col", "group"], dropna=False).size()
    assert len(points) == 12 and (points == 3).all()
    for d in dirs:
        own = pd.read_csv(d / "metrics.csv", keep_default_na=False, na_values=[""])
        mine = table[table["run"] == str(d)]
        assert mine["value"].tolist() == pytest.approx(own["value"].tolist(), nan_ok=True)
    assert set(table["weights"]) == {"sha256:m1"} and set(table["dataset_revision"]) == {"r1"}
    page = (tmp_path / "h" / "history.html").read_text()
    assert EVIL not in page and html_escaped(EVIL) in page and page.count("data:image/png;base64,") == 1


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_history_of_a_non_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", str(tmp_path)]) == 2
    assert "missing manifest.json" in capsys.readouterr().err
