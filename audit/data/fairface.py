"""FairFace (``HuggingFaceM4/FairFace``): face crops labelled with age bin, gender and race.

Configs ``'0.25'`` (tight crop, the paper's main setting; default) and ``'1.25'``; splits
``train`` and ``validation`` (default). ``age``, ``gender`` and ``race`` are ClassLabels; their
names are read from the features, never hard-coded. ``service_test`` is ignored.
A local directory laid out like the hub repo (parquet files plus a README whose front matter
lists the configs) loads through the same code.
"""

from __future__ import annotations

from typing import Any, ClassVar

from audit.data import TableDataset, build_dataset, check_options, local_signature
from audit.data.base import AdapterBase, Option, option_help
from audit.data.hf import Source, hf_table, open_split, resolve_source
from audit.errors import UserError


class FairFaceAdapter(AdapterBase):
    """FairFace from the hub or a local copy of the hub repo.

    Metadata: ``image_id`` (``<split>/<row:06d>``), ``age``, ``gender``, ``race`` (label strings),
    plus ``target``/``target_index`` when ``dataset.target`` names one of them (then
    ``DatasetInfo.class_names`` are that column's names).
    """

    columns: ClassVar[tuple[str, ...] | None] = ("age", "gender", "race")
    default_source: ClassVar[str | None] = "HuggingFaceM4/FairFace"
    default_split: ClassVar[str] = "validation"
    default_config: ClassVar[str] = "0.25"
    options: ClassVar[dict[str, Option]] = {}
    options_help: ClassVar[dict[str, str]] = option_help(options)

    def _source(self) -> Source:
        """Where the data is; the synthetic adapter overrides this to generate a directory."""
        return resolve_source(self.spec.source, self.default_source, self.resolve, self.spec.adapter)

    def _extra(self) -> dict[str, Any]:
        """More ``DatasetInfo.extra`` entries (the synthetic adapter records its options)."""
        return {}

    def load(self) -> TableDataset:
        spec = self.spec
        check_options(spec, self.options, self.resolve)
        attributes = tuple(dict.fromkeys([*(self.columns or ()), *spec.columns]))
        if spec.target is not None and spec.target not in attributes:
            raise UserError(f"dataset.target: '{spec.target}' is not a column of {spec.adapter} "
                            f"(columns: {', '.join(attributes)})",
                            fix="use one of the columns, e.g. target: race")
        source = self._source()
        config = spec.config or self.default_config
        split = spec.split or self.default_split
        ds = open_split(source, config=config, split=split, revision=spec.revision)
        table = hf_table(ds, spec, split=split, attributes=attributes)
        table.extra.pop("image_columns", None)
        if source.local is not None:
            table.extra["local_signature"] = local_signature(source.local)
        table.extra.update(self._extra())
        return build_dataset(spec, table, source=source.id, config=config, split=split,
                             revision=spec.revision)
