"""Hostile user strings through the real report and model card (issue 17), and braces in the
run directory's path: nothing a user wrote becomes markup, a link, a script or a format field."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import mistune
import nbformat
import pandas as pd
import pytest

from audit.model_card import MODEL_CARD
from audit.report import REPORT_HTML, REPORT_NOTEBOOK, render_report
from audit.reporting.escape import html_text, md_text, mpl_text
from audit.testing.sample_run import write_sample_run
from audit.results import GATES, MANIFEST, METRICS

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
LINK = "[x](javascript:alert(1))"
#: Every user-provided string of the sample run, replaced by a hostile one.
HOSTILE = {
    "ViT-B-32/sample": f"vit{IMG}",
    "RN50/sample": "rn`code` {x} {{ $x^2$ *b* _i_",
    "fairface": f"faces{SCRIPT}",
    "Black": f"Bl{LINK}",
    "White": "Wh\n# heading\n| pipe |",
    "Indian": "In\u202eevil\u202c",
    "race": f"ra{SCRIPT}ce",
    "crime": f"cr{IMG}",
    "with_child": f"with{LINK}",
}
PROBE_NAME = f"{SCRIPT}\n# not a heading {{1}}"
DESCRIPTION = f"{IMG} {LINK} | a | b |"
NOTICE = f"{SCRIPT}\nsecond line"
GATE_PREFIX = f"{IMG}{LINK}"


def _swap(value: Any) -> Any:
    if isinstance(value, str):
        for old, new in HOSTILE.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_swap(v) for v in value]
    if isinstance(value, dict):
        return {_swap(k): _swap(v) for k, v in value.items()}
    return value


def _hostile_run(run_dir: Path) -> Path:
    write_sample_run(run_dir, "fairness", n_images=600)
    metrics = pd.read_csv(run_dir / METRICS, keep_default_na=False, na_values=[""])
    for col in ("dataset", "model", "variant", "category", "group_col", "group"):
        metrics[col] = metrics[col].map(_swap)
    # a ratio over a zero rate and a negative interval must not print 'inf' or '--'
    ratio = metrics.index[metrics["metric"] == "disparity_ratio"][0]
    metrics.loc[ratio, ["value", "ci_high"]] = float("inf")
    metrics.to_csv(run_dir / METRICS, index=False)
    manifest = _swap(json.loads((run_dir / MANIFEST).read_text()))
    manifest["probe"].update(name=PROBE_NAME, notice=NOTICE, path="/home/someone/secret/p.yaml")
    manifest["probe"].setdefault("resolved", {})["description"] = DESCRIPTION
    manifest["datasets"][0]["source"] = "/home/someone/photos"
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    gates = _swap(json.loads((run_dir / GATES).read_text()))
    for row in gates.get("results", []) + gates.get("verdicts", []):
        row["gate_id"] = GATE_PREFIX + str(row.get("gate_id"))
    (run_dir / GATES).write_text(json.dumps(gates))
    return run_dir


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # braces in the path: papermill would format '{1}' as a replacement field (issue 17)
    run_dir = _hostile_run(tmp_path_factory.mktemp("hostile") / "exp{1}" / "run{x}")
    render_report(run_dir)
    return run_dir


class _Live(HTMLParser):
    """Collects the elements a browser would act on."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.in_script = False
        self.bad: list[str] = []
        self.headings: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.in_script = True
            self.scripts.append("")
        if any(k.startswith("on") for k in a):
            self.bad.append(f"{tag} with {a}")
        if tag == "img" and not str(a.get("src", "")).startswith("data:image/"):
            self.bad.append(f"img {a}")
        if tag == "a" and str(a.get("href", "")).strip().lower().startswith("javascript:"):
            self.bad.append(f"a {a}")
        if tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_script = False
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self.in_script:
            self.scripts[-1] += data
        if self._heading is not None:
            self._heading.append(data)


def _live(html: str) -> _Live:
    parser = _Live()
    parser.feed(html)
    return parser


@pytest.mark.slow
def test_report_html_has_no_live_markup(hostile: Path) -> None:
    html = (hostile / REPORT_HTML).read_text(encoding="utf-8")
    live = _live(html)
    assert live.bad == []
    assert not [s for s in live.scripts if "alert" in s]
    assert "not a heading" not in " ".join(live.headings[1:])  # the newline made no heading
    assert any(h.startswith("Fairness audit: <script>alert(1)</script>") for h in live.headings)
    # the strings arrive as text, visibly
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\\u202e" in html and "\u202e" not in html


@pytest.mark.slow
def test_report_html_has_no_inf_or_double_dash_ranges(hostile: Path) -> None:
    html = (hostile / REPORT_HTML).read_text(encoding="utf-8")
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    text = re.sub(r"<style.*?</style>", "", text, flags=re.S)
    assert not re.search(r"\binf\b", text, re.I)
    assert not re.search(r"\d\s*[-\u2013]{1,2}\s*-\d", text)  # '-16.2--9.0', '1.0–-2.0'
    assert re.search(r"-\d+\.\d to -?\d+\.\d", text)  # negative intervals read 'a to b'
    assert "undefined (lowest rate 0)" in text


@pytest.mark.slow
def test_notebook_markdown_outputs_are_escaped(hostile: Path) -> None:
    nb = nbformat.read(hostile / REPORT_NOTEBOOK, as_version=4)
    render = mistune.create_markdown(escape=False)  # as nbconvert: raw HTML would pass
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            md = (out.get("data") or {}).get("text/markdown")
            if md:
                live = _live(str(render(md)))
                assert live.bad == [] and not live.scripts, md


@pytest.mark.slow
def test_model_card_has_no_live_markup(hostile: Path) -> None:
    card = (hostile / MODEL_CARD).read_text(encoding="utf-8")
    before_yaml = card.split("Evaluation results")[0]
    for raw in ("<script", "<img", "\u202e"):
        assert raw not in before_yaml
    assert not re.search(r"(?<!\\)\]\(javascript:", before_yaml)  # only escaped brackets
    assert "/home/someone" not in card  # no absolute local path
    live = _live(str(mistune.create_markdown(escape=False, plugins=["table"])(card)))
    assert live.bad == [] and not live.scripts
    assert len([ln for ln in card.splitlines() if ln.startswith("#")]) == 1
    tables = re.findall(r"((?:^\|.*\n)+)", card, flags=re.M)
    for block in tables:
        widths = {len(re.split(r"(?<!\\)\|", ln)) for ln in block.strip().splitlines()}
        assert len(widths) == 1, block  # no cell split by a pipe or a newline
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" not in card  # parentheses left alone
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card


@pytest.mark.parametrize("value", [SCRIPT, IMG, LINK, "a\nb", "|", "`x`", "{x}", "{{", "$a$",
                                   "\u202e", "1. item", "- item", "# h"])
def test_escapers(value: str) -> None:
    md = md_text(value)
    live = _live(str(mistune.create_markdown(escape=False)(f"x {md}")))
    assert live.bad == [] and not live.scripts and "<a " not in str(
        mistune.create_markdown(escape=False)(md))
    assert "\n" not in md and "\n" not in html_text(value) and "<" not in html_text(value)
    assert re.search(r"(?<!\\)\$", mpl_text(value)) is None
    rendered = str(mistune.create_markdown(escape=False)(md))
    assert not re.search(r"<(h\d|ol|ul|code|em|strong)\b", rendered), rendered
