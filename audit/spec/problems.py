"""pydantic's validation errors -> located :class:`Problem` s, and a best-effort spec for the
cross-checks when some fields were refused (so all problems of a probe come in one message)."""

from __future__ import annotations

import copy
import re
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from audit.errors import Problem
from audit.registry import did_you_mean

M = TypeVar("M", bound=BaseModel)

#: Rounds of pruning refused values before the cross-checks give up on a salvaged spec.
SALVAGE_ROUNDS = 8
_TOP_INDEX = re.compile(r"^([A-Za-z_]+)\[(\d+)\]")
#: Stand-ins for refused required scalars, so the rest of the probe can still be cross-checked.
_PLACEHOLDERS: dict[tuple[Any, ...], Any] = {("name",): "probe"}


def format_loc(loc: tuple[Any, ...]) -> str:
    """``('dataset', 'subgroups', 1)`` -> ``dataset.subgroups[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def user_field(field: str, single_dataset: bool) -> str:
    """A field path in the user's own spelling: ``datasets[0]`` is ``dataset`` when the probe
    wrote a single ``dataset:`` mapping."""
    if single_dataset and (field == "datasets[0]" or field.startswith(("datasets[0].", "datasets[0]["))):
        return "dataset" + field[len("datasets[0]"):]
    return field


def problems_from_validation(err: ValidationError, model: type[BaseModel], single_dataset: bool = False,
                             only_value_errors: bool = False) -> list[Problem]:
    """One problem per pydantic error, with its full field path and a did-you-mean for unknown keys.

    ``only_value_errors`` keeps only errors raised by the models' own validators (used on a
    salvaged spec, where a missing or too-short field is an artefact of the pruning)."""
    problems = []
    errors = err.errors()
    failed_inside = {tuple(e["loc"][:1]) for e in errors if len(e["loc"]) > 1}
    for e in errors:
        if only_value_errors and e["type"] != "value_error":
            continue
        if e["type"] == "too_short" and tuple(e["loc"]) in failed_inside:
            continue  # pydantic's echo of an item that failed itself: already reported
        loc = _strip_tags(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1])
            msg = f"unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), known) if known else ''}"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "union_tag_invalid" and isinstance(e["input"], dict):
            from audit.spec.models import GATE_TYPES

            loc = (*loc, "type")
            msg = f"unknown gate type {e['input'].get('type')!r}{did_you_mean(str(e['input'].get('type')), GATE_TYPES)}"
        elif e["type"] == "union_tag_not_found":
            from audit.spec.models import GATE_TYPES

            loc = (*loc, "type")
            msg = f"required field is missing (one of {', '.join(GATE_TYPES)})"
        problems.append(Problem(user_field(format_loc(loc), single_dataset), msg))
    return problems


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic puts the discriminator value ('max_rate') into loc for tagged unions.
    from audit.spec.models import GATE_TYPES

    return tuple(p for p in loc if not (isinstance(p, str) and p in GATE_TYPES))


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``loc`` inside ``model`` (best effort, for did-you-mean)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


class Salvaged(typing.NamedTuple):
    """A spec built from the values pydantic accepted, and how to map its field paths back."""

    spec: Any
    problems: list[Problem]
    index: dict[str, list[int]]

    def original(self, field: str) -> str:
        """``gates[1].compare`` of the salvaged spec -> the same field's path in the file."""
        m = _TOP_INDEX.match(field)
        if m and m.group(1) in self.index and int(m.group(2)) < len(self.index[m.group(1)]):
            return f"{m.group(1)}[{self.index[m.group(1)][int(m.group(2))]}]{field[m.end():]}"
        return field


def salvage(model: type[M], data: dict[str, Any], err: ValidationError, single_dataset: bool) -> Salvaged | None:
    """Drop every refused value (a key, or the list item holding it) and validate again, so the
    cross-checks can still judge the rest. None when a required top-level field was refused.

    ``index[key][i]`` is the original position of item ``i`` of a top-level list after pruning.
    """
    data = copy.deepcopy(data)
    if "dataset" in data and "datasets" not in data:
        data["datasets"] = [data.pop("dataset")]
    index = {k: list(range(len(v))) for k, v in data.items() if isinstance(v, list)}
    extra: list[Problem] = []
    for _ in range(SALVAGE_ROUNDS):
        errors = err.errors()
        inside = {tuple(e["loc"][:1]) for e in errors if len(e["loc"]) > 1}
        targets = {_target(data, _strip_tags(tuple(e["loc"])), e["type"]) for e in errors
                   if not (e["type"] == "too_short" and tuple(e["loc"]) in inside)}
        if () in targets:
            return None
        for path in sorted(targets, key=_sort_key, reverse=True):
            _prune(data, path, index)
        try:
            return Salvaged(model.model_validate(data), extra, index)
        except ValidationError as again:
            err = again
            salv = Salvaged(None, [], index)
            extra += [Problem(salv.original(p.field), p.message)
                      for p in problems_from_validation(again, model, only_value_errors=True)]
            extra = [Problem(user_field(p.field, single_dataset), p.message) for p in extra]
    return None


def _sort_key(path: tuple[Any, ...]) -> tuple[str, ...]:
    # deeper and later items first, so deleting one does not shift another still to delete
    return tuple(f"{p:012d}" if isinstance(p, int) else str(p) for p in path)


def _target(data: Any, loc: tuple[Any, ...], kind: str) -> tuple[Any, ...]:
    """The part of ``data`` to drop for an error at ``loc``: the value itself, its parent for a
    missing field, or the deepest part of the path that exists in the raw data."""
    path = loc[:-1] if kind == "missing" else loc
    node, reached = data, 0
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
        reached += 1
    return path[:reached]


def _prune(data: dict[str, Any], path: tuple[Any, ...], index: dict[str, list[int]]) -> None:
    parent: Any = data
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    if path in _PLACEHOLDERS:
        parent[key] = _PLACEHOLDERS[path]
    elif len(path) == 2 and path[0] == "variants":
        parent[key] = {}  # keep the variant's name known, so references to it are not follow-on errors
    elif isinstance(parent, list):
        del parent[key]
        if len(path) == 2 and path[0] in index:
            del index[path[0]][key]
    else:
        parent.pop(key, None)
