"""The retrieval-bias gate: MaxSkew@k or NDKL@k of a query set must stay below a threshold.

Retrieval rows in metrics.csv carry ``category`` = ``<query set>/<query>`` for each query and
``<query set>/mean`` for the average over the set (see :func:`audit.retrieval.retrieval_rows`).
"""

from __future__ import annotations

from audit.gates.evaluators import make_rule
from audit.gates.judge import GateContext, fmt_ratio, where_group
from audit.gates.result import GateResult
from audit.spec.models import MaxRetrievalSkewGate


def eval_max_retrieval_skew(gate: MaxRetrievalSkewGate, ctx: GateContext) -> list[GateResult]:
    """Judge the set mean (or every query with ``per_query``) against the threshold."""
    metric = f"{gate.measure}@{gate.k}"
    rule = make_rule(gate, ctx, metric=metric, what=f"{gate.measure.replace('_', '')}@{gate.k}", op="<=",
                     threshold=gate.threshold, fmt=fmt_ratio)
    prefix = f"{gate.query_set}/"
    out: list[GateResult] = []
    # retrieval rows belong to the run's base variant: the ranking does not depend on the vocabulary
    variants = tuple(dict.fromkeys(ctx.metrics.loc[ctx.metrics["metric"] == metric, "variant"])) or ctx.variants[:1]
    for model, variant in ctx.targets(gate, variants):
        rows = ctx.select(metric, model, variant, group_col=gate.group_col)
        cats = rows["category"].astype(str)
        keep = cats.str.startswith(prefix) & ((cats == f"{prefix}mean") ^ gate.per_query)
        rows = rows.loc[keep]
        if rows.empty:
            why = ctx.explain_missing(metric, model, variant, group_col=gate.group_col)
            fix = f"add k={gate.k} and query set '{gate.query_set}' to the probe's retrieval section"
            out.append(rule.missing(model, variant, why, fix, group_col=gate.group_col))
            continue
        for row in rows.to_dict("records"):
            query = str(row["category"])[len(prefix):]
            where = where_group(row) + ("" if query == "mean" else f" for query '{query}'")
            if query == "mean":
                where = f"(mean over query set {gate.query_set}) {where}"
            out.append(rule.check(row, where))
    return out
