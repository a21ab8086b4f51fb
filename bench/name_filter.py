"""Fit tuneline's name filter (tuneline.pii_name_filter) on the dev sets only and choose its threshold.

`python -m bench.name_filter` reads presidio-research generated_large and WNUT'17 train from
../shared/data, runs the redactor without the filter, labels each PERSON/LOCATION/ORGANIZATION detection
scored below 0.9 as true (it overlaps a gold PII span) or false, and cross-validates (5 folds grouped by
text). The threshold is the highest of the grid that keeps >= 98.5% of the synthetic set's true detections
out of fold; the table shows what each threshold does. The classifier is then fitted on every row and
written beside the module with its sha256. The held-out sets are not read here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEV_FILES = ("presidio/generated_large.json", "wnut17/emerging.train.conll")
SYNTHETIC = DEV_FILES[0]
THRESHOLDS = tuple(round(0.2 + 0.05 * k, 2) for k in range(16))  # 0.2 .. 0.95
KEEP_SYNTHETIC = 0.985
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def classifier():
    from sklearn.ensemble import HistGradientBoostingClassifier

    # shallow trees with large leaves: 600 of the 624 features are word vectors and only ~370 rows are false, so
    # the unregularised model (31 leaves of >= 20 rows) fitted the synthetic set's names; out of fold, at the
    # same share of true detections kept, these trees flag ~10% fewer of WNUT train's PII-free texts
    return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=7, min_samples_leaf=80,
                                          l2_regularization=1.0, class_weight="balanced", random_state=0)


def candidate_rows(data: Path, redactor=None, keep=None):
    """(features, is_true, file, text index) per candidate detection; per file the texts that another
    detection flags anyway, and the texts without PII. `redactor` (without its filter) proposes the detections,
    by default the shipped pipeline's; `keep(file, position)` says which texts to use, by default all."""
    from tuneline.pii import PiiRedactor
    from tuneline.pii_eval import NOT_PII, load_labeled
    from tuneline.pii_name_filter import candidates, span_features

    redactor = redactor or PiiRedactor(name_filter=False)
    rows, flagged_otherwise, pii_free = [], {}, {}
    for name in DEV_FILES:
        records = [r for i, r in enumerate(load_labeled(data / name)) if keep is None or keep(name, i)]
        found = redactor.analyze([r["full_text"] for r in records])
        vocab = redactor.analyzer.nlp_engine.nlp["en"].vocab
        flagged_otherwise[name], pii_free[name] = set(), set()
        judged = set(candidates([r["full_text"] for r in records], found, redactor.vouched_names))
        for i, (record, results) in enumerate(zip(records, found, strict=True)):
            gold = [s for s in record.get("spans") or [] if s["entity_type"] not in NOT_PII]
            if not gold:
                pii_free[name].add(i)
            for j, r in enumerate(results):
                if (i, j) not in judged:
                    flagged_otherwise[name].add(i)
                    continue
                hit = any(r.start < s["end_position"] and s["start_position"] < r.end for s in gold)
                rows.append((span_features(record["full_text"], r.start, r.end, r.entity_type, r.score, vocab),
                             hit, name, i))
    return rows, flagged_otherwise, pii_free, redactor


def out_of_fold(rows: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and each row's probability from the classifier fitted without its text (5 folds)."""
    from sklearn.model_selection import GroupKFold

    x = np.stack([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    groups = np.array([DEV_FILES.index(r[2]) * 1_000_000 + r[3] for r in rows])
    probability = np.zeros(len(rows))
    for train, test in GroupKFold(5).split(x, y, groups):
        probability[test] = classifier().fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    return x, y, probability


def threshold_table(rows: list, y: np.ndarray, probability: np.ndarray, flagged_otherwise: dict,
                    pii_free: dict) -> tuple[list[str], float]:
    """The table's lines per threshold, and the threshold the rule chooses (the highest that keeps >=
    KEEP_SYNTHETIC of the synthetic set's true detections out of fold)."""
    lines, chosen = [], THRESHOLDS[0]
    for threshold in (0.0, *THRESHOLDS):
        cells = []
        for name in DEV_FILES:
            mine = [k for k, r in enumerate(rows) if r[2] == name]
            true = [k for k in mine if y[k]]
            kept = sum(probability[k] >= threshold for k in true)
            still = {rows[k][3] for k in mine if probability[k] >= threshold} | flagged_otherwise[name]
            free = pii_free[name]
            cells.append(f"{kept}/{len(true)} ({kept / max(1, len(true)):.3f}), "
                         f"{len(free & still)}/{len(free)} ({len(free & still) / max(1, len(free)):.1%})")
            if name == SYNTHETIC and threshold and kept >= KEEP_SYNTHETIC * len(true):
                chosen = threshold
        lines.append(f"{threshold:.2f} | " + " | ".join(cells))
    return lines, chosen


def fitted_filter(redactor, keep=None, data: Path = DATA):
    """A name filter fitted, by this module's rule, on what `redactor` (without its filter) proposes on the
    dev texts `keep` selects: how another NER would be paired with its own filter."""
    from tuneline import pii_name_filter

    rows, flagged_otherwise, pii_free, redactor = candidate_rows(data, redactor, keep)
    x, y, probability = out_of_fold(rows)
    _, chosen = threshold_table(rows, y, probability, flagged_otherwise, pii_free)
    width = redactor.analyzer.nlp_engine.nlp["en"].vocab.vectors.shape[1]
    return pii_name_filter.NameFilter(classifier=classifier().fit(x, y), spacy_model=redactor.spacy_model,
                                      vector_width=width, threshold=chosen, fitted_on=DEV_FILES)


def main(argv: list[str] | None = None) -> None:
    from tuneline import pii_name_filter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--dry-run", action="store_true", help="report the cross-validation, write nothing")
    args = parser.parse_args(argv)

    rows, flagged_otherwise, pii_free, redactor = candidate_rows(args.data)
    x, y, probability = out_of_fold(rows)
    print(f"{len(rows)} candidate detections, {int(y.sum())} true, {int((~y).sum())} false")
    print("threshold | " + " | ".join(f"{n}: true kept, PII-free texts flagged" for n in DEV_FILES))
    lines, chosen = threshold_table(rows, y, probability, flagged_otherwise, pii_free)
    print("\n".join(lines))
    print(f"chosen threshold: {chosen} (highest keeping >= {KEEP_SYNTHETIC:.1%} of {SYNTHETIC}'s true detections)")
    if args.dry_run:
        return
    width = redactor.analyzer.nlp_engine.nlp["en"].vocab.vectors.shape[1]
    fitted = pii_name_filter.NameFilter(classifier=classifier().fit(x, y), spacy_model=redactor.spacy_model,
                                        vector_width=width, threshold=chosen, fitted_on=DEV_FILES)
    print("written", pii_name_filter.MODEL_PATH, pii_name_filter.save(fitted))


if __name__ == "__main__":
    main()
