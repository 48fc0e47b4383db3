"""Release over release: compare runs or models with paired tests, and gate on regressions.

- :mod:`audit.compare.stats`: McNemar/Newcombe (paired), z-test/Newcombe (unpaired), Holm.
- :mod:`audit.compare.core`: the comparison table of two sides.
- :mod:`audit.compare.runs`: sides from run directories; every model pair of one run.
- :mod:`audit.compare.output`: comparison.csv/.html, the console summary, ``audit compare``.
"""

from audit.compare.core import COMPARISON_COLUMNS, Side, compare_sides, higher_is_better
from audit.compare.runs import compare_runs, fairness_compare, model_pairs

__all__ = ["COMPARISON_COLUMNS", "Side", "compare_runs", "compare_sides", "fairness_compare", "higher_is_better",
           "model_pairs"]
