"""Report rendering end to end: papermill runs the templates on hand-made run directories."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from audit.errors import DataError, UserError
from audit.report import (
    REPORT_HTML,
    REPORT_NOTEBOOK,
    TEMPLATES,
    notebook_dir,
    render_report,
    report_main,
    strip_remote,
)
from audit.reporting.display import NOT_COMPUTED
from audit.testing.sample_run import NOTICE, write_sample_run
from audit.results import GATES, METRICS, ROBUSTNESS

REMOTE_TAG = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*['\"]?(?:https?:)?//", re.I)


@pytest.fixture(scope="module")
def fairness_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = write_sample_run(tmp_path_factory.mktemp("fair") / "run", "fairness")
    render_report(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def robustness_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = write_sample_run(tmp_path_factory.mktemp("rob") / "run", "robustness")
    render_report(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only overall category rates, one variant, no gates: every other section must skip."""
    run_dir = write_sample_run(tmp_path_factory.mktemp("sparse") / "run", "fairness", notice=None)
    metrics = pd.read_csv(run_dir / METRICS)
    keep = (metrics["metric"] == "category_rate") & (metrics["group_col"] == "overall") & (
        metrics["variant"] == "default")
    metrics[keep].to_csv(run_dir / METRICS, index=False)
    (run_dir / GATES).unlink()
    render_report(run_dir)
    return run_dir


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list[nbformat.NotebookNode]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind]


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for c in nb.cells:
        if c.cell_type == "markdown":
            parts.append(c.source)
        for o in c.get("outputs", []):
            data = o.get("data", {})
            parts += [data.get("text/markdown", ""), data.get("text/html", ""), o.get("text", "")]
    return "\n".join(parts)


@pytest.mark.parametrize("which", ["fairness_run", "robustness_run", "sparse_run"])
def test_notebook_runs_clean_with_injected_parameters(which: str, request: pytest.FixtureRequest) -> None:
    run_dir: Path = request.getfixturevalue(which)
    nb = nbformat.read(run_dir / REPORT_NOTEBOOK, as_version=4)
    assert _outputs(nb, "error") == []
    assert not [o for o in _outputs(nb, "stream") if o.name == "stderr"]
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert f"run_dir = {str(run_dir.resolve())!r}" in injected[0].source \
        or f'run_dir = "{run_dir.resolve()}"' in injected[0].source


@pytest.mark.parametrize("which, min_figures", [("fairness_run", 8), ("robustness_run", 2)])
def test_html_is_self_contained(which: str, min_figures: int, request: pytest.FixtureRequest) -> None:
    html = (request.getfixturevalue(which) / REPORT_HTML).read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= min_figures
    assert not REMOTE_TAG.search(html)
    assert "https://cdn" not in html and "<script src=" not in html
    assert "rp.show_gates" not in html and "load_run(run_dir)" not in html  # code is hidden


def test_fairness_report_content(fairness_run: Path) -> None:
    nb = nbformat.read(fairness_run / REPORT_NOTEBOOK, as_version=4)
    text = _text(nb)
    assert f"Notice: {NOTICE}" in text
    assert "## Verdict: blocked: 3 gates failed (exit 1)" in text
    assert text.index("## Verdict") < text.index("Category rates by subgroup")
    assert "CLIP paper" in text and "24.4%" in text  # Table 6: crime, Indian
    for heading in ("Release gates", "Intersections", "Template sensitivity", "Provenance"):
        assert heading in text
    assert "val/99998.jpg" in text  # skipped images listed
    assert NOT_COMPUTED not in text
    pngs = [o for o in _outputs(nb, "display_data") if "image/png" in o.data]
    # gate forest + 3 subgroup columns + heatmap + variant comparison (one per category, 3)
    # + 3 accuracy + templates
    assert len(pngs) == 12


def test_sparse_run_skips_sections(sparse_run: Path) -> None:
    text = _text(nbformat.read(sparse_run / REPORT_NOTEBOOK, as_version=4))
    assert "no gates.json in this run" in text
    for section in ("Intersections (e.g. race x gender)", "Prompt variants",
                    "Accuracy by subgroup", "Template sensitivity"):
        assert f"**{section}:** {NOT_COMPUTED}." in text
    assert "Notice:" not in text
    assert (sparse_run / REPORT_HTML).exists()


def test_robustness_report_content(robustness_run: Path) -> None:
    text = _text(nbformat.read(robustness_run / REPORT_NOTEBOOK, as_version=4))
    assert "imagenet_sketch" in text and "effective robustness (pts)" in text
    assert "low fit r" in text  # the run's notes reach the table
    assert NOT_COMPUTED not in text


def test_robustness_without_table_skips(tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path / "run", "robustness")
    (run_dir / ROBUSTNESS).unlink()
    from audit.reporting import load_run, plot_effective_robustness, plot_effective_robustness_scatter

    run = load_run(run_dir)
    assert plot_effective_robustness_scatter(run) is None
    assert plot_effective_robustness(run) is None


def test_failing_cell_raises_data_error_and_keeps_notebook(tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path / "run", "fairness")
    (run_dir / REPORT_HTML).write_text("stale")
    (run_dir / METRICS).write_text('dataset,model\n"unterminated\n')
    with pytest.raises(DataError) as info:
        render_report(run_dir)
    err = info.value
    assert err.exit_code == 3
    nb = nbformat.read(run_dir / REPORT_NOTEBOOK, as_version=4)
    index = int(re.search(r"failed in cell (\d+) ", err.message).group(1))
    assert nb.cells[index].source.startswith("import audit.reporting as rp")
    assert re.search(r"\(In \[3\]: 'import audit.reporting as rp'\): DataError: cannot read ", err.message)
    assert "metrics.csv" in err.message
    assert not (run_dir / REPORT_HTML).exists()
    nb = nbformat.read(run_dir / REPORT_NOTEBOOK, as_version=4)
    errors = _outputs(nb, "error")
    assert errors and errors[0].ename == "DataError"
    assert not list(run_dir.glob(".*.tmp")) and not list(run_dir.glob(".report*"))


def test_results_files_untouched_by_rendering(tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path / "run", "fairness")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    from audit.model_card import write_model_card

    write_model_card(run_dir)
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name in before}
    assert before == after


def test_report_main_rerenders(fairness_run: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr("audit.report.render_report",
                        lambda run_dir: calls.append(run_dir) or Path(run_dir) / REPORT_HTML)
    assert report_main(fairness_run) == 0
    assert calls == [fairness_run]
    assert "report.html" in capsys.readouterr().out


def test_unknown_kind_and_missing_dir(tmp_path: Path, fairness_run: Path) -> None:
    with pytest.raises(UserError, match="unknown report kind 'fairnes' -- did you mean 'fairness'"):
        render_report(fairness_run, kind="fairnes")
    with pytest.raises(UserError, match="run directory not found"):
        render_report(tmp_path / "nope")


def test_probe_report_notebooks_chooses_template(tmp_path: Path) -> None:
    from audit.report import templates_for

    run_dir = write_sample_run(tmp_path / "run", "fairness")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert templates_for(run_dir) == [notebook_dir() / TEMPLATES["fairness"]]
    manifest["probe"]["resolved"]["report"] = {"notebooks": ["robustness"]}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    assert templates_for(run_dir) == [notebook_dir() / TEMPLATES["robustness"]]
    assert templates_for(run_dir, "fairness") == [notebook_dir() / TEMPLATES["fairness"]]


def test_probe_notebooks_are_the_paths_the_probe_resolved(tmp_path: Path) -> None:
    """A notebook path is taken relative to the probe file, as the loader resolved it; the
    template folder is not searched by file name (only kinds name templates)."""
    from audit.report import templates_for

    run_dir = write_sample_run(tmp_path / "run", "fairness")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    probe_dir = tmp_path / "probes"
    probe_dir.mkdir()
    custom = probe_dir / "mine.ipynb"
    custom.write_text(nbformat.writes(nbformat.v4.new_notebook()))
    manifest["probe"]["path"] = str(probe_dir / "p.yaml")
    for names, expected in ((["mine.ipynb"], [custom]), ([str(custom)], [custom])):
        manifest["probe"]["resolved"]["report"] = {"notebooks": names}
        (run_dir / "manifest.json").write_text(json.dumps(manifest))
        assert templates_for(run_dir) == expected
    manifest["probe"]["resolved"]["report"] = {"notebooks": [TEMPLATES["fairness"]]}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="not found"):
        templates_for(run_dir)


@pytest.mark.parametrize("name", sorted(TEMPLATES.values()))
def test_templates_have_one_parameters_cell(name: str) -> None:
    nb = nbformat.read(notebook_dir() / name, as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "run_dir" in tagged[0].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert max(len(s.splitlines()) for s in code) <= 6  # cells are short calls


def test_strip_remote() -> None:
    html = ('<link rel="stylesheet" href="https://x.org/a.css"><script src="http://a/b.js"></script>'
            "<script src=''></script><script>var a = 1;</script><script src='//cdn.x/y.js'></script>"
            '<script type="module">await import("https://cdnjs.x/m.mjs")</script><p>ok</p>')
    assert strip_remote(html) == "<script>var a = 1;</script><p>ok</p>"
