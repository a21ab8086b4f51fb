"""Two base models side by side on the same bitext test tickets: the per-product table and one pooled interval.

`bench.bitext_quality evaluate` run on two homes that share one pseudonym key (so the same splits; BENCHMARKS.md
section 6, "A second offline base model") leaves each product's served replies in
`<home>/reports/<product>/generations.json`. With 7-24 test tickets a product cannot tell two base models apart,
so besides the per-product rows this pools every ticket of the products both homes evaluated and puts a paired
bootstrap interval on the served ROUGE-L difference (second home minus first), ticket by ticket:

    PYTHONPATH=. .venv/bin/python -m bench.base_model_compare --home /tmp/bs --name SmolLM2-135M-Instruct \\
        --other-home /tmp/bx --other-name "Gemma 3 270M"

Nothing is trained or generated; a ticket counts only when both homes hold it with the same reference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.bitext_quality import finished_rows
from tuneline.evaluation import paired_bootstrap, rouge_per_example
from tuneline.names import product_key

COLUMNS = ("| product | base model | train / test | val ROUGE-L greedy / beam | chosen | test base | test greedy | "
           "**test served** | delta [95% CI] | ended with EOT | gate | train s + choice s + eval s |\n"
           "|---|---|---|---|---|---:|---:|---:|---|---:|---|---|")


def evaluated_rows(home: Path) -> dict[str, dict]:
    """The latest finished evaluate row per product of one home (a failed run has no scores to compare)."""
    results = json.loads((home / "bitext_quality.json").read_text())
    return {row["product"]: row for row in finished_rows(results.get("evaluate", {}).get("rows", []))}


def served_scores(home: Path, product: str) -> dict[tuple[str, str], float]:
    """Served ROUGE-L per test ticket, keyed by (prompt, reference) so two homes' tickets pair exactly. The
    product name comes from a file, so it passes the one name gate before it becomes a path."""
    samples = json.loads((home / "reports" / product_key(product) / "generations.json").read_text())
    scores = rouge_per_example([s["tuned"] for s in samples], [s["reference"] for s in samples])["rougeL"]
    return {(s["prompt"], s["reference"]): score for s, score in zip(samples, scores, strict=True)}


def row_line(product: str, name: str, r: dict) -> str:
    return (f"| {product} | {name} | {r['train']} / {r['test']} | {r['val_rougeL_greedy']:.3f} / "
            f"{r['val_rougeL_beam']:.3f} | {r['decoding']} | {r['rougeL_base']:.3f} | {r['rougeL_tuned_greedy']:.3f} "
            f"| **{r['rougeL_tuned']:.3f}** | {r['delta']:+.3f} {r['ci']} | {r['eot_count']}/{r['test']} | "
            f"{'passed' if r['gate'] else 'failed'} | {r['train_seconds']:.0f} + {r['val_choice_seconds']:.0f} + "
            f"{r['eval_seconds']:.0f} |")


def compare(home: Path, name: str, other_home: Path, other_name: str) -> str:
    rows, other_rows = evaluated_rows(home), evaluated_rows(other_home)
    lines, first, second, per_product = [COLUMNS], [], [], []
    for product in sorted(set(rows) & set(other_rows)):
        lines += [row_line(product, name, rows[product]), row_line(product, other_name, other_rows[product])]
        mine, theirs = served_scores(home, product), served_scores(other_home, product)
        shared = sorted(set(mine) & set(theirs))
        if len(shared) != len(mine) or len(shared) != len(theirs):
            raise SystemExit(f"{product}: the two homes hold different test tickets ({len(mine)}, {len(theirs)}, "
                             f"{len(shared)} in common): prepare both with the same pseudonym key")
        first += [mine[k] for k in shared]
        second += [theirs[k] for k in shared]
        per_product.append((rows[product]["rougeL_tuned"], other_rows[product]["rougeL_tuned"]))
    if not per_product:
        raise SystemExit("no product evaluated in both homes")
    n = len(per_product)
    interval = paired_bootstrap(second, first)
    lines += ["", f"Products in both homes: {n}; mean of the products' served ROUGE-L: {name} "
                  f"{sum(a for a, _ in per_product) / n:.3f}, {other_name} {sum(b for _, b in per_product) / n:.3f}.",
              f"All {interval['n']} test tickets pooled, {other_name} minus {name}, paired bootstrap: "
              f"{interval['delta']:+.3f} [{interval['ci_low']:+.3f}, {interval['ci_high']:+.3f}]."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--name", required=True, help="the first home's base model, as the table names it")
    parser.add_argument("--other-home", type=Path, required=True)
    parser.add_argument("--other-name", required=True)
    ns = parser.parse_args()
    print(compare(ns.home.resolve(), ns.name, ns.other_home.resolve(), ns.other_name))


if __name__ == "__main__":
    main()
