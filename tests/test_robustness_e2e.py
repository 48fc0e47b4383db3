"""The shipped ImageNet-shifts probe, end to end and offline, on planted copies in the real layouts.

``probes/imagenet_shifts.yaml`` is copied with every dataset's ``source`` pointing at a generated
local copy (LAION webdataset dirs for ImageNet, -Sketch, -R and -A; the ImageNetV2 tarball's
numbered folders; the ObjectNet release with ``mappings/``) and run with a planted class model
(:mod:`tests.planted_classes`) whose top-1 and top-5 on every image are written down in advance
(:mod:`tests.robust_fixtures`), and with the tiny random open_clip model, whose predictions are
recomputed with open_clip's own zero-shot classifier.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from scipy import special, stats

from audit import reference
from audit.cli import main
from audit.errors import UserError
from audit.registries import MODEL_SCHEMES
from audit.results import METRIC_COLUMNS
from audit.robustness import ROBUSTNESS_COLUMNS, SHIFTS, effective_robustness
from audit.run import RunOptions, StageRngs, run_probe
from audit.spec import load_probe
from tests import robust_fixtures as rf

PLANTED = "planted_classes:v1"
TINY = "audit-tiny-vit:random"
DATASETS = ("imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a", "objectnet")
METRICS = ("accuracy", "top5_accuracy", "mean_per_class_recall")


@dataclass(frozen=True)
class Run:
    dir: Path
    probe: Path
    code: int

    @property
    def metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.dir / "metrics.csv", keep_default_na=False, na_values=[""])

    @property
    def predictions(self) -> pd.DataFrame:
        return pd.read_parquet(self.dir / "predictions.parquet")

    def overall(self, dataset: str, metric: str) -> pd.Series:
        m = self.metrics
        row = m[(m.dataset == dataset) & (m.metric == metric) & (m.group_col == "overall")]
        assert len(row) == 1, row
        return row.iloc[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Path]]]:
    """Offline environment for the module (private HF caches) and the planted local copies."""
    import datasets.config
    from huggingface_hub import constants

    root = tmp_path_factory.mktemp("robust")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("AUDIT_CACHE_DIR", str(root / "cache"))
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "hf_datasets"))
        mp.setattr(constants, "HF_HUB_CACHE", str(root / "hf_hub"))
        MODEL_SCHEMES.register("planted_classes", "tests.planted_classes:PlantedClassModel")
        yield root, rf.write_all(root / "data")


def _run(root: Path, name: str, probe: Path, *, cli: bool = False) -> Run:
    out = root / name
    if cli:  # the command users run
        code = main(["run", str(probe), "--out", str(out), "--no-report", "--quiet",
                     "--cache-dir", str(root / "cache")])
    else:
        code = run_probe(load_probe(probe), RunOptions(out=out, report=False, quiet=True,
                                                       cache_dir=root / "cache")).exit_code
    return Run(out, probe, code)


@pytest.fixture(scope="module")
def run113(world: tuple[Path, dict[str, Path]]) -> Run:
    root, sources = world
    probe = rf.probe_copy(root / "shifts.yaml", sources, models=[PLANTED])
    return _run(root, "run113", probe, cli=True)


@pytest.fixture(scope="module")
def run_collapse(world: tuple[Path, dict[str, Path]]) -> Run:
    root, sources = world
    probe = rf.probe_copy(root / "shifts_collapse.yaml", sources, models=[PLANTED],
                          objectnet_mode="imagenet_collapse")
    return _run(root, "run_collapse", probe)


# --------------------------------------------------------------------------- the shipped probe


def test_shipped_probe_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(rf.SHIPPED_PROBE)]) == 0
    assert "6 dataset(s), 3 model(s)" in capsys.readouterr().out
    spec = load_probe(rf.SHIPPED_PROBE).spec
    assert spec.kind == "robustness" and spec.label_sets == ("classnames",)
    assert tuple(d.adapter for d in spec.datasets) == DATASETS
    assert all(d.source is None for d in spec.datasets)  # LAION's hub repos by default
    assert [m.id for m in spec.models] == ["ViT-B-32:openai", "ViT-B-32:laion2b_s34b_b79k", "ViT-L-14:openai"]
    assert tuple(m.name for m in spec.metrics) == METRICS
    assert spec.templates == "openai_imagenet"
    (gate,) = spec.gates
    assert (gate.type, gate.shift, gate.threshold, gate.severity) == ("min_effective_robustness", "imagenet_r", 0, "warn")
    assert gate.shift in SHIFTS and gate.shift in DATASETS


def test_both_template_sets_come_from_open_clip(tmp_path: Path) -> None:
    from open_clip import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    from audit.labels import resolve_templates

    for named, shipped in (("openai_imagenet", OPENAI_IMAGENET_TEMPLATES),
                           ("simple_imagenet", SIMPLE_IMAGENET_TEMPLATES)):
        got = resolve_templates(named)
        assert [t.format("goldfish") for t in got] == [t("goldfish") for t in shipped]
    assert len(resolve_templates("openai_imagenet")) == 80 and len(resolve_templates("simple_imagenet")) == 7
    # the documented alternative validates too
    alt = tmp_path / "simple.yaml"
    alt.write_text(rf.SHIPPED_PROBE.read_text().replace("templates: openai_imagenet", "templates: simple_imagenet"))
    assert load_probe(alt).spec.templates == "simple_imagenet"


def test_probe_copy_keeps_everything_but_sources_and_models(run113: Run) -> None:
    shipped = yaml.safe_load(rf.SHIPPED_PROBE.read_text())
    copy = yaml.safe_load(run113.probe.read_text())
    for key in ("kind", "label_sets", "templates", "metrics", "stats", "gates", "seed", "batch_size"):
        assert copy[key] == shipped[key], key
    assert [d["options"] for d in copy["datasets"] if "options" in d] == [{"objectnet_mode": "objectnet_113"}]
    assert run113.code == 0


# --------------------------------------------------------------------------- planted outcomes


def _image_target(dataset: str, image_id: str) -> int:
    """The label of an image, from where the fixture put it (not from the run)."""
    if dataset == "imagenet_v2":
        return int(image_id.split("/")[0])
    if dataset == "objectnet":
        return rf.OBJECTNET_FOLDERS.index(image_id.split("/")[0])
    return rf.plans()[dataset][int(image_id.removeprefix("s"))].target


def _planned(dataset: str, image_id: str) -> rf.Planted | rf.PlantedObjectNet:
    if dataset == "objectnet":
        return rf.OBJECTNET_PLAN[_image_target(dataset, image_id)]
    if dataset == "imagenet_v2":
        return next(p for p in rf.plans()[dataset] if p.target == int(image_id.split("/")[0]))
    return rf.plans()[dataset][int(image_id.removeprefix("s"))]


def _fields(dataset: str, mode: str) -> tuple[str, str]:
    if dataset != "objectnet":
        return "correct", "top5"
    return ("correct_113", "top5_113") if mode == "objectnet_113" else ("correct_collapse", "top5_collapse")


def _mean_per_class_recall(targets: list[int], correct: list[bool]) -> float:
    """By class index, as clip_benchmark computes it."""
    frame = pd.DataFrame({"t": targets, "c": correct})
    return float(frame.groupby("t")["c"].mean().mean())


#: What the plans in tests/robust_fixtures.py add up to: (images, top-1, top-5), written out.
PLANTED_RATES = {
    ("imagenet", "objectnet_113"): (10, 6 / 10, 8 / 10),
    ("imagenet_v2", "objectnet_113"): (8, 5 / 8, 6 / 8),
    ("imagenet_sketch", "objectnet_113"): (8, 4 / 8, 4 / 8),
    ("imagenet_r", "objectnet_113"): (8, 5 / 8, 6 / 8),
    ("imagenet_a", "objectnet_113"): (8, 2 / 8, 3 / 8),
    ("objectnet", "objectnet_113"): (8, 5 / 8, 6 / 8),
    ("objectnet", "imagenet_collapse"): (8, 4 / 8, 6 / 8),
}


@pytest.mark.parametrize("dataset,mode", list(PLANTED_RATES))
def test_metrics_equal_the_planted_rates(dataset: str, mode: str, run113: Run, run_collapse: Run) -> None:
    run = run113 if mode == "objectnet_113" else run_collapse
    plan = rf.OBJECTNET_PLAN if dataset == "objectnet" else rf.plans()[dataset]
    top1, top5 = _fields(dataset, mode)
    n, want1, want5 = PLANTED_RATES[dataset, mode]
    assert (len(plan), rf.planted_rate(plan, top1), rf.planted_rate(plan, top5)) == (n, want1, want5)
    acc, acc5 = run.overall(dataset, "accuracy"), run.overall(dataset, "top5_accuracy")
    assert acc.n == acc5.n == n
    assert acc.value == pytest.approx(want1, abs=1e-12)
    assert acc5.value == pytest.approx(want5, abs=1e-12)
    recall = run.overall(dataset, "mean_per_class_recall")
    want = _mean_per_class_recall([p.target for p in plan], [getattr(p, top1) for p in plan])
    assert recall.value == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_image_scores_as_planted(dataset: str, run113: Run, run_collapse: Run) -> None:
    for run, mode in ((run113, "objectnet_113"), (run_collapse, "imagenet_collapse")):
        preds = run.predictions
        preds = preds[preds.dataset == dataset]
        top1, top5 = _fields(dataset, mode)
        plan = rf.OBJECTNET_PLAN if dataset == "objectnet" else rf.plans()[dataset]
        assert len(preds) == len(plan)
        for row in preds.itertuples():
            p = _planned(dataset, row.image_id)
            assert (row.correct, row.top5_correct) == (getattr(p, top1), getattr(p, top5)), row.image_id


def test_imagenet_v2_labels_are_int_folder_not_string_order(run113: Run) -> None:
    preds = run113.predictions
    v2 = preds[preds.dataset == "imagenet_v2"].set_index("image_id")
    folders = sorted(v2.index.str.split("/").str[0])
    assert folders == sorted(str(p.target) for p in rf.plans()["imagenet_v2"])
    names = rf.imagenet_names()
    for image_id, row in v2.iterrows():
        assert row.target == names[int(image_id.split("/")[0])]
    ten = v2[v2.index.str.startswith("10/")].iloc[0]
    assert ten.correct and ten.top1_label == names[10]  # string order would have labelled it 2


@pytest.mark.parametrize("dataset,which", [("imagenet_r", "r"), ("imagenet_a", "a")])
def test_r_and_a_only_ever_predict_their_200_classes(dataset: str, which: str, run113: Run) -> None:
    preds = run113.predictions
    preds = preds[preds.dataset == dataset]
    allowed = set(rf.subset_names(which))
    assert set(preds.top1_label) <= allowed
    assert {label for labels in preds.top5_labels for label in labels} <= allowed
    assert set(preds.target) <= allowed
    outside = [p for p in rf.plans()[dataset] if p.sees[0] not in allowed]
    assert outside, "the plan must carry names from outside the subset"
    by_id = preds.set_index("image_id")
    for i, p in enumerate(rf.plans()[dataset]):
        row = by_id.loc[f"s{i:07d}"]
        assert row.target == rf.subset_names(which)[p.target]
        if p.sees[0] not in allowed:  # scored 0 everywhere: the tie goes to class 0, not 'tench'
            assert row.top1_label == rf.subset_names(which)[0] and row.top1_score == 0.0


def test_objectnet_both_modes_score_over_objectnet_classes(run113: Run, run_collapse: Run) -> None:
    for run in (run113, run_collapse):
        on = run.predictions
        on = on[on.dataset == "objectnet"]
        assert set(on.top1_label) <= set(rf.OBJECTNET_NAMES)
        assert {label for labels in on.top5_labels for label in labels} <= set(rf.OBJECTNET_NAMES)
        assert set(on.image_id.str.split("/").str[0]) == set(rf.OBJECTNET_FOLDERS)  # unmapped left out
        for row in on.itertuples():
            assert row.target == rf.OBJECTNET_NAMES[_image_target("objectnet", row.image_id)]
    a, b = (r.overall("objectnet", "accuracy").value for r in (run113, run_collapse))
    assert (a, b) == (rf.planted_rate(rf.OBJECTNET_PLAN, "correct_113"),
                      rf.planted_rate(rf.OBJECTNET_PLAN, "correct_collapse"))


def test_imagenet_collapse_equals_a_hand_computed_max_over_mapped_classes(
        world: tuple[Path, dict[str, Path]], run_collapse: Run) -> None:
    """1000-way scores of each ObjectNet image computed here from the planted model's embeddings,
    then the max over each ObjectNet class's ImageNet classes, as the imagenet-testbed does."""
    from tests.planted_classes import LOGIT_SCALE, PlantedClassModel

    _, sources = world
    model = PlantedClassModel(PLANTED)
    names = rf.imagenet_names()
    # class weights: one per ImageNet name (every template gives the same direction here)
    weights = np.stack([model.embed_names([n]) for n in names])
    preds = run_collapse.predictions
    preds = preds[preds.dataset == "objectnet"].set_index("image_id")
    checked = 0
    for image_id, row in preds.iterrows():
        with Image.open(sources["objectnet"] / "objectnet-1.0" / "images" / image_id) as img:
            w, h = img.size
            cropped = img.convert("RGB").crop((2, 2, w - 2, h - 2))  # the testbed's 2-px border crop
        emb = model.encode_images(model.preprocess(cropped)[None])[0]
        scores = LOGIT_SCALE * weights @ emb                                 # [1000]
        collapsed = np.array([scores[list(g)].max() for g in rf.OBJECTNET_GROUPS])
        best = int(np.argmax(collapsed))                                     # first max on ties
        assert row.top1_label == rf.OBJECTNET_NAMES[best]
        assert row.top1_score == pytest.approx(collapsed[best])
        p = rf.OBJECTNET_PLAN[_image_target("objectnet", image_id)]
        assert bool(row.correct) == (best == p.target) == p.correct_collapse
        checked += 1
    assert checked == len(rf.OBJECTNET_PLAN)
    # one image by name: 'rocking chair' is the third ImageNet class of ObjectNet's chair
    chair = preds.loc[preds.index.str.startswith("chair/")].iloc[0]
    assert chair.top1_label == "chair" and chair.top1_score == pytest.approx(LOGIT_SCALE / np.sqrt(2))


# --------------------------------------------------------------------------- robustness and gate


def _accuracies(run: Run) -> pd.DataFrame:
    m = run.metrics
    acc = m[(m.metric == "accuracy") & (m.group_col == "overall")]
    # with n: the interval includes the model's own sampling error over the run's images
    return acc.rename(columns={"value": "top1"})[["model", "dataset", "top1", "n"]].reset_index(drop=True)


@pytest.mark.parametrize("which", ["run113", "run_collapse"])
def test_robustness_csv_equals_effective_robustness_of_the_runs_accuracies(
        which: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(which)
    table = pd.read_csv(run.dir / "robustness.csv", keep_default_na=False, na_values=[""])
    # the documented columns, then the variant (an 'n' column, should one come, may go between)
    assert tuple(table.columns[:len(ROBUSTNESS_COLUMNS)]) == ROBUSTNESS_COLUMNS
    assert table.columns[-1] == "variant" and set(table.columns[len(ROBUSTNESS_COLUMNS):-1]) <= {"n"}
    assert list(table.dataset) == list(SHIFTS) and set(table.model) == {PLANTED}
    assert set(table.variant) == {"default"}
    spec = load_probe(run.probe).spec
    rng = StageRngs.from_generator(np.random.default_rng(spec.seed)).robustness  # the run's stream for this step
    want = effective_robustness(_accuracies(run), n_bootstrap=spec.stats.n_bootstrap, rng=rng)
    got = table.loc[:, list(ROBUSTNESS_COLUMNS)].copy()
    got["note"] = got["note"].fillna("")
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)
    # and the point estimates once more from scratch: OLS of logit(shift) on logit(ImageNet)
    # over the testbed's standard models, then 100 * (top1 - expit(fit at own ImageNet top-1))
    base = reference.testbed_baseline()
    x = run.overall("imagenet", "accuracy").value
    for row in table.itertuples():
        pair = base[["imagenet", row.dataset]].apply(pd.to_numeric, errors="coerce").dropna()
        pair = pair[(pair > 0).all(axis=1) & (pair < 1).all(axis=1)]
        fit = stats.linregress(special.logit(pair["imagenet"]), special.logit(pair[row.dataset]))
        baseline = special.expit(fit.intercept + fit.slope * special.logit(x))
        y = run.overall(row.dataset, "accuracy").value
        # robustness.csv is in accuracy points throughout (metrics.csv holds fractions)
        assert row.top1_pts == pytest.approx(100 * y, abs=1e-9)
        assert row.imagenet_top1_pts == pytest.approx(100 * x, abs=1e-9)
        assert row.baseline_top1_pts == pytest.approx(100 * baseline, abs=1e-9)
        assert row.effective_robustness_pts == pytest.approx(100 * (y - baseline), abs=1e-9)
        assert row.relative_robustness_pts == pytest.approx(100 * (y - x), abs=1e-9)
        assert row.eff_rob_low_pts <= row.effective_robustness_pts <= row.eff_rob_high_pts


def test_effective_robustness_gate_reads_robustness_csv(run113: Run) -> None:
    gates = json.loads((run113.dir / "gates.json").read_text())
    (result,) = [r for r in gates["results"] if r["type"] == "min_effective_robustness"]
    table = pd.read_csv(run113.dir / "robustness.csv").set_index("dataset")
    assert result["dataset"] == "imagenet_r" and result["model"] == PLANTED
    assert result["value"] == pytest.approx(table.loc["imagenet_r", "effective_robustness_pts"])
    assert result["severity"] == "warn" and result["threshold"] == 0
    assert run113.code == 0 and gates["exit_code"] == 0


# --------------------------------------------------------------------------- the tiny real model


def _wds_images(root: Path) -> tuple[list[str], list[Image.Image], list[int]]:
    keys, images, labels = [], [], []
    for shard in sorted((root / "test").glob("*.tar"), key=lambda p: int(p.stem)):
        with tarfile.open(shard) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
        for name in sorted(members):
            key, ext = name.rsplit(".", 1)
            if ext == "cls":
                labels.append(int(members[name]))
            else:
                keys.append(key)
                images.append(Image.open(io.BytesIO(members[name])).convert("RGB"))
    return keys, images, labels


def _folder_images(base: Path, pattern: str) -> tuple[list[str], list[Image.Image]]:
    paths = sorted(base.glob(pattern))
    return [str(p.relative_to(base)) for p in paths], [Image.open(p).convert("RGB") for p in paths]


def _read_back(sources: dict[str, Path]) -> dict[str, tuple[list[str], list[Image.Image], list[int], list[str]]]:
    """dataset -> (image ids, images, label indices, class names), read from the copies here."""
    out = {}
    for ds in ("imagenet", "imagenet_sketch", "imagenet_r", "imagenet_a"):
        names = (sources[ds] / "classnames.txt").read_text().splitlines()
        out[ds] = (*_wds_images(sources[ds]), names)
    v2 = sources["imagenet_v2"] / "imagenetv2-matched-frequency-format-val"
    keys, images = _folder_images(v2, "*/*.jpeg")
    out["imagenet_v2"] = (keys, images, [int(k.split("/")[0]) for k in keys], list(rf.imagenet_names()))
    keys, images = _folder_images(sources["objectnet"] / "objectnet-1.0" / "images", "*/*.png")
    keep = [i for i, k in enumerate(keys) if k.split("/")[0] in rf.OBJECTNET_FOLDERS]  # mapped only
    out["objectnet"] = ([keys[i] for i in keep], [images[i] for i in keep],
                        [rf.OBJECTNET_FOLDERS.index(keys[i].split("/")[0]) for i in keep],
                        list(rf.OBJECTNET_NAMES))
    return out


def test_tiny_open_clip_model_top1_recomputed_with_open_clip(world: tuple[Path, dict[str, Path]]) -> None:
    """The probe copy run with the tiny random-weight open_clip model; every prediction
    recomputed here with open_clip's own ``build_zero_shot_classifier`` on images decoded here."""
    import torch
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    from audit.models.openclip import OpenClipModel

    root, sources = world
    templates = ["a photo of a {}.", "a sketch of a {}."]  # two, not 80: a 1000-class head on CPU
    probe = rf.probe_copy(root / "tiny.yaml", sources, models=[TINY], templates=templates)
    run = _run(root, "run_tiny", probe)
    assert run.code == 0
    m = OpenClipModel(TINY, seed=load_probe(probe).spec.seed)  # the run's deterministic random init
    preds = run.predictions
    heads: dict[tuple[str, ...], torch.Tensor] = {}
    clear = total = 0
    with torch.no_grad():
        for ds, (keys, images, labels, names) in _read_back(sources).items():
            if tuple(names) not in heads:
                heads[tuple(names)] = build_zero_shot_classifier(
                    m.model, m.tokenizer, names, templates, num_classes_per_batch=None, device="cpu")
            feats = m.model.encode_image(torch.stack([m.preprocess(img) for img in images]))
            logits = (torch.nn.functional.normalize(feats, dim=-1) @ heads[tuple(names)]).numpy()
            order = np.argsort(-logits, axis=1, kind="stable")
            margin = logits[np.arange(len(keys)), order[:, 0]] - logits[np.arange(len(keys)), order[:, 1]]
            got = preds[preds.dataset == ds].set_index("image_id").loc[keys]
            sure = margin > 1e-5  # a near-tie may break either way in float32
            assert (got.top1_label.to_numpy()[sure] == np.array(names)[order[sure, 0]]).all(), ds
            hits = order[:, 0] == np.array(labels)
            assert (got.correct.to_numpy(dtype=bool)[sure] == hits[sure]).all(), ds
            acc = run.overall(ds, "accuracy")
            assert acc.n == len(keys)
            assert abs(acc.value - hits.mean()) <= (~sure).sum() / len(keys) + 1e-12
            clear, total = clear + int(sure.sum()), total + len(keys)
    assert clear / total > 0.9, "too many near-ties to check anything"
    metrics = run.metrics
    assert tuple(metrics.columns) == METRIC_COLUMNS
    assert set(metrics.dataset) == set(DATASETS) and set(metrics.metric) == set(METRICS)
    assert (run.dir / "robustness.csv").is_file()


# --------------------------------------------------------------------------- regressions


def test_manifest_records_the_prompts_of_every_dataset(run113: Run) -> None:
    manifest = json.loads((run113.dir / "manifest.json").read_text())

    def label_lists(node: object) -> Iterator[tuple[str, ...]]:
        if isinstance(node, dict):
            if isinstance(node.get("labels"), list):
                yield tuple(node["labels"])
            for v in node.values():
                yield from label_lists(v)
        elif isinstance(node, list):
            for v in node:
                yield from label_lists(v)

    recorded = set(label_lists(manifest["prompts"]))
    for names in (rf.imagenet_names(), rf.subset_names("r"), rf.subset_names("a"), rf.OBJECTNET_NAMES):
        assert tuple(names) in recorded


def test_effective_robustness_gate_is_insufficient_below_min_n(run113: Run) -> None:
    gates = json.loads((run113.dir / "gates.json").read_text())
    (result,) = [r for r in gates["results"] if r["type"] == "min_effective_robustness"]
    assert result["n"] == len(rf.plans()["imagenet_r"]) < result["min_n"]
    assert result["outcome"] == "insufficient"


def test_both_objectnet_modes_in_one_probe(world: tuple[Path, dict[str, Path]]) -> None:
    root, sources = world
    probe = rf.probe_copy(root / "both.yaml", sources, models=[PLANTED], datasets=["imagenet", "objectnet"])
    spec = yaml.safe_load(probe.read_text())
    spec["datasets"].append({"adapter": "objectnet", "name": "objectnet_collapse",
                             "source": str(sources["objectnet"]),
                             "options": {"objectnet_mode": "imagenet_collapse"}})
    probe.write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        loaded = load_probe(probe)
    except UserError as exc:  # rejecting it up front, before any work, is a fix too
        assert "objectnet" in exc.render()
        return
    run = _run(root, "run_both", probe)
    assert run.code == 0
    assert run.overall("objectnet", "accuracy").value == rf.planted_rate(rf.OBJECTNET_PLAN, "correct_113")
    assert run.overall("objectnet_collapse", "accuracy").value == rf.planted_rate(rf.OBJECTNET_PLAN, "correct_collapse")
    table = pd.read_csv(run.dir / "robustness.csv")
    (row,) = table[table.dataset == "objectnet"].itertuples()
    assert row.top1_pts == pytest.approx(100 * run.overall(loaded.spec.datasets[1].display_name, "accuracy").value)


def test_validate_rejects_an_unknown_shift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text(rf.SHIPPED_PROBE.read_text().replace("shift: imagenet_r ", "shift: imagenet-r "))
    assert main(["validate", str(typo)]) == 2
    err = capsys.readouterr().err
    assert "gates[0].shift" in err and "did you mean 'imagenet_r'" in err


def test_mean_per_class_recall_keeps_classes_with_the_same_name_apart(
        world: tuple[Path, dict[str, Path]]) -> None:
    root, sources = world
    names = rf.imagenet_names()
    assert names[836] == names[837] == "sunglasses"
    plan = rf.plans()["imagenet_duplicate_names"]
    local = dict(sources, imagenet=rf.write_wds(root / "wds_dup", names, plan, ext="jpg", shards=1))
    probe = rf.probe_copy(root / "dup.yaml", local, models=[PLANTED], datasets=["imagenet"])
    run = _run(root, "run_dup", probe)
    preds = run.predictions
    assert preds.correct.tolist() == [True, False, True]
    want = _mean_per_class_recall([p.target for p in plan], [p.correct for p in plan])  # (1 + 0 + 1) / 3
    assert run.overall("imagenet", "mean_per_class_recall").value == pytest.approx(want)


def test_two_models_are_compared_with_an_interval(world: tuple[Path, dict[str, Path]]) -> None:
    """Two (identical) planted models: compare_models on the run's own accuracies and images says
    the difference is exactly 0 on every shift and neither is more robust."""
    root, sources = world
    probe = rf.probe_copy(root / "shifts_two.yaml", sources, models=[PLANTED, "planted_classes:v2"])
    run = _run(root, "run_two", probe)
    compare = pd.read_csv(run.dir / "robustness_compare.csv")
    assert set(compare["dataset"]) == {"imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a", "objectnet"}
    assert (compare["model_a"] == PLANTED).all() and (compare["model_b"] == "planted_classes:v2").all()
    assert (compare["difference"] == 0).all() and (compare["more_robust"] == "undecided").all()

    # `audit compare`: the same two models as base and new of one run, and each model against
    # itself across two runs, paired on the same images; effective robustness as in the run
    from audit.compare.output import compare_main

    out = root / "cmp_models"
    assert compare_main(run.dir, base_model=PLANTED, new_model="planted_classes:v2", out=out,
                        stream=io.StringIO()) == 0
    across = pd.read_csv(out / "robustness_comparison.csv")
    assert (across["model_a"] == f"base: {PLANTED}").all() and (across["model_b"] == "new: planted_classes:v2").all()
    assert across["paired"].all() and (across["difference"] == 0).all()
    merged = across.merge(compare, on="dataset", suffixes=("", "_run"))
    assert len(merged) == 5 and (merged["eff_rob_a"] == merged["eff_rob_a_run"]).all()
    out2 = root / "cmp_runs"
    assert compare_main(run.dir, run.dir, out=out2, stream=io.StringIO()) == 0
    itself = pd.read_csv(out2 / "robustness_comparison.csv")
    assert sorted(set(itself["model_a"])) == [f"base: {PLANTED}", "base: planted_classes:v2"]
    assert itself["paired"].all() and (itself["difference"] == 0).all()
    assert ((itself["diff_low"] == 0) & (itself["diff_high"] == 0)).all()  # same images, same model
