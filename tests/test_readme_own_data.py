"""The README's "Audit your own data" example, run as written (files and commands taken from the
README itself), with the random-weight model it suggests for trying the steps offline."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
OFFLINE_MODEL = "audit-tiny-vit:random"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Audit your own data")
    return text[start:text.index("\n## ", start + 1)]


def _blocks() -> list[tuple[str, str]]:
    """(language, code) of each fenced block of the section, dedented."""
    return [(lang, textwrap.dedent(code)) for lang, code in
            re.findall(r"^ *```(\w+)\n(.*?)^ *```", _section(), flags=re.S | re.M)]


def test_readme_example_files_are_named() -> None:
    names = [code.splitlines()[0] for lang, code in _blocks() if lang in ("python", "yaml")]
    assert names == ["# make_my_photos.py: 40 small images and the attributes of each",
                     "# my_labels.yaml", "# my_audit.yaml"]
    assert OFFLINE_MODEL in _section()


@pytest.mark.slow
def test_readme_example_runs_to_a_report(tmp_path: Path) -> None:
    blocks = _blocks()
    for lang, code in blocks:
        if lang in ("python", "yaml"):
            name = code.splitlines()[0].removeprefix("# ").split(":")[0]
            (tmp_path / name).write_text(code, encoding="utf-8")
    commands = [ln for lang, code in blocks if lang == "bash" for ln in code.splitlines() if ln]
    assert len(commands) == 3
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AUDIT_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(README.parent)}
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "python"
        argv[0] = sys.executable
        if argv[1:4] == ["-m", "audit", "run"]:
            argv += ["--model", OFFLINE_MODEL]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    run = tmp_path / "runs" / "mine"
    metrics = pd.read_csv(run / "metrics.csv")
    rates = metrics[(metrics["metric"] == "category_rate") & (metrics["variant"] == "default")]
    assert set(rates["group_col"]) >= {"overall", "skin_tone", "age_group"}
    assert set(rates.loc[rates["group_col"] == "skin_tone", "group"]) == {"lighter", "darker"}
    assert (rates.loc[rates["group_col"] == "overall", "n"] == 40).all()
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Verdict" in html and "skin_tone" in html
    assert "Evaluation: my\\_audit" in (run / "model_card.md").read_text(encoding="utf-8")
