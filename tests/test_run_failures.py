"""A run that cannot finish leaves nothing behind and says why (exit 3), and says what it does.

Covers: unloadable checkpoints (a pickle ``torch.load(weights_only=True)`` refuses, random bytes),
every missing input named at once, read-only and full disks (injected ``OSError``), a truncated
text-embedding cache file, ``--out`` rules, the synthetic dataset under ``--cache-dir``, the
generative scores' own cache kind, and plain progress lines when stderr is not a terminal.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from audit.cli import main
from audit.registries import MODEL_SCHEMES
from tests.conftest import LABEL_SETS
from tests.planted import write_planted_fairface

PROBE = """
name: failures
dataset:
  adapter: {adapter}
  {source}
  subgroups: [race, gender]
models: [{models}]
label_sets: [{ls}/fairface_race_gender.yaml, {ls}/non_human.yaml]
templates: ["a photo of a {{}}."]
categories: [non_human]
metrics: [category_rate]
stats: {{min_n: 2, n_bootstrap: 20}}
report: {{enabled: false}}
"""


def write_probe(tmp_path: Path, models: list[str], source: Path | str | None = None,
                adapter: str = "fairface", options: str = "") -> Path:
    src = f"source: {source}" if source is not None else options
    path = tmp_path / "probe.yaml"
    path.write_text(textwrap.dedent(PROBE.format(adapter=adapter, source=src, models=", ".join(models),
                                                 ls=LABEL_SETS)))
    return path


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    MODEL_SCHEMES.register("planted", "tests.planted:PlantedModel")
    source = tmp_path / "fairface"
    write_planted_fairface(source, n=28, flag_prob={"Black": 0.5}, seed=0)
    return source


def run(tmp_path: Path, probe: Path, *extra: str, out: str = "out") -> int:
    return main(["run", str(probe), "--out", str(tmp_path / out), "--cache-dir", str(tmp_path / "cache"),
                 "--no-report", *extra])


def leftovers(tmp_path: Path, out: str = "out") -> list[str]:
    """The run directory and any staging sibling of it."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name == out or p.name.startswith(f".{out}."))


# -- unloadable checkpoints --------------------------------------------------------------------

class _Pickled:
    """Not a state dict: torch.load(weights_only=True) refuses to rebuild it."""


@pytest.mark.parametrize("kind", ["pickle", "random_bytes"])
def test_unloadable_checkpoint_exits_3_without_a_run_directory(tmp_path: Path, planted: Path,
                                                               capsys: pytest.CaptureFixture[str], kind: str) -> None:
    import torch

    ckpt = tmp_path / "weights.pt"
    if kind == "pickle":
        torch.save({"model": _Pickled()}, ckpt)
    else:
        ckpt.write_bytes(np.random.default_rng(0).bytes(4096))
    probe = write_probe(tmp_path, [f"audit-tiny-vit:{ckpt}"], planted)
    code = run(tmp_path, probe)
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"the checkpoint {ckpt} cannot be loaded" in err and "state_dict" in err
    assert "Traceback" not in err
    assert leftovers(tmp_path) == []


def test_every_missing_input_is_named_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probe = write_probe(tmp_path, ["ViT-B-32:openai", "RN50:openai"], "nobody/no-such-dataset")
    code = run(tmp_path, probe)
    err = capsys.readouterr().err
    assert code == 3, err
    assert "inputs that cannot be loaded (3 problems)" in err
    assert "datasets[0] (fairface)" in err and "nobody/no-such-dataset" in err
    assert "models[0] (ViT-B-32:openai)" in err and "models[1] (RN50:openai)" in err
    assert leftovers(tmp_path) == [] and not (tmp_path / "cache" / "images").exists()


def test_one_missing_model_of_two_is_a_failure_of_that_model_only(tmp_path: Path, planted: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    probe = write_probe(tmp_path, ["planted:v1", "ViT-B-32:openai"], planted)
    assert run(tmp_path, probe) == 3
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert list(manifest["model_failures"]) == ["ViT-B-32:openai"]


# -- disks --------------------------------------------------------------------------------------

def test_read_only_output_parent_exits_3_naming_the_path(tmp_path: Path, planted: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import audit.staging

    def refuse(*args: object, **kwargs: object) -> str:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(audit.staging.tempfile, "mkdtemp", refuse)
    code = run(tmp_path, write_probe(tmp_path, ["planted:v1"], planted), out="runs/deep/out")
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"cannot write {tmp_path / 'runs/deep/out'}: Read-only file system" in err and "writable --out" in err
    assert not (tmp_path / "runs").exists()  # the parents it made are gone again


def test_read_only_cache_exits_3_naming_the_path(tmp_path: Path, planted: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    real = Path.mkdir

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if "cache" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system")
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code = run(tmp_path, write_probe(tmp_path, ["planted:v1"], planted))
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"cannot write {tmp_path / 'cache'}" in err and "Read-only file system" in err
    assert "Traceback" not in err and leftovers(tmp_path) == []


def _disk_full_on(monkeypatch: pytest.MonkeyPatch, target: object, name: str) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(target, name, full)


def test_disk_full_while_writing_outputs_keeps_the_previous_run(tmp_path: Path, planted: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    probe = write_probe(tmp_path, ["planted:v1"], planted)
    assert run(tmp_path, probe) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    _disk_full_on(monkeypatch, pd.DataFrame, "to_csv")
    code = run(tmp_path, probe)
    err = capsys.readouterr().err
    assert code == 3, err
    assert "No space left on device" in err and "metrics.csv" in err and "free disk space" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert leftovers(tmp_path) == ["out"]  # no staging directory left


def test_disk_full_while_writing_the_cache_leaves_no_shard(tmp_path: Path, planted: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _disk_full_on(monkeypatch, np, "savez")
    code = run(tmp_path, write_probe(tmp_path, ["planted:v1"], planted))
    err = capsys.readouterr().err
    assert code == 3, err
    assert "No space left on device" in err and "shard-00000.npz" in err
    shards = list((tmp_path / "cache" / "images").rglob("shard-*"))
    assert [p for p in shards if not p.name.endswith(".lock")] == []
    assert leftovers(tmp_path) == []


def test_truncated_text_cache_file_exits_3_with_the_fix(tmp_path: Path, planted: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    probe = write_probe(tmp_path, ["planted:v1"], planted)
    assert run(tmp_path, probe) == 0
    entries = sorted((tmp_path / "cache" / "text").rglob("*.npz"))
    assert entries
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    code = run(tmp_path, probe, out="again")
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"corrupt embedding-cache entry {entries[0]}" in err and f"rm -r {entries[0]}" in err
    assert "Traceback" not in err and leftovers(tmp_path, "again") == []


# -- --out ----------------------------------------------------------------------------------------

def test_out_that_is_not_a_run_directory_is_refused_before_running(tmp_path: Path, planted: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    code = run(tmp_path, write_probe(tmp_path, ["planted:v1"], planted))
    assert code == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine" and not (tmp_path / "cache").exists()


def test_rerun_into_the_same_out_replaces_the_previous_run(tmp_path: Path, planted: Path) -> None:
    probe = write_probe(tmp_path, ["planted:v1"], planted)
    assert run(tmp_path, probe) == 0
    (tmp_path / "out" / "stale.csv").write_text("old")
    assert run(tmp_path, probe) == 0
    assert not (tmp_path / "out" / "stale.csv").exists() and (tmp_path / "out" / "manifest.json").is_file()
    assert leftovers(tmp_path) == ["out"]


# -- one cache layout ----------------------------------------------------------------------------

def test_synthetic_dataset_is_generated_under_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.run import load_dataset
    from audit.spec import load_probe

    env_cache = tmp_path / "env_cache"
    monkeypatch.setenv("AUDIT_CACHE_DIR", str(env_cache))
    probe = write_probe(tmp_path, ["audit-tiny-vit:random"], adapter="synthetic_fairface",
                        options="options: {n: 14, size: 16}")
    p = load_probe(probe)
    data = load_dataset(p, p.spec.datasets[0], None, tmp_path / "given")
    assert len(data) == 14
    assert len(list((tmp_path / "given" / "synthetic").iterdir())) == 1 and not env_cache.exists()


# -- progress ---------------------------------------------------------------------------------

def test_line_counter_reports_at_its_interval_and_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    from audit.progress import LineCounter

    now = [0.0]
    c = LineCounter(576, "embedding demo_world_test", "images", 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="audit"):
        for _ in range(9):  # 64 images every 4 s
            now[0] += 4.0
            c.update(64)
        c.close()
    assert [r.getMessage() for r in caplog.records] == [
        "embedding demo_world_test: 192/576 images", "embedding demo_world_test: 384/576 images",
        "embedding demo_world_test: 576/576 images",
    ]


def test_run_says_what_it_does_on_a_non_terminal_stderr(tmp_path: Path, planted: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AUDIT_PROGRESS_INTERVAL", "0")
    probe = write_probe(tmp_path, ["planted:v1"], planted)
    assert run(tmp_path, probe, "--batch-size", "8") == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"audit: probe 'failures' ({probe}): 1 dataset(s) [fairface], 1 model(s) [planted:v1]"
    assert lines[1] == f"audit: output -> {tmp_path / 'out'}"
    embedding = [ln for ln in lines if ln.startswith("embedding fairface (planted:v1): ")]
    assert embedding == [f"embedding fairface (planted:v1): {n}/28 images" for n in (8, 16, 24, 28)]
    assert "computing metrics and gates" in lines
    assert not any("\r" in ln for ln in lines)


def test_quiet_run_prints_no_progress(tmp_path: Path, planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, write_probe(tmp_path, ["planted:v1"], planted), "--quiet") == 0
    assert capsys.readouterr().err == ""


def test_skipped_images_are_counted_in_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    MODEL_SCHEMES.register("planted", "tests.planted:PlantedModel")
    from audit.testing.fixtures import write_fairface_dir

    source = write_fairface_dir(tmp_path / "ff", n=12, seed=2, size=16, corrupt={3: "truncated", 7: "zero_bytes"})
    assert run(tmp_path, write_probe(tmp_path, ["audit-tiny-vit:random"], source)) in (0, 1)
    out = capsys.readouterr().out
    assert f"skipped 2 unreadable image(s) (2 in fairface); listed with the reason in {tmp_path / 'out' / 'manifest.json'}" in out
    assert os.path.exists(tmp_path / "out" / "manifest.json")


def test_staged_run_directory_follows_the_umask_not_mkdtemp(tmp_path: Path) -> None:
    """mkdtemp makes 0700 directories; a published run directory is as shareable as any other."""
    import os

    from audit.staging import staged_dir

    umask = os.umask(0o022)
    try:
        with staged_dir(tmp_path / "runs" / "x") as stage:
            (stage / "manifest.json").write_text("{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "runs" / "x").stat().st_mode & 0o777 == 0o755
