"""Per-user protocol metrics inside Spark's Python workers, for `jobs/evaluate.py`.

The formulas are `models.metrics` (plain Python), the same code the JVM-free teacher evaluation
uses, so every model in `recs.eval_metrics` is measured by one implementation.
"""

from __future__ import annotations

import pandas as pd

from models import metrics


def user_metrics_udf():
    """pandas UDF: (ranked item ids, relevant item ids) -> struct<ndcg@10, recall@20, hits in
    the top 20>."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("struct<ndcg:double, recall:double, hits:long>")
    def user_metrics(ranked: pd.Series, relevant: pd.Series) -> pd.DataFrame:
        pairs = [(list(r), set(t)) for r, t in zip(ranked, relevant)]
        return pd.DataFrame({"ndcg": [metrics.ndcg_at_k(r, t, 10) for r, t in pairs],
                             "recall": [metrics.recall_at_k(r, t, 20) for r, t in pairs],
                             "hits": [sum(1 for i in r[:20] if i in t) for r, t in pairs]})

    return user_metrics
