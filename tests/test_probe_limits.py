"""Oversized or hostile probe and label-set files are refused fast, naming the limit and how to raise it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit.cli import main
from tests.conftest import LABEL_SETS, REPO

PROBE = f"""\
name: t
dataset: {{adapter: synthetic_fairface, subgroups: [race]}}
models: [audit-tiny-vit:random]
label_sets: [{LABEL_SETS}/crime.yaml]
categories: [crime]
metrics: [category_rate]
"""


def _validate(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


def test_20_mb_probe_refused_before_parsing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(PROBE + "# " + "x" * 20_000_000 + "\n")
    start = time.perf_counter()
    code, err = _validate(capsys, path)
    assert code == 2
    assert time.perf_counter() - start < 5
    assert "over the limit of 1,000,000" in err and "AUDIT_MAX_PROBE_BYTES" in err


def test_limit_raised_by_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PROBE + "# " + "x" * 1_000_000 + "\n")
    assert _validate(capsys, path)[0] == 2
    monkeypatch.setenv("AUDIT_MAX_PROBE_BYTES", "2000000")
    code, err = _validate(capsys, path)
    assert code == 0, err


def test_long_template_list_refused_with_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PROBE + "templates: [" + ", ".join(["'{}'"] * 10_001) + "]\n")
    code, err = _validate(capsys, path)
    assert code == 2
    assert "templates: the number of items in one list or mapping of a probe is 10,001" in err
    assert "AUDIT_MAX_PROBE_ITEMS" in err


def test_yaml_alias_bomb_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text(PROBE + "\n".join(lines) + "\n")
    start = time.perf_counter()
    code, err = _validate(capsys, path)
    assert code == 2
    assert time.perf_counter() - start < 10
    assert "AUDIT_MAX_YAML_NODES" in err


def test_oversized_label_set_named_under_its_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_MAX_LABEL_SET_BYTES", "100")
    path = tmp_path / "p.yaml"
    path.write_text(PROBE)
    code, err = _validate(capsys, path)
    assert code == 2
    assert f"label_sets[0] ({LABEL_SETS / 'crime.yaml'})" in err and "AUDIT_MAX_LABEL_SET_BYTES" in err


def test_validate_imports_no_torch() -> None:
    probes = [str(p) for p in sorted((REPO / "probes").glob("*.yaml"))]
    code = ("import sys\nfrom audit.cli import main\n"
            f"rc = main(['validate', *{probes!r}])\n"
            "assert rc == 0, rc\n"
            "heavy = [m for m in ('torch', 'open_clip', 'transformers', 'datasets') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
