"""Input drift: are the tickets that arrived since the adapter was trained unlike the ones it was trained on?

Three views, each a number in [0, 1] compared with a threshold:
  topic mix     total variation distance between the topic distributions,
  length        two-sample Kolmogorov-Smirnov statistic of the customer-message lengths,
  meaning       cosine distance between the mean MiniLM embeddings (skipped without the embedding wheel).
Too few new examples is never drift: small samples move these numbers by chance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class DriftThresholds:
    topic_tvd: float = 0.25
    length_ks: float = 0.3
    centroid_cosine: float = 0.1
    min_new_examples: int = 20


def topic_tvd(reference: list[str], new: list[str]) -> float:
    ref, cur = Counter(reference), Counter(new)
    total_ref, total_cur = max(sum(ref.values()), 1), max(sum(cur.values()), 1)
    return 0.5 * sum(abs(ref[t] / total_ref - cur[t] / total_cur) for t in set(ref) | set(cur))


def ks_statistic(reference: list[float], new: list[float]) -> float:
    """Largest gap between the two empirical CDFs (the two-sample Kolmogorov-Smirnov statistic)."""
    from scipy.stats import ks_2samp

    if not reference or not new:
        return 0.0
    return float(ks_2samp(reference, new).statistic)


def centroid_distance(reference: np.ndarray, new: np.ndarray) -> float:
    a, b = reference.mean(axis=0), new.mean(axis=0)
    return float(1.0 - a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def first_user_text(messages: list[dict]) -> str:
    return next((m["content"] for m in messages if m["role"] == "user"), "")


def drift_report(reference: pl.DataFrame, new: pl.DataFrame, thresholds: DriftThresholds = DriftThresholds(),
                 embed: Callable[[list[str]], np.ndarray | None] | None = None) -> dict:
    """`reference` and `new` are curated rows (topic, messages). Returns the metrics, which ones exceeded
    their threshold and `drifted`."""
    report = {"reference_examples": reference.height, "new_examples": new.height,
              "thresholds": asdict(thresholds), "metrics": {}, "exceeded": []}
    if reference.height == 0 or new.height < thresholds.min_new_examples:
        report["drifted"] = False
        report["reason"] = f"{new.height} new examples (< {thresholds.min_new_examples}): not enough to judge"
        return report
    ref_text = [first_user_text(m) for m in reference["messages"].to_list()]
    new_text = [first_user_text(m) for m in new["messages"].to_list()]
    metrics = {"length_ks": ks_statistic([len(t) for t in ref_text], [len(t) for t in new_text])}
    if "topic" in reference.columns and "topic" in new.columns:  # live traffic has no topic labels
        metrics["topic_tvd"] = topic_tvd(reference["topic"].to_list(), new["topic"].to_list())
    if embed is not None:
        ref_vectors, new_vectors = embed(ref_text), embed(new_text)
        if ref_vectors is not None and new_vectors is not None:
            metrics["centroid_cosine"] = centroid_distance(np.asarray(ref_vectors), np.asarray(new_vectors))
    report["metrics"] = {k: round(v, 4) for k, v in metrics.items()}
    report["exceeded"] = sorted(k for k, v in metrics.items() if v > getattr(thresholds, k))
    report["drifted"] = bool(report["exceeded"])
    report["reason"] = ("drift in " + ", ".join(report["exceeded"])) if report["drifted"] else "no drift"
    return report
