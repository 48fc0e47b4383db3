"""Malformed probes and label sets: exit 2, the field path in the message, no traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from audit.cli import main
from tests.conftest import LABEL_SETS, REPO

GOOD = f"""
name: t
dataset:
  adapter: fairface
  source: ./data
  subgroups: [race, gender]
models: [ViT-B-32:openai]
label_sets: [{LABEL_SETS}/fairface_race_gender.yaml, {LABEL_SETS}/crime.yaml]
categories: [crime]
metrics: [category_rate]
"""


def write(tmp_path: Path, text: str, name: str = "probe.yaml") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)  # GOOD's dataset.source must exist
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def validate(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def test_good_probe_validates(tmp_path, capsys):
    code, out = validate(capsys, write(tmp_path, GOOD))
    assert code == 0, out
    assert "ok:" in out


def test_shipped_probes_validate(capsys):
    probes = sorted((REPO / "probes").glob("*.yaml"))
    assert probes
    assert main(["validate", *map(str, probes)]) == 0, capsys.readouterr().err


CASES = [
    ("invalid yaml", "name: [unclosed\n", ["not valid YAML", "line 2, column 1"]),
    ("empty file", "", ["is empty"]),
    ("wrong top-level type", "- a\n- b\n", ["expected a mapping", "list"]),
    ("unknown top-level key", GOOD + "subgroup: [race]\n", ["unknown key 'subgroup'"]),
    ("unknown nested key", GOOD.replace("  subgroups:", "  subgrops:"),
     ["dataset.subgrops: unknown key 'subgrops' -- did you mean 'subgroups'?"]),
    ("unknown key in list item", GOOD + "gates:\n  - {type: max_rate, category: crime, threshold: 0.1, treshold: 1}\n",
     ["gates[0].treshold: unknown key", "did you mean 'threshold'?"]),
    ("wrong type", GOOD + "seed: abc\n", ["seed:", "integer"]),
    ("wrong type nested", GOOD + "stats: {min_n: many}\n", ["stats.min_n:"]),
    ("missing required", GOOD.replace("metrics: [category_rate]\n", ""), ["metrics: required field is missing"]),
    ("unknown dataset", GOOD.replace("adapter: fairface", "adapter: fairfcae"),
     ["dataset.adapter: unknown dataset adapter 'fairfcae' -- did you mean 'fairface'?"]),
    ("unknown subgroup column", GOOD.replace("[race, gender]", "[race, ethnicity]"),
     ["dataset.subgroups[1]: column 'ethnicity' is not in dataset fairface", "age, gender, race"]),
    ("unknown model tag", GOOD.replace("ViT-B-32:openai", "ViT-B-32:opneai"),
     ["models[0].id:", "did you mean 'openai'?"]),
    ("unknown model arch", GOOD.replace("ViT-B-32:openai", "ViT-B-23:openai"),
     ["models[0].id:", "did you mean 'ViT-B-32'?"]),
    ("unknown metric", GOOD.replace("[category_rate]", "[category_rte]"),
     ["metrics[0].name: unknown metric 'category_rte' -- did you mean 'category_rate'?"]),
    ("unknown gate", GOOD + "gates:\n  - {type: max_rte, category: crime, threshold: 0.1}\n",
     ["gates[0]", "max_rte"]),
    ("unknown category", GOOD.replace("categories: [crime]", "categories: [crme]"),
     ["categories[0]: unknown category 'crme' -- did you mean 'crime'?"]),
    ("missing label-set file", GOOD.replace("crime.yaml", "nope.yaml"),
     ["label_sets[1]: label-set file not found"]),
    ("template without placeholder", GOOD + "templates: ['a photo of a person']\n",
     ["templates:", "exactly one placeholder"]),
    ("template with wrong field", GOOD + "templates: ['a photo of a {label}']\n", ["templates:", "'{}'"]),
    ("yaml boolean key", GOOD + "gates:\n  - {type: max_rate, category: crime, threshold: 0.1, on: upper}\n",
     ["gates[0]"]),
    ("bad gate group_col", GOOD + "gates:\n  - {type: max_rate, category: crime, threshold: 0.1, group_col: age}\n",
     ["gates[0].group_col: 'age' is not a declared subgroup"]),
]


@pytest.mark.parametrize("text,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_probe(tmp_path, capsys, text, needles):
    path = write(tmp_path, text)
    code, out = validate(capsys, path)
    assert code == 2, out
    assert str(path) in out
    for needle in needles:
        assert needle in out, out
    assert "Traceback" not in out


def test_all_problems_listed_at_once(tmp_path, capsys):
    text = GOOD.replace("adapter: fairface", "adapter: fairfcae").replace("[category_rate]", "[category_rte]")
    code, out = validate(capsys, write(tmp_path, text))
    assert code == 2
    assert "(2 problems)" in out
    assert "dataset.adapter" in out and "metrics[0].name" in out


LABELS_OK = "name: x\nversion: 1\nlabels:\n  - {text: a, category: c}\n"


@pytest.mark.parametrize("body,needle", [
    ("name: x\nversion: 1\nlabels:\n  - {text: a, category: c}\n  - {text: a, category: c}\n", "duplicate label 'a'"),
    ("name: x\nversion: 1\nlabels: []\n", "label set is empty"),
    ("name: x\nversion: 1\nlabels:\n  - {text: a, category: 'bad|cat'}\n", "must be a plain name"),
    ("name: x\nlabels:\n  - {text: a, category: c}\n", "version: required field is missing"),
    ("name: x\nversion: 1\nlabels:\n  - {txt: a, category: c}\n", "labels[0].txt: unknown key 'txt' -- did you mean 'text'?"),
], ids=["duplicate", "empty", "bad category", "no version", "typo"])
def test_malformed_label_set(tmp_path, capsys, body, needle):
    ls = tmp_path / "ls.yaml"
    ls.write_text(body)
    probe = write(tmp_path, GOOD.replace(f"{LABEL_SETS}/crime.yaml", str(ls)).replace("categories: [crime]", ""))
    code, out = validate(capsys, probe)
    assert code == 2, out
    assert needle in out, out
    assert "label_sets[1]" in out
    assert "Traceback" not in out


def test_duplicate_labels_across_sets(tmp_path, capsys):
    ls = tmp_path / "dup.yaml"
    ls.write_text("name: dup\nversion: 1\nlabels:\n  - {text: thief, category: crime}\n")
    probe = write(tmp_path, GOOD.replace("crime.yaml]", f"crime.yaml, {ls}]"))
    code, out = validate(capsys, probe)
    assert code == 2
    assert "label 'thief' is in both crime and dup" in out


def test_missing_probe_file(tmp_path, capsys):
    code, out = validate(capsys, tmp_path / "nope.yaml")
    assert code == 2 and "probe file not found" in out


def test_validate_subprocess_no_traceback_no_torch(tmp_path):
    """The real command line, as users run it: exit 2, message on stderr, torch never imported."""
    bad = write(tmp_path, GOOD.replace("[category_rate]", "[category_rte]"))
    code = (
        "import sys, runpy; sys.argv=['audit','validate',%r];"
        "\ntry:\n  runpy.run_module('audit', run_name='__main__')\n"
        "except SystemExit as e:\n  print('torch' in sys.modules, file=sys.stderr); raise\n" % str(bad)
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2
    assert "did you mean 'category_rate'" in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().endswith("False"), "validate must not import torch"


def test_bad_cli_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "probes/demo.yaml", "--limit", "zero"])
    assert exc.value.code == 2
    assert "expected an integer" in capsys.readouterr().err


def test_list_shows_registries_without_torch():
    code = ("import sys; from audit.cli import main; rc = main(['list']); "
            "print('TORCH', 'torch' in sys.modules); sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    for needle in ("fairface", "HuggingFaceM4/FairFace", "category_rate", "max_retrieval_skew",
                   "fairface_race_gender v1, 14 labels", "TORCH False"):
        assert needle in res.stdout
