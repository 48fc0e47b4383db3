"""JSON Schemas of the files audit reads and writes, and the probe reference generated from them.

``python -m audit schema probe|label-set|manifest|gates`` prints a JSON Schema (pydantic's
``model_json_schema``); ``--markdown`` prints the reference that ``docs/probe-reference.md`` holds
(a test fails when that file drifts from the models).
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from audit.errors import DataError
from audit.registry import Registry

#: Documents with a published schema: name -> lazy "module:attr" of its pydantic model. The
#: run-directory models belong to :mod:`audit.results`.
SCHEMAS: Registry[type[BaseModel]] = Registry("schema", {
    "probe": "audit.spec.models:ProbeSpec",
    "label-set": "audit.spec.models:LabelSet",
    "manifest": "audit.results.manifest:Manifest",
    "gates": "audit.results.gates:GatesFile",
})
#: What ``docs/probe-reference.md`` documents, in order, and the command that regenerates it.
REFERENCE = ("probe", "label-set")
REGENERATE = "python -m audit schema --markdown probe label-set > docs/probe-reference.md"


def schema_model(name: str) -> type[BaseModel]:
    """The pydantic model of a published document; :class:`DataError` if it is not importable."""
    try:
        model = SCHEMAS.get(name)
    except (ImportError, AttributeError) as exc:
        raise DataError(f"the schema of '{name}' is not available in this installation: {exc}",
                        fix="update audit (the model behind it is not part of this version)") from None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise DataError(f"the schema target of '{name}' is not a pydantic model")
    return model


def json_schema(name: str) -> str:
    """The JSON Schema of a document, as indented JSON text."""
    return json.dumps(schema_model(name).model_json_schema(), indent=2) + "\n"


def markdown(names: typing.Sequence[str]) -> str:
    """A reference page: one section per model reachable from the named documents."""
    lines = ["# Probe reference", "",
             f"Generated from the pydantic models by `{REGENERATE}`; do not edit by hand.",
             "Every key is checked when a probe is loaded (`python -m audit validate`): unknown keys are errors.", ""]
    seen: list[type[BaseModel]] = []
    for name in names:
        root = schema_model(name)
        lines += [f"## `{name}` files: {root.__name__}", ""]
        for model in _reachable(root, seen):
            lines += _section(model)
        if root.__name__ == "ProbeSpec":
            lines += adapter_options() + limits_section()
    return "\n".join(lines).rstrip("\n") + "\n"


def _reachable(root: type[BaseModel], seen: list[type[BaseModel]]) -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    stack = [root]
    while stack:
        model = stack.pop(0)
        if model in seen:
            continue
        seen.append(model)
        out.append(model)
        for f in model.model_fields.values():
            stack += [m for m in _models_in(f.annotation) if m not in seen]
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _section(model: type[BaseModel]) -> list[str]:
    doc = " ".join((model.__doc__ or "").split())
    lines = [f"### {model.__name__}", "", doc, "", "| key | type | default | description |", "|---|---|---|---|"]
    for key, f in model.model_fields.items():
        desc = (f.description or "").replace("|", "\\|")
        bounds = _constraints(f)
        lines.append(f"| `{key}` | {_type(f.annotation)}{'; ' + bounds if bounds else ''} | {_default(f)} | {desc} |")
    return lines + [""]


def _type(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type(a) for a in args)
    if origin is tuple:
        return f"list of {_type(args[0])}" if len(args) == 2 and args[1] is Ellipsis else \
            "list of (" + ", ".join(_type(a) for a in args) + ")"
    if origin is dict:
        return f"mapping of {_type(args[0])} to {_type(args[1])}"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(f: FieldInfo) -> str:
    if f.is_required():
        return "required"
    value = f.default_factory() if f.default_factory is not None else f.default  # type: ignore[call-arg]
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "see below" if value.model_fields_set else "defaults"
    return f"`{json.dumps(value, default=_jsonable)}`"


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json", exclude_defaults=True) if isinstance(value, BaseModel) else str(value)


def _constraints(f: FieldInfo) -> str:
    """pydantic's bounds (``gt``, ``ge``, ``min_length``, ...) of a field, written out."""
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "min_length": "at least", "max_length": "at most"}
    out = []
    for meta in f.metadata:
        for attr, word in words.items():
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{word} {value}" + (" items" if "length" in attr else ""))
    return ", ".join(out)


def limits_section() -> list[str]:
    """The size limits of probe and label-set files, and how to raise them."""
    from audit.spec import limits

    lines = ["## Limits", "", "Files and lists over these limits are refused before they are parsed or validated.", "",
             "| limit | default | raise with |", "|---|---|---|"]
    for lim in (limits.PROBE_BYTES, limits.PROBE_ITEMS, limits.LABEL_SET_BYTES, limits.LABEL_SET_ITEMS,
                limits.YAML_NODES):
        lines.append(f"| {lim.what} | {lim.default:,} | `{lim.env}` |")
    return lines + [""]


def adapter_options() -> list[str]:
    """A section listing each dataset adapter's declared ``options``."""
    from audit import registries

    lines = ["## Dataset adapter options", "",
             "`datasets[i].options` takes only the options its adapter declares (checked by `validate`).", "",
             "| adapter | option | type | meaning |", "|---|---|---|---|"]
    for name in registries.DATASETS.names():
        for key, opt in getattr(registries.DATASETS.get(name), "options", {}).items():
            kind = opt.type + (f" in [{opt.bounds[0]}, {opt.bounds[1]}]" if opt.bounds else "")
            kind += f": {', '.join(opt.choices)}" if opt.choices else ""
            lines.append(f"| `{name}` | `{key}` | {kind} | {opt.help.replace('|', chr(92) + '|')} |")
    return lines + [""]
