"""YAML -> validated :class:`ProbeSpec` / :class:`LabelSet`, with every problem located.

The same loader serves ``validate`` and ``run``: everything a run would refuse for the probe's
own content is refused here, all problems in one message, before any output or cache exists.
It imports no torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from audit.errors import Problem, UserError
from audit.spec.limits import LABEL_SET_BYTES, LABEL_SET_ITEMS, PROBE_BYTES, PROBE_ITEMS, Limit, shape_problems
from audit.spec.models import LabelSet, ProbeSpec
from audit.spec.problems import format_loc, problems_from_validation, salvage, user_field

M = TypeVar("M", bound=BaseModel)

#: Special ``label_sets`` entry: use the dataset's own class names.
CLASSNAMES = "classnames"
#: Named template sets, resolved from open_clip's shipped metadata.
NAMED_TEMPLATES = ("openai_imagenet", "simple_imagenet", "dataset")


def read_yaml(path: Path, what: str, limit: Limit = PROBE_BYTES) -> Any:
    """Read a YAML mapping, turning I/O, size and syntax problems into located user errors.

    The size cap is checked before anything is read, so an oversized file costs no parsing."""
    if not path.exists():
        raise UserError(f"{what} file not found: {path}", fix="check the path")
    if path.is_dir():
        raise UserError(f"{what} path is a directory, not a YAML file: {path}")
    if not path.is_file():
        raise UserError(f"{what} path is not a regular file: {path}")
    size = path.stat().st_size
    if size > limit.value:
        raise UserError(f"{path} is too large to be a {what}", problems=[Problem("(file)", limit.exceeded(size))])
    try:
        with path.open("rb") as fh:
            raw = fh.read(limit.value + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} file {path}: {exc}") from None
    if len(raw) > limit.value:  # grew since stat
        raise UserError(f"{path} is too large to be a {what}", problems=[Problem("(file)", limit.exceeded(len(raw)))])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(
            f"{path} is not valid YAML",
            problems=[Problem(where, str(problem))],
            fix="fix the YAML syntax (indentation, quotes, colons)",
        ) from None
    except RecursionError:
        raise UserError(f"{path} is nested too deeply to be a {what}") from None
    if data is None:
        raise UserError(f"{path} is empty", fix=f"write a {what} as a YAML mapping (see probes/)")
    if not isinstance(data, dict):
        raise UserError(
            f"{path} is not a valid {what}",
            problems=[Problem("(top level)", f"expected a mapping of keys, got {type(data).__name__}")],
        )
    return data


def parse(model: type[M], data: dict[str, Any], path: Path, what: str) -> M:
    """Validate ``data`` as ``model``; a :class:`UserError` lists every problem with its field path."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        single = "dataset" in data and "datasets" not in data
        raise UserError(
            f"{path} is not a valid {what}", problems=problems_from_validation(err, model, single)
        ) from None


def load_label_set(path: Path) -> LabelSet:
    """Read and validate a label-set file (size-capped)."""
    data = read_yaml(path, "label set", LABEL_SET_BYTES)
    shape = shape_problems(data, LABEL_SET_ITEMS)
    if shape:
        raise UserError(f"{path} is not a valid label set", problems=shape)
    return parse(LabelSet, data, path, "label set")


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class LoadedLabelSet:
    """A label-set file as loaded: where it is, its content and its hash."""

    path: Path
    spec: LabelSet
    sha256: str


@dataclass(frozen=True)
class Probe:
    """A validated probe plus what the loader resolved.

    Attributes:
        notebooks: Custom report notebooks (resolved paths) the probe executes: they run code.
        allow_notebooks_outside: Whether notebooks outside the probe's directory were allowed
            (``--allow-notebooks-outside``); recorded so the run directory can say so.
    """

    path: Path
    spec: ProbeSpec
    sha256: str
    label_sets: tuple[LoadedLabelSet, ...]
    query_sets: tuple[LoadedLabelSet, ...] = ()
    notebooks: tuple[Path, ...] = ()
    allow_notebooks_outside: bool = False

    def resolve(self, relative: str) -> Path:
        """Resolve a path written in the probe relative to the probe file."""
        return resolve_from(self.path.parent, relative)

    def resolved_dict(self) -> dict[str, Any]:
        return json.loads(self.spec.model_dump_json())


def looks_like_path(source: str) -> bool:
    """Whether a dataset ``source`` is meant as a local path rather than a hub id ``org/name``."""
    return source.startswith((".", "/", "~")) or source.count("/") != 1


#: Longest path component most file systems accept, in bytes.
MAX_NAME_BYTES = 255


def unusable_path(text: str) -> str | None:
    """Why a path written in a probe cannot be a path at all (a NUL character, a component too
    long for the file system), or None."""
    if "\x00" in text:
        return "the path contains a NUL character"
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for part in text.split("/")):
        return f"a component of the path is longer than {MAX_NAME_BYTES} bytes"
    return None


def resolve_from(base: Path, relative: str) -> Path:
    """``relative`` (``~`` expanded) against ``base``, unless it is absolute."""
    p = Path(relative).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def load_probe(path: str | Path, *, check_names: bool = True, allow_notebooks_outside: bool = False) -> Probe:
    """Load, validate and cross-check a probe file.

    Args:
        path: The probe file.
        check_names: False to judge only what gates need (``audit check --probe``): no registry,
            model-id, dataset-source or notebook lookups.
        allow_notebooks_outside: Accept ``report.notebooks`` outside the probe's directory.

    Raises:
        UserError: listing every problem of the probe at once (pydantic's and the cross-checks'),
            each with its full field path.
    """
    from audit.spec.cross_check import cross_check

    path = Path(path)
    data = read_yaml(path, "probe", PROBE_BYTES)
    single = "dataset" in data and "datasets" not in data
    shape = shape_problems(data, PROBE_ITEMS)
    if shape:
        raise UserError(f"{path} is not a valid probe", problems=shape)
    problems: list[Problem] = []
    try:
        spec: ProbeSpec | None = ProbeSpec.model_validate(data)
        original = str
    except ValidationError as err:
        problems = problems_from_validation(err, ProbeSpec, single)
        salvaged = salvage(ProbeSpec, data, err, single)
        spec, original = (salvaged.spec, salvaged.original) if salvaged else (None, str)
        problems += salvaged.problems if salvaged else []
    if spec is None:
        raise UserError(f"{path} is not a valid probe", problems=problems)
    try:
        found = cross_check(spec, path.parent, check_names=check_names,
                            allow_notebooks_outside=allow_notebooks_outside)
    except (OSError, ValueError) as exc:  # a path the probe names that the system refuses to look at
        raise UserError(f"{path} is not a valid probe: a path it names cannot be checked ({exc})",
                        problems=problems, fix="fix the paths in the probe") from None
    problems += [Problem(user_field(original(p.field), single), p.message) for p in found.problems]
    if problems:
        raise UserError(f"{path} is not a valid probe", problems=problems)
    return Probe(path.resolve(), spec, file_hash(path), found.label_sets, found.query_sets,
                 found.notebooks, allow_notebooks_outside)


__all__ = ["CLASSNAMES", "NAMED_TEMPLATES", "LoadedLabelSet", "Probe", "file_hash", "format_loc",
           "load_label_set", "load_probe", "looks_like_path", "parse", "read_yaml", "resolve_from"]
