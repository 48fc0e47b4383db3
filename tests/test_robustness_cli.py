"""``audit robustness``: the CLI function on real published numbers and on malformed tables."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pytest

from audit.errors import EXIT_OK, EXIT_USER, UserError
from audit.robustness import ROBUSTNESS_COLUMNS, SHIFTS, add_robustness_parser, robustness_main
from audit.robustness import tables as T

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference"
OPENCLIP = SHARED / "openclip_results.csv"
OPENCLIP_COLUMNS = {"ImageNet 1k": "imagenet", "ImageNet v2": "imagenet_v2",
                    "ImageNet Sketch": "imagenet_sketch", "ImageNet-R": "imagenet_r",
                    "ImageNet-A": "imagenet_a", "ObjectNet": "objectnet"}

GOOD = "model,dataset,top1\nm,imagenet,0.70\nm,imagenet_v2,0.60\n"


def write(tmp_path: Path, text: str, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_error(path: Path, baseline: Path | None = None) -> UserError:
    with pytest.raises(UserError) as info:
        robustness_main(path, None, baseline)
    assert info.value.exit_code == EXIT_USER
    return info.value


def test_openclip_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not OPENCLIP.is_file():
        pytest.skip(f"{OPENCLIP} not available")
    wide = pd.read_csv(OPENCLIP)
    wide["model"] = wide["name"] + ":" + wide["pretrained"]
    long = wide.melt(id_vars="model", value_vars=list(OPENCLIP_COLUMNS), var_name="dataset",
                     value_name="top1").replace({"dataset": OPENCLIP_COLUMNS})
    table, out = write(tmp_path, long.to_csv(index=False)), tmp_path / "sub" / "robustness.csv"
    assert robustness_main(table, out, None) == EXIT_OK
    printed = capsys.readouterr().out
    assert "Baseline fits" in printed and "ViT-L-14-336:openai" in printed
    assert "r: low fit r" in printed and f"wrote {out}" in printed
    got = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert tuple(got.columns) == ROBUSTNESS_COLUMNS
    assert len(got) == len(wide) * len(SHIFTS)
    assert [p.name for p in out.parent.iterdir()] == ["robustness.csv"]   # no temp file left
    openai = got[got["model"] == "ViT-L-14-336:openai"].set_index("dataset")
    assert (openai["effective_robustness_pts"] > 5).all()
    # Zero-shot CLIP-style models are, as a family, above the standard-model line.
    assert (got.groupby("dataset")["effective_robustness_pts"].median() > 0).all()
    assert got.loc[got["dataset"] == "imagenet_a", "note"].str.contains("low fit r").all()
    # the input's top1 is a fraction; the output is in points throughout
    x = long.set_index(["model", "dataset"])["top1"]
    assert got["top1_pts"].to_numpy() == pytest.approx(
        [100 * x[(m, d)] for m, d in zip(got["model"], got["dataset"])], abs=1e-9, nan_ok=True)


def test_prints_without_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert robustness_main(write(tmp_path, GOOD), None, None) == EXIT_OK
    printed = capsys.readouterr().out
    assert "imagenet_v2" in printed and "wrote" not in printed
    assert list(tmp_path.iterdir()) == [tmp_path / "table.csv"]


def test_custom_baseline_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(tmp_path, "model,imagenet,imagenet_v2,citation\n"
                 "a,0.6,0.5,x\nb,0.7,0.6,x\nc,0.8,0.7,x\n", "base.csv")
    out = tmp_path / "out.csv"
    assert robustness_main(write(tmp_path, GOOD), out, base) == EXIT_OK
    assert f"Baseline: {base} (3 models)" in capsys.readouterr().out
    assert pd.read_csv(out)["fit_n"].tolist() == [3]


def test_parser_helper(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="audit")
    add_robustness_parser(parser.add_subparsers(dest="command"))
    table = write(tmp_path, GOOD)
    args = parser.parse_args(["robustness", str(table), "--out", str(tmp_path / "o.csv"),
                              "--n-bootstrap", "50", "--seed", "3"])
    assert (args.table, args.baseline, args.n_bootstrap) == (table, None, 50)
    assert args.func(args) == EXIT_OK
    assert (tmp_path / "o.csv").is_file()


# --------------------------------------------------------------------------- malformed input


def test_missing_file(tmp_path: Path) -> None:
    err = run_error(tmp_path / "nope.csv")
    assert "robustness table not found" in str(err)


def test_missing_columns(tmp_path: Path) -> None:
    err = run_error(write(tmp_path, "model,dataset,acc\nm,imagenet,0.7\n"))
    assert T.NOT_A_TABLE.format(what=tmp_path / "table.csv", kind="robustness") in str(err)
    missing = T.MISSING_COLUMNS.format(missing="'top1'", found="model, dataset, acc")
    assert "columns: " + missing in str(err)
    assert "fix: give one row per model and dataset" in str(err)


def test_percent_values_get_a_hint(tmp_path: Path) -> None:
    err = run_error(write(tmp_path, "model,dataset,top1\nm,imagenet,76.2\nm,objectnet,72.3\n"))
    text = str(err)
    assert "line 2, column top1: " + T.OUT_OF_RANGE.format(value=76.2) in text
    assert "line 3, column top1: " + T.OUT_OF_RANGE.format(value=72.3) in text
    assert "(2 problems)" in text
    assert "fix: " + T.FIX_PERCENT in text


def test_unknown_dataset_did_you_mean(tmp_path: Path) -> None:
    err = run_error(write(tmp_path, "model,dataset,top1\nm,imagenet,0.7\nm,ImageNet-R,0.5\n"
                          "m,cifar10,0.9\n"))
    text = str(err)
    assert "line 3, column dataset: " + T.UNKNOWN_DATASET.format(
        name="ImageNet-R", hint=" -- did you mean 'imagenet_r'?") in text
    assert "line 4, column dataset: unknown dataset 'cifar10' (known: imagenet" in text


def test_model_without_imagenet(tmp_path: Path) -> None:
    err = run_error(write(tmp_path, "model,dataset,top1\na,imagenet,0.7\nb,imagenet_v2,0.5\n"))
    assert "model 'b': " + T.NO_IMAGENET.format(imagenet="imagenet") in str(err)


def test_duplicates(tmp_path: Path) -> None:
    err = run_error(write(tmp_path, GOOD + "m,imagenet_v2,0.61\n"))
    dup = T.DUPLICATE.format(first="line 3", model="m", dataset="imagenet_v2")
    assert "line 4: " + dup in str(err)


def test_every_problem_listed_at_once(tmp_path: Path) -> None:
    err = run_error(write(tmp_path, "model,dataset,top1\na,imagenet,abc\n,imagenet_v2,0.5\n"
                          "b,imagenet_x,1.5\n"))
    fields = [p.field for p in err.problems]
    assert fields == ["line 2, column top1", "line 3, column model", "line 4, column dataset",
                      "line 4, column top1", "model 'b'"]
    assert T.NOT_A_NUMBER.format(value="abc") in str(err)
    assert "fix: " + T.FIX_ROWS in str(err)      # 1.5 alone does not look like a percent


def test_empty_table(tmp_path: Path) -> None:
    assert T.EMPTY_TABLE in str(run_error(write(tmp_path, "model,dataset,top1\n")))


def test_bad_baseline(tmp_path: Path) -> None:
    base = write(tmp_path, "model,imagenet,imagenet_v2\na,60,50\nb,70,60\n", "base.csv")
    err = run_error(write(tmp_path, GOOD), base)
    assert T.NOT_A_TABLE.format(what=base, kind="baseline") in str(err)
    assert "line 2, column imagenet: 60 is outside [0, 1]" in str(err)
    assert "fix: " + T.FIX_PERCENT in str(err)
    no_shift = write(tmp_path, "model,imagenet\na,0.6\n", "b2.csv")
    err = run_error(write(tmp_path, GOOD), no_shift)
    assert "columns: " + T.BASELINE_NO_SHIFT.format(shifts=", ".join(SHIFTS)) in str(err)


def test_input_fractions_output_points(tmp_path: Path) -> None:
    # issue 16: the input table's top1 is a fraction; robustness.csv is in points throughout
    out = tmp_path / "robustness.csv"
    assert robustness_main(write(tmp_path, GOOD), out, None) == EXIT_OK
    got = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert tuple(got.columns) == ROBUSTNESS_COLUMNS
    row = got.iloc[0]
    assert (row.top1_pts, row.imagenet_top1_pts) == pytest.approx((60.0, 70.0))
    assert row.relative_robustness_pts == pytest.approx(-10.0)
    assert row.effective_robustness_pts == pytest.approx(row.top1_pts - row.baseline_top1_pts)
    assert row.eff_rob_low_pts <= row.effective_robustness_pts <= row.eff_rob_high_pts
