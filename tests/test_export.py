"""``audit export``: DataComp's eval_results.jsonl and clip_benchmark's result JSON.

The DataComp oracle is DataComp's own evaluators rebuilt on the ``wilds`` package
(:mod:`tests.wilds_oracle`), run on the same predictions; the clip_benchmark numbers are checked
against sklearn/numpy from predictions.parquet (and, opt-in, against ``clip_benchmark eval``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from audit.cli import main
from audit.export import clip_benchmark_results, datacomp_lines, wds_name

MODEL = "ViT-B-32:openai"
RACES = ["black", "white", "indian", "latino", "middle eastern", "southeast asian", "east asian"]


def write_run(run: Path, frames: list[pd.DataFrame], records: list[dict[str, Any]]) -> Path:
    run.mkdir(parents=True)
    pd.concat(frames, ignore_index=True).to_parquet(run / "predictions.parquet")
    manifest = {"probe": {"name": "synthetic", "resolved": {"variants": {"default": {}}}}, "datasets": records}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def classification(rng: np.random.Generator, n: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets and top-5 predictions (distinct labels) that hold the target about half the time."""
    target = rng.integers(0, n_classes, n)
    top5 = np.stack([rng.permutation(n_classes)[:5] for _ in range(n)])
    for i in np.flatnonzero(rng.random(n) < 0.5):
        if target[i] not in top5[i]:
            top5[i, rng.integers(0, 5)] = target[i]
    return target, top5


def single_frame(name: str, target: np.ndarray, top5: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    names = np.array([f"class {i}" for i in range(int(max(target.max(), top5.max())) + 1)], dtype=object)
    return pd.DataFrame({
        "dataset": name, "model": MODEL, "variant": "default", "image_id": [f"s{i:07d}" for i in range(len(target))],
        **{k: v.astype(str) for k, v in columns.items()},
        "target": names[target], "target_index": target, "top1_label": names[top5[:, 0]],
        "top1_category": "class", "top5_labels": [list(names[r]) for r in top5], "top1_score": 1.0,
        "correct": top5[:, 0] == target, "top5_correct": (top5 == target[:, None]).any(axis=1)})


def assert_same(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        if value is None:  # e.g. main_metric of a task without one
            assert ours[key] is None, key
        elif isinstance(value, float) and math.isnan(value):
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-7), key


def clip_benchmark_part(target: np.ndarray, top5: np.ndarray) -> dict[str, float]:
    return {"acc1": float((top5[:, 0] == target).mean()), "acc5": float((top5 == target[:, None]).any(1).mean()),
            "mean_per_class_recall": float(balanced_accuracy_score(target, top5[:, 0]))}


def test_dollar_street_and_geode_equal_datacomp(tmp_path: Path) -> None:
    oracle = pytest.importorskip("tests.wilds_oracle")
    rng = np.random.default_rng(0)
    n = 240
    # income_ds code 2 never occurs: WILDS still makes the group (empty: NaN, count 0)
    ds_meta = np.stack([rng.choice([0, 1, 3], n), rng.integers(0, 9, n), rng.integers(0, 5, n)], axis=1)
    ds_target, ds_top5 = classification(rng, n, 12)
    geo_meta = np.stack([rng.integers(0, 6, n), rng.integers(0, 20, n)], axis=1)
    geo_target, geo_top5 = classification(rng, n, 8)
    frames = [single_frame("dollar_street", ds_target, ds_top5, {"income_ds": ds_meta[:, 0], "region": ds_meta[:, 2]}),
              single_frame("geode", geo_target, geo_top5, {"region": geo_meta[:, 0]})]
    records = [{"name": "dollar_street", "source": "djghosh/wds_dollar_street_test", "extra": {}},
               {"name": "geode", "source": str(tmp_path / "local_geode"), "extra": {}}]
    lines = datacomp_lines(write_run(tmp_path / "run", frames, records))
    assert [(x["key"], x["dataset"]) for x in lines] == [("fairness/dollar_street", "Dollar Street"),
                                                         ("fairness/geode", "GeoDE")]
    want = {**clip_benchmark_part(ds_target, ds_top5), **oracle.dollar_street(ds_top5, ds_target, ds_meta)}
    want["main_metric"] = want["acc_top5_wg"]
    assert_same(lines[0]["metrics"], want)
    assert math.isnan(lines[0]["metrics"]["acc_top5_income_ds:2"]) and lines[0]["metrics"]["count_income_ds:2"] == 0
    want = {**clip_benchmark_part(geo_target, geo_top5), **oracle.geode(geo_top5[:, 0], geo_target, geo_meta)}
    want["main_metric"] = want["acc_wg"]
    assert_same(lines[1]["metrics"], want)


def face_frames(rng: np.random.Generator, n: int) -> tuple[list[pd.DataFrame], np.ndarray, np.ndarray]:
    meta = np.stack([rng.integers(0, 9, n), rng.integers(0, 2, n), rng.integers(0, 7, n)], axis=1)
    meta = np.concatenate([meta, (meta[:, 2] != 1)[:, None].astype(int)], axis=1)
    y_pred = np.stack([rng.integers(0, 7, n), rng.integers(0, 2, n), rng.integers(0, 9, n),
                       rng.integers(0, 21, n)], axis=1)
    binary = np.array(["white", "non-white"], dtype=object)[meta[:, 3]]
    race = np.array(RACES, dtype=object)[meta[:, 2]]
    gender = np.array(["male", "female"], dtype=object)[meta[:, 1]]
    base = {"model": MODEL, "variant": "default", "image_id": [f"s{i:07d}" for i in range(n)]}
    toxic = np.where(y_pred[:, 3] >= 18, "crime", np.where(y_pred[:, 3] >= 14, "non_human", "race_gender"))
    frames = [
        pd.DataFrame({**base, "dataset": "fairface_race", "race_binary": binary,
                      "correct": (y_pred[:, 0] != 1).astype(int) == meta[:, 3]}),
        pd.DataFrame({**base, "dataset": "fairface_gender", "race_binary": binary, "race": race, "gender": gender,
                      "correct": y_pred[:, 1] == meta[:, 1]}),
        pd.DataFrame({**base, "dataset": "fairface_age", "race_binary": binary, "correct": y_pred[:, 2] == meta[:, 0]}),
        pd.DataFrame({**base, "dataset": "fairface_toxic", "race": race, "top1_category": toxic}),
    ]
    return frames, y_pred, meta


def test_fairface_equals_datacomp(tmp_path: Path) -> None:
    oracle = pytest.importorskip("tests.wilds_oracle")
    frames, y_pred, meta = face_frames(np.random.default_rng(1), 300)
    names = {"race": RACES, "gender": ["male", "female"], "race_binary": ["white", "non-white"]}
    records = [{"name": f"fairface_{o}", "source": "djghosh/wds_fairface_test",
                "extra": {"objective": o, "metadata_names": names}} for o in ("race", "gender", "age", "toxic")]
    records[0].update(target="race_binary", extra={**records[0]["extra"], "collapse_names": ["white", "non-white"]})
    (line,) = datacomp_lines(write_run(tmp_path / "run", frames, records))
    assert (line["key"], line["dataset"]) == ("fairness/fairface", "FairFace")
    want = {**oracle.faces(y_pred, meta), "main_metric": None}
    assert_same(line["metrics"], want)
    assert "acc_gender_x_race:2_gender:1" in line["metrics"] and "toxicity_crime_race:3" in line["metrics"]


def test_fairface_missing_objective_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames, _, _ = face_frames(np.random.default_rng(2), 20)
    records = [{"name": f"fairface_{o}", "source": "x", "extra": {"objective": o, "metadata_names": {}}}
               for o in ("race", "gender")]
    run = write_run(tmp_path / "run", frames[:2], records)
    assert main(["export", str(run), "--format", "datacomp"]) == 2
    err = capsys.readouterr().err
    assert "no FairFace dataset for objective(s) ['age', 'toxic']" in err and "Traceback" not in err


def test_clip_benchmark_export_schema_and_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    target, top5 = classification(rng, 150, 10)
    records = [{"name": "cars", "source": "clip-benchmark/wds_cars", "extra": {}}]
    run = write_run(tmp_path / "run", [single_frame("cars", target, top5, {})], records)
    out = tmp_path / "cb.json"
    assert main(["export", str(run), "--format", "clip_benchmark", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result) == ["dataset", "model", "pretrained", "task", "metrics", "language"]
    assert result["dataset"] == "wds/cars" and result["model"] == "ViT-B-32" and result["pretrained"] == "openai"
    assert result["task"] == "zeroshot_classification" and result["language"] == "en"
    assert result["metrics"] == pytest.approx(clip_benchmark_part(target, top5), rel=1e-12)
    assert clip_benchmark_results(run)[0] == result


def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "nope"), "--format", "datacomp"]) == 2
    rng = np.random.default_rng(4)
    target, top5 = classification(rng, 20, 6)
    frame = single_frame("cars", target, top5, {})
    run = write_run(tmp_path / "run", [frame, frame.assign(model="other")],
                    [{"name": "cars", "source": "x", "extra": {}}])
    assert main(["export", str(run), "--format", "clip_benchmark"]) == 2
    assert "choose one with --model" in capsys.readouterr().err
    assert main(["export", str(run), "--format", "datacomp", "--model", "other"]) == 2
    assert "holds no DataComp fairness dataset" in capsys.readouterr().err
    # FairFace read by the fairface adapter (probes/fairface_accuracy.yaml) is not DataComp's task
    run2 = write_run(tmp_path / "run2", [frame.assign(dataset="fairface_race")],
                     [{"name": "fairface_race", "adapter": "fairface", "source": "HuggingFaceM4/FairFace"}])
    assert main(["export", str(run2), "--format", "datacomp"]) == 2
    assert "holds no DataComp fairness dataset" in capsys.readouterr().err


@pytest.mark.parametrize(("source", "name"), [("clip-benchmark/wds_cars", "wds/cars"),
                                              ("djghosh/wds_geode_test", "wds/geode"),
                                              ("/data/wds_vtab-cifar10/", "wds/vtab-cifar10")])
def test_wds_name(source: str, name: str) -> None:
    assert wds_name(source) == name


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").environ.get("CLIP_BENCHMARK_PYTHON"),
                    reason="opt-in: set CLIP_BENCHMARK_PYTHON to a python with clip_benchmark 1.6.2 "
                           "(see benchmarks/README.md, vs_clip_benchmark.py)")
def test_clip_benchmark_export_equals_clip_benchmark_eval(tmp_path: Path) -> None:
    """The same job through both tools (benchmarks/vs_clip_benchmark.py --smoke: same random
    checkpoint, images, class names, templates, fp32): our export equals clip_benchmark's JSON."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "vs_clip_benchmark.py"), "--smoke",
                           "--cb-python", os.environ["CLIP_BENCHMARK_PYTHON"], "--work-dir", str(work)],
                          capture_output=True, text=True, check=False, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    theirs = json.loads((work / "cb-0.json").read_text())
    ours = clip_benchmark_results(work / "run-0")[0]
    assert list(ours) == list(theirs)
    assert {k: v for k, v in ours.items() if k != "metrics"} == {k: v for k, v in theirs.items() if k != "metrics"}
    assert ours["metrics"] == pytest.approx(theirs["metrics"], abs=1e-12, nan_ok=True)
