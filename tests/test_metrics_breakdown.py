"""The breakdown engine: groupings, levels, labels and counts against hand-made masks."""

from __future__ import annotations

import pandas as pd
import pytest

from audit.metrics.breakdown import (
    ALL,
    OVERALL,
    Grouping,
    column_levels,
    grouping_levels,
    groupings,
    plan,
    splits,
)
from tests.test_metrics_support import CATEGORY, DATASET, GENDER, RACE, predictions, probe


def test_groupings_follow_the_declaration() -> None:
    found = groupings(probe().datasets[0])
    assert [(g.name, g.columns) for g in found] == [
        (OVERALL, ()), ("race", ("race",)), ("gender", ("gender",)),
        ("race x gender", ("race", "gender")),
    ]
    assert OVERALL not in [g.name for g in groupings(probe().datasets[0], overall=False)]


def test_levels_keep_categorical_order_and_sort_strings() -> None:
    ordered = pd.Series(pd.Categorical(["b", "a"], categories=["b", "a", "c"]))
    assert column_levels(ordered) == ["b", "a", "c"]
    assert column_levels(pd.Series(["b", None, "a", "b"])) == ["a", "b"]


def test_intersection_levels_are_the_full_product() -> None:
    levels = grouping_levels(predictions(), Grouping("race x gender", ("race", "gender")))
    assert len(levels) == 3 * 2
    assert "East Asian x Male" in levels  # no such image: still a level, reported as empty


def _split(frame: pd.DataFrame, name: str, **key: str):
    spec_plan = plan({DATASET: probe().datasets[0]})
    found = [s for s in splits(frame, spec_plan) if s.grouping.name == name
             and all(s.key[k] == v for k, v in key.items())]
    assert len(found) == 1
    return found[0]


def test_counts_match_hand_masks() -> None:
    frame = predictions()
    hits = frame["top1_category"] == "crime"
    split = _split(frame, "race x gender")
    counts = dict(split.counts(hits[split.frame.index]))
    for race in set(RACE):
        for gender in set(GENDER):
            mask = [r == race and g == gender for r, g in zip(RACE, GENDER)]
            k = sum(m and c == "crime" for m, c in zip(mask, CATEGORY))
            got = counts[f"{race} x {gender}"]
            assert (got.k, got.n) == (k, sum(mask))
    overall = dict(_split(frame, OVERALL).counts(hits))
    assert (overall[ALL].k, overall[ALL].n) == (CATEGORY.count("crime"), len(CATEGORY))


def test_na_group_values_leave_the_grouping_but_not_overall() -> None:
    race = list(RACE)
    race[0] = None
    frame = predictions(race=race)
    split = _split(frame, "race")
    assert 0 not in split.frame.index and len(split.frame) == len(RACE) - 1
    assert dict(split.counts(split.frame["top1_category"] == "crime"))["Black"].n == 3
    assert len(_split(frame, OVERALL).frame) == len(RACE)


def test_na_hits_do_not_count() -> None:
    frame = predictions()
    hits = pd.Series([True, None] + [False] * (len(RACE) - 2), dtype="boolean")
    black = dict(_split(frame, "race").counts(hits))["Black"]
    assert (black.k, black.n) == (1, 3)


def test_every_cell_reports_every_level() -> None:
    # Model b saw no East Asian image: the group is still there, with no rows.
    a = predictions(model="a")
    b = predictions(CATEGORY[:9], race=RACE[:9], gender=GENDER[:9], model="b")
    frame = pd.concat([a, b], ignore_index=True)
    groups = dict(_split(frame, "race", model="b").groups())
    assert set(groups) == {"Black", "White", "East Asian"}
    assert groups["East Asian"].empty


def test_cells_are_dataset_model_variant() -> None:
    frame = pd.concat([predictions(variant="default"), predictions(variant="strict")], ignore_index=True)
    keys = {tuple(s.key.values()) for s in splits(frame, plan({DATASET: probe().datasets[0]}))}
    assert keys == {(DATASET, "m", "default"), (DATASET, "m", "strict")}


def test_duplicate_index_is_tolerated() -> None:
    frame = pd.concat([predictions(model="a"), predictions(model="b")])  # index repeats
    split = _split(frame, "race", model="b")
    assert dict(split.counts(split.frame["top1_category"] == "crime"))["Black"].k == 2


def test_unknown_dataset_is_an_error() -> None:
    with pytest.raises(ValueError, match="'other'"):
        list(splits(predictions().assign(dataset="other"), plan({DATASET: probe().datasets[0]})))
