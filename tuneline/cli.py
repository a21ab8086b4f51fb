"""`tuneline`: the entry points that are not asset materializations.

    tuneline demo       generate demo tickets if the landing zone is empty, materialize every product
    tuneline dev        the Dagster UI (webserver + daemon) on 127.0.0.1:3000 over the same storage
    tuneline serve      OpenAI-compatible server: base model + each product's adapter (`model` = product)
    tuneline export-merged  merged weights for vLLM/TGI, with a base+adapter parity check
    tuneline registry   show a product's champion adapter, or roll it back to an earlier version
    tuneline pii-eval   measure PII recall/precision per entity type on a labeled file
    tuneline generate   write seeded synthetic tickets into a landing zone
    tuneline forget     remove one customer's tickets (--email / --ticket-id) from every stage, with an audit record
    tuneline products   register the landing zone's product folders as partitions (and list skipped entries)
    tuneline train      train one adapter from a YAML TrainConfig, without Dagster
    tuneline eval       evaluate an adapter (or the base model) on any chat JSONL file
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEMO_PRODUCTS = ("billing", "shipping", "account")
DAGSTER_YAML = """\
# written by tuneline: no telemetry (offline machines), one training run at a time
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
# under `make dev` the daemon frees the pool slots of a run that ended without freeing them (a run killed
# without reporting is failed first by `fail_runs_whose_worker_is_gone` when tuneline launches runs)
run_monitoring:
  enabled: true
  start_timeout_seconds: 600  # a run worker importing torch on a busy two-core machine is slow to start
  free_slots_after_run_end_seconds: 60
"""


def ensure_dagster_home(home: Path | None = None) -> Path:
    """DAGSTER_HOME (default $TUNELINE_HOME/dagster_home) with a dagster.yaml, so runs persist between commands."""
    if home is None:
        default = Path(os.environ.get("TUNELINE_HOME", ".tuneline")).resolve() / "dagster_home"
        home = Path(os.environ.setdefault("DAGSTER_HOME", str(default)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def _demo_run_config(max_steps: int, eval_examples: int, max_new_tokens: int, learning_rate: float,
                     ops: set[str] | None = None) -> dict:
    training = {"max_steps": max_steps, "gradient_accumulation_steps": 1, "per_device_batch_size": 4,
                "learning_rate": learning_rate, "max_length": 384}
    config = {"ops": {
        "ingest_tickets": {"config": {"min_file_age_seconds": 0}},  # the demo wrote its files itself: complete
        "shared_adapter": {"config": training},
        "lora_adapter": {"config": training},
        "eval_report": {"config": {"max_examples": eval_examples, "max_new_tokens": max_new_tokens,
                                   "batch_size": 8}},
        "preference_adapter": {"config": {"max_steps": max(2, max_steps // 8)}},
    }}
    if ops is not None:  # a run's config names only the ops it runs
        config["ops"] = {k: v for k, v in config["ops"].items() if k in ops}
    return config


def _job_ops(job_name: str) -> set[str]:
    """The op names of a named job (multi-asset ops by their node name): a run's config names only those."""
    from ft_assets.definitions import defs

    return {node.name for node in defs.resolve_job_def(job_name).nodes_in_topological_order}


def run_demo(home: Path, products: list[str], tickets_per_product: int, max_steps: int, eval_examples: int,
             max_new_tokens: int, learning_rate: float = 5e-4, model_source: str | None = None,
             model: str | None = None) -> list[dict]:
    """Seed the landing zone if empty, register partitions, then launch the named jobs per product (data, the
    shared adapter, each product's adapter and evaluation) through workspace.yaml's code location, as the UI
    would: the runs appear under their jobs and on the Overview timeline."""
    home = home.resolve()
    os.environ["TUNELINE_HOME"] = str(home)
    if model_source:  # the runs' processes read the model from the environment, as under `dagster dev`
        os.environ["TUNELINE_MODEL_SOURCE"] = model_source
        os.environ.pop("TUNELINE_MODEL", None)
        if model:
            os.environ["TUNELINE_MODEL"] = str(model)
    ensure_dagster_home()

    import dagster as dg

    from ft_assets.definitions import Settings, build_resources
    from tuneline.launching import (
        check_results,
        fail_orphaned_runs,
        failed_steps,
        launch_and_wait,
        materialization_metadata,
        project_workspace,
    )
    from tuneline.synthetic import write_landing_zone

    resources = build_resources(Settings.from_env())
    from ft_resources.landing import LocalLandingZone

    if not isinstance(resources["landing"], LocalLandingZone):
        raise SystemExit("tuneline demo writes its tickets to a local landing zone; unset TUNELINE_LANDING")
    landing = Path(resources["landing"].path)
    if not landing.exists() or not any(landing.iterdir()):
        truth = write_landing_zone(landing, products, tickets_per_product)
        print(f"wrote {truth.rows_written} demo tickets for {', '.join(products)} into {landing}")
    instance = dg.DagsterInstance.get()
    fail_orphaned_runs(instance)
    found, _, _ = sync_products(instance, resources["landing"])
    products = [p for p in found if p in products] or products

    rows = []
    with project_workspace(instance) as workspace:
        def run(job_name: str, partition: str | None):
            config = _demo_run_config(max_steps, eval_examples, max_new_tokens, learning_rate, _job_ops(job_name))
            return launch_and_wait(instance, workspace, job_name, partition, config, {"tuneline/trigger": "demo"})

        # data for every product, then one adapter shared by all, then each product's adapter from it
        data_runs, seconds = {}, {}
        for product in products:
            started = time.perf_counter()
            data_runs[product] = run("prepare_product_data", product)
            if data_runs[product].status != dg.DagsterRunStatus.SUCCESS:
                raise RuntimeError(f"demo data run for {product!r} failed; see the run {data_runs[product].run_id} "
                                   "in the Dagster UI (make dev)")
            seconds[product] = time.perf_counter() - started
        started = time.perf_counter()
        shared = run("train_shared_adapter", None)
        if shared.status != dg.DagsterRunStatus.SUCCESS:
            raise RuntimeError(f"the shared adapter's run failed; see the run {shared.run_id} in the Dagster UI")
        print(f"shared adapter over {', '.join(products)} trained in {time.perf_counter() - started:.0f} s")

        for product in products:
            started = time.perf_counter()
            result = run("train_product", product)
            failed = failed_steps(instance, result.run_id)
            gate = check_results(instance, result.run_id).get("promotion_gate")
            if failed - {"eval_report"} or (failed and gate is not False) or \
                    (not failed and result.status != dg.DagsterRunStatus.SUCCESS):
                raise RuntimeError(f"demo run for {product!r} failed in {sorted(failed)}; see the run "
                                   f"{result.run_id} in the Dagster UI (make dev)")

            def metadata(run_id: str, asset: str) -> dict:
                return materialization_metadata(instance, run_id, asset)

            data = data_runs[product].run_id
            ingest, clean = metadata(data, "raw_tickets"), metadata(data, "cleaned_conversations")
            splits, report = metadata(data, "dataset_splits"), metadata(result.run_id, "eval_report")
            registered, adapter = metadata(result.run_id, "registered_model"), metadata(result.run_id, "lora_adapter")
            evaluation = json.loads(Path(report["results_file"]).read_text())
            rows.append({
                "product": product, "tickets_in": ingest["records_in"], "rejected": ingest["rejected"],
                "pii_replaced": clean["pii_entities_replaced"], "train": splits["train_examples"],
                "val": splits["val_examples"], "test": splits["test_examples"],
                "adapter": evaluation["adapter_dir"], "source": adapter.get("source", "-"),
                "rougeL_base": evaluation["base"]["rougeL"], "rougeL_tuned": evaluation["tuned"]["rougeL"],
                "ppl_base": evaluation["base"]["perplexity"], "ppl_tuned": evaluation["tuned"]["perplexity"],
                "rougeL_ci": "[{ci_low:+.3f}, {ci_high:+.3f}]".format(**evaluation["bootstrap"]["rougeL"]),
                "gate": "passed" if gate else "failed: " + "; ".join(evaluation["gate"]["reasons"]),
                "champion": f"v{registered['version']}" if registered.get("champion") else "-",
                "seconds": round(seconds[product] + time.perf_counter() - started, 1),
            })
        run("compare_evaluations", None)  # every product's evaluation in one table
    return rows


def print_demo_table(rows: list[dict]) -> None:
    from tuneline.reporting import markdown_table

    headers = ["product", "tickets_in", "rejected", "pii_replaced", "train", "val", "test", "rougeL_base",
               "rougeL_tuned", "rougeL_ci", "ppl_base", "ppl_tuned", "champion", "seconds"]
    print(markdown_table(headers, [[r[h] for h in headers] for r in rows]))
    for r in rows:
        print(f"adapter[{r['product']}] ({r['source']}): {r['adapter']}  promotion gate: {r['gate']}")


def _cmd_demo(ns: argparse.Namespace) -> int:
    started = time.perf_counter()
    rows = run_demo(Path(ns.home), ns.products.split(","), ns.tickets, ns.max_steps, ns.eval_examples,
                    ns.max_new_tokens, ns.learning_rate)
    print_demo_table(rows)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    print(f"open the UI:  make dev   (DAGSTER_HOME={os.environ['DAGSTER_HOME']}, http://127.0.0.1:3000)")
    return 0


def _cmd_dev(ns: argparse.Namespace) -> int:
    home = ensure_dagster_home()
    import dagster as dg

    from tuneline.launching import fail_orphaned_runs

    with dg.DagsterInstance.get() as instance:
        fail_orphaned_runs(instance)
    print(f"DAGSTER_HOME={home}; UI on http://{ns.host}:{ns.port}")
    dagster = Path(sys.executable).with_name("dagster")
    os.execv(str(dagster), [str(dagster), "dev", "-w", "workspace.yaml", "-h", ns.host, "-p", str(ns.port)])
    return 0


def _cmd_pii_eval(ns: argparse.Namespace) -> int:
    from ft_resources.pii import PiiEngine
    from tuneline.pii_eval import PiiReport, evaluate_records, load_labeled
    from tuneline.reporting import markdown_table

    results = {}
    for file in ns.file:  # each file's figures stay apart: a dev set and a held-out set are never pooled
        engine = PiiEngine(name_filter=not ns.no_name_filter)
        report = evaluate_records(engine.redactor(), load_labeled(Path(file), ns.format))
        print(f"{file}: {report.texts} texts, {report.pii_free_texts} without PII")
        print(markdown_table(PiiReport.HEADERS, report.rows()))
        rate = report.to_dict()["pii_free_false_positive_rate"]
        if rate is not None:
            flagged = f"{report.pii_free_flagged}/{report.pii_free_texts}"
            by_type = ", ".join(f"{t} {n}" for t, n in sorted(report.pii_free_flagged_by.items(),
                                                               key=lambda item: (-item[1], item[0])))
            print(f"texts without PII that were flagged: {flagged} ({rate:.1%})" + (f"; by type: {by_type}"
                                                                                   if by_type else ""))
        results[file] = report.to_dict()
    if ns.output:
        from tuneline.storage import atomic_write_json

        atomic_write_json(Path(ns.output), results)
    return 0


def _tracking_uri(ns: argparse.Namespace) -> str:
    return ns.tracking_uri or os.environ.get("TUNELINE_MLFLOW_URI") or f"sqlite:///{Path(ns.home).resolve()}/mlflow.db"


def _cmd_registry(ns: argparse.Namespace) -> int:
    from tuneline.registry import champion_version, rollback

    name = f"tuneline-{ns.product}"
    uri = _tracking_uri(ns)
    if ns.action == "rollback":
        if ns.version is None:
            print("rollback needs --version N", file=sys.stderr)
            return 2
        rollback(uri, name, ns.version)
        print(f"{name}: champion -> version {ns.version}")
        return 0
    champion = champion_version(uri, name)
    print(json.dumps(champion, indent=2, default=str) if champion else f"{name}: no champion yet")
    return 0


def _cmd_serve(ns: argparse.Namespace) -> int:
    import uvicorn

    from tuneline.serving import (
        AdapterServer,
        RegistryRollout,
        adapters_from_registry,
        base_model_of,
        challengers_from_registry,
        create_app,
    )

    adapters = dict(item.split("=", 1) for item in ns.adapter)
    challengers = dict(item.split("=", 1) for item in ns.challenger)
    registry_challengers = {}
    if ns.from_registry:
        adapters.update(adapters_from_registry(_tracking_uri(ns), ns.from_registry.split(",")))
        registry_challengers = challengers_from_registry(_tracking_uri(ns), ns.from_registry.split(","))
    if not adapters:
        print("nothing to serve: give --adapter product=DIR or --from-registry p1,p2", file=sys.stderr)
        return 2
    key = os.environ.get(ns.api_key_env) if ns.api_key_env else None
    if ns.api_key_env and not key:
        print(f"--api-key-env {ns.api_key_env} is not set in the environment", file=sys.stderr)
        return 2
    if not key and not ns.no_auth:
        print("refusing to serve without an API key: give --api-key-env VAR (a variable holding the bearer token), "
              "or --no-auth to serve anyone who can reach the port", file=sys.stderr)
        return 2
    if ns.no_auth:
        print("warning: --no-auth: anyone who can reach the port can use the models", file=sys.stderr)
    if ns.shadow and ns.no_response_log:
        print("--shadow records the challenger's answers in the response log: drop --no-response-log", file=sys.stderr)
        return 2
    challengers = {**registry_challengers, **challengers}
    server = AdapterServer(ns.base_model or base_model_of(next(iter(adapters.values()))), adapters, challengers)
    share = ns.challenger_share
    if registry_challengers and not ns.challenger:  # the A/B rollout in the registry sets and moves the share
        share = RegistryRollout(_tracking_uri(ns), registry_challengers, ns.rollout_poll_seconds)
    metrics = Path(ns.home).resolve() / "serving" / "metrics.json"
    log = None
    if not ns.no_response_log:
        from tuneline.pii import PiiRedactor
        from tuneline.serving import ResponseLog

        log = ResponseLog(Path(ns.home).resolve() / "serving" / "responses", PiiRedactor())
    print(f"serving {server.products} on http://{ns.host}:{ns.port}/v1 (auth: {'on' if key else 'off'}; "
          f"challengers: {sorted(challengers) or 'none'}"
          f"{' at shares from the registry' if callable(share) else f' at {share:.0%}'})")
    app = create_app(server, api_key=key, metrics_file=metrics, metrics_open=ns.open_metrics,
                     challenger_share=share, response_log=log, shadow=ns.shadow)
    uvicorn.run(app, host=ns.host, port=ns.port, log_level="warning")
    return 0


def _cmd_export_merged(ns: argparse.Namespace) -> int:
    from tuneline.export import export_merged

    print(json.dumps(export_merged(ns.adapter, ns.output), indent=2))
    return 0


def sync_products(instance, landing) -> tuple[list[str], list[str], dict[str, str]]:
    """Add a partition for every product folder of `landing` that passes the product-key gate.
    Returns (all products, newly added, {skipped entry id: reason})."""
    from ft_assets.partitions import PRODUCTS_PARTITION_NAME

    scan = landing.scan()
    known = set(instance.get_dynamic_partitions(PRODUCTS_PARTITION_NAME))
    added = sorted(scan.products - known)
    if added:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, added)
    return sorted(scan.products), added, scan.skipped


def _cmd_products(ns: argparse.Namespace) -> int:
    import dagster as dg

    from ft_assets.definitions import Settings, build_resources
    from tuneline.names import PRODUCT_KEY_RULE

    os.environ["TUNELINE_HOME"] = str(Path(ns.home).resolve())
    ensure_dagster_home()
    landing = build_resources(Settings.from_env())["landing"]
    with dg.DagsterInstance.get() as instance:
        if ns.action == "list":
            from ft_assets.partitions import PRODUCTS_PARTITION_NAME

            print("\n".join(sorted(instance.get_dynamic_partitions(PRODUCTS_PARTITION_NAME))) or "(no products)")
            return 0
        products, added, skipped = sync_products(instance, landing)
    print(f"landing zone {landing.describe()}: products {', '.join(products) or '(none)'}; "
          f"added {', '.join(added) or 'none'}")
    for entry, reason in sorted(skipped.items(), key=lambda kv: kv[1]):
        print(f"skipped {entry}: {reason}", file=sys.stderr)
    if any(r.startswith("invalid_product_name") for r in skipped.values()):
        print(f"a product folder name has {PRODUCT_KEY_RULE}; map others with TUNELINE_PRODUCT_ALIASES",
              file=sys.stderr)
    return 0


def forget_customer(instance, resources: dict, email: str | None = None, ticket_id: str | None = None):
    """Remove one customer's tickets from raw, rejected, cleaned, scored, splits and exports of every product,
    suppress them for later ingests, record a runless materialization per rewritten asset (so the UI and
    the retraining sensor see the change) and write a PII-free audit record. Local storage roots only."""
    import dagster as dg

    from ft_assets.partitions import PRODUCTS_PARTITION_NAME
    from ft_resources.io_manager import PartitionedFileIOManager, drop_asset_rows, read_asset_frame
    from ft_resources.pii import pseudonym_key
    from tuneline.cleaning import pseudonym
    from tuneline.forget import (
        EXPORT_FILES,
        PSEUDONYM_ASSETS,
        ForgetReport,
        matching_raw_ids,
        pseudonyms_of,
        rejected_matches,
        without_records,
    )
    from tuneline.paths import under
    from tuneline.splits import write_exports
    from tuneline.storage import atomic_directory, atomic_write_json

    if not isinstance(resources["io_manager"], PartitionedFileIOManager) or resources["storage"].remote:
        raise SystemExit("tuneline forget works on a local storage root; this one is on S3 (not supported yet)")
    storage = resources["storage"]
    with dg.build_resources({"pii": resources["pii"]}) as built:
        key = pseudonym_key(built.pii, storage)
    kind, value = ("email", email.strip().lower()) if email else ("ticket_id", ticket_id)
    report = ForgetReport(kind, pseudonym(value, key))
    root = storage.root_path
    for product in sorted(instance.get_dynamic_partitions(PRODUCTS_PARTITION_NAME)):
        raw = read_asset_frame(root, "raw_tickets", product)
        if raw is None:
            continue
        ids = matching_raw_ids(raw, email, ticket_id)
        hashed = pseudonyms_of(ids, key)
        counts: dict[str, int] = {}
        rewritten: dict[str, dict] = {}
        if ids:
            counts["raw_tickets"], _ = drop_asset_rows(root, "raw_tickets", product,
                                                       lambda f, ids=ids: f["ticket_id"].is_in(list(ids)))
        removed, _ = drop_asset_rows(root, "rejected_tickets", product,
                                     lambda f, ids=ids: rejected_matches(f, email, ids))
        if removed:
            counts["rejected_tickets"] = removed
        for asset in PSEUDONYM_ASSETS if hashed else ():
            removed, kept = drop_asset_rows(root, asset, product,
                                            lambda f, hashed=hashed: f["ticket_id"].is_in(list(hashed)))
            if removed:
                counts[asset] = removed
                if asset == "dataset_splits":
                    kept = kept if kept is not None else read_asset_frame(root, asset, product)
                    rewritten[asset] = {"train_examples": int((kept["split"] == "train").sum())}
        exports = storage.exports_dir(product)
        if hashed and exports.is_dir():
            filtered = {name: without_records(exports / name, hashed) for name in EXPORT_FILES
                        if (exports / name).exists()}
            removed = sum(n for _, n in filtered.values())
            if removed:
                with atomic_directory(exports) as staging:
                    write_exports(staging, [r for kept, _ in filtered.values() for r in kept])
                counts["exports"] = removed
        if ids:
            suppressed = storage.suppressed_ids(product) | hashed
            atomic_write_json(storage.suppressed_path(product), sorted(suppressed))
        report.removed[product] = counts
        for asset, n in counts.items():
            if asset == "exports":
                continue
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=asset, partition=product, metadata={
                    "forget_request": report.request_hash, "rows_removed": n,
                    **({"forgotten_examples": n} if asset == "dataset_splits" else {}),
                    **rewritten.get(asset, {})}))
    atomic_write_json(under(root, "audit", f"forget-{int(report.at)}-{report.request_hash[:8]}.json"),
                      report.as_json())
    return report


def _cmd_forget(ns: argparse.Namespace) -> int:
    import dagster as dg

    from ft_assets.definitions import Settings, build_resources

    os.environ["TUNELINE_HOME"] = str(Path(ns.home).resolve())
    ensure_dagster_home()
    resources = build_resources(Settings.from_env())
    with dg.DagsterInstance.get() as instance:
        report = forget_customer(instance, resources, email=ns.email, ticket_id=ns.ticket_id)
    print(json.dumps(report.as_json(), indent=2))
    if report.products:
        print(f"adapters of {', '.join(report.products)} were trained on removed tickets: the retraining sensor "
              "retrains them (or materialize lora_adapter for those products)", file=sys.stderr)
    return 0


def _cmd_generate(ns: argparse.Namespace) -> int:
    from tuneline.synthetic import write_landing_zone

    truth = write_landing_zone(Path(ns.landing), ns.products.split(","), ns.tickets, seed=ns.seed)
    print(json.dumps({"rows_written": truth.rows_written, "malformed_rows": truth.malformed_rows,
                      "exact_duplicates": truth.exact_duplicates, "near_duplicates": truth.near_duplicates,
                      "too_short": truth.too_short, "non_english": truth.non_english}, indent=2))
    return 0


def _cmd_train(ns: argparse.Namespace) -> int:
    import yaml

    from tuneline.training import TrainConfig, main

    print(json.dumps(main(TrainConfig(**yaml.safe_load(Path(ns.config).read_text()))), indent=2))
    return 0


def _cmd_eval(ns: argparse.Namespace) -> int:
    from tuneline.evaluation import EvalSettings, evaluate_file
    from tuneline.models import resolve_model
    from tuneline.storage import atomic_write_json

    if ns.base_only == bool(ns.adapter):
        print("give exactly one of --adapter DIR or --base-only", file=sys.stderr)
        return 2
    base = ns.base_model
    if base is None and ns.adapter:
        base = json.loads((Path(ns.adapter) / "adapter_config.json").read_text())["base_model_name_or_path"]
    if base is None:
        base = resolve_model("embedded", None, Path(ns.home) / "models")
    report = evaluate_file(base, ns.adapter, ns.data, EvalSettings(max_examples=ns.max_examples,
                                                                     max_new_tokens=ns.max_new_tokens))
    from tuneline.reporting import markdown_table

    columns = [c for c in ("base", "tuned") if c in report]
    print(markdown_table(["metric", *columns], [[m, *[report[c][m] for c in columns]]
                                                for m in ("perplexity", "rouge1", "rouge2", "rougeL")]))
    atomic_write_json(Path(ns.output), report)
    print(f"wrote {ns.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from tuneline.evaluation import EvalSettings

    parser = argparse.ArgumentParser(prog="tuneline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="seed demo tickets and materialize the whole graph for every demo product")
    demo.add_argument("--home", default=os.environ.get("TUNELINE_HOME", ".tuneline"), help="storage root")
    demo.add_argument("--products", default=",".join(DEMO_PRODUCTS), help="comma-separated demo products")
    demo.add_argument("--tickets", type=int, default=150, help="generated tickets per product")
    demo.add_argument("--max-steps", type=int, default=24, help="optimizer steps per adapter")
    demo.add_argument("--learning-rate", type=float, default=5e-4, help="LoRA learning rate for the short demo run")
    demo.add_argument("--eval-examples", type=int, default=EvalSettings.max_examples,
                      help="test examples evaluated per product (at most)")
    demo.add_argument("--max-new-tokens", type=int, default=0,
                      help="generation length in evaluation (0: the 95th percentile of the reference replies)")
    demo.set_defaults(func=_cmd_demo)

    dev = sub.add_parser("dev", help="start the Dagster UI and daemon on the demo's DAGSTER_HOME (dagster dev)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func=_cmd_dev)

    serve = sub.add_parser("serve", help="OpenAI-compatible /v1/chat/completions with one LoRA adapter per product")
    serve.add_argument("--adapter", action="append", default=[], metavar="PRODUCT=DIR", help="repeatable")
    serve.add_argument("--from-registry", metavar="P1,P2",
                       help="serve these products' champions, and their challengers in an A/B test")
    serve.add_argument("--challenger", action="append", default=[], metavar="PRODUCT=DIR",
                       help="a challenger adapter for a served product (A/B test; repeatable)")
    serve.add_argument("--challenger-share", type=float, default=0.1,
                       help="share of each product's conversations the challenger answers (stable per conversation)")
    serve.add_argument("--shadow", action="store_true",
                       help="the champion answers everyone; each challenger's answer is generated afterwards and "
                            "logged (arm shadow) for comparison")
    serve.add_argument("--rollout-poll-seconds", type=float, default=30.0,
                       help="with --from-registry: how often the registry's challenger share is re-read")
    serve.add_argument("--no-response-log", action="store_true",
                       help="do not record answers (default: every answer, redacted, under $TUNELINE_HOME/serving)")
    serve.add_argument("--base-model", help="default: the adapters' base_model_name_or_path")
    serve.add_argument("--api-key-env", help="name of the environment variable holding the bearer token (required "
                       "unless --no-auth)")
    serve.add_argument("--no-auth", action="store_true", help="serve without a key (prints a warning)")
    serve.add_argument("--open-metrics", action="store_true", help="/metrics without the key (for a scraper)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--home", default=os.environ.get("TUNELINE_HOME", ".tuneline"))
    serve.add_argument("--tracking-uri")
    serve.set_defaults(func=_cmd_serve)

    merged = sub.add_parser("export-merged", help="merge an adapter into its base model; checks greedy parity")
    merged.add_argument("--adapter", required=True)
    merged.add_argument("--output", required=True)
    merged.set_defaults(func=_cmd_export_merged)

    reg = sub.add_parser("registry", help="show the champion adapter of a product, or roll it back to a version")
    reg.add_argument("action", choices=("show", "rollback"))
    reg.add_argument("--product", required=True)
    reg.add_argument("--version", type=int, help="registered version to make champion again (rollback)")
    reg.add_argument("--home", default=os.environ.get("TUNELINE_HOME", ".tuneline"))
    reg.add_argument("--tracking-uri", help="MLflow tracking URI (default: the storage root's sqlite store)")
    reg.set_defaults(func=_cmd_registry)

    pii = sub.add_parser("pii-eval", help="recall/precision/F2 per entity type of the redactor on labeled data")
    pii.add_argument("file", nargs="+", help="labeled files (each reported apart): presidio-research JSON "
                     "(full_text + spans), CoNLL BIO (.conll), or ABCD conversations")
    pii.add_argument("--format", choices=("presidio", "conll", "abcd"), help="default: from each file")
    pii.add_argument("--output", help="also write the figures as JSON here")
    pii.add_argument("--no-name-filter", action="store_true",
                     help="without the learned filter of name-like detections (to compare)")
    pii.set_defaults(func=_cmd_pii_eval)

    products = sub.add_parser("products", help="sync: add a partition per landing-zone product folder; list: show them")
    products.add_argument("action", choices=("sync", "list"))
    products.add_argument("--home", default=os.environ.get("TUNELINE_HOME", ".tuneline"), help="storage root")
    products.set_defaults(func=_cmd_products)

    forget = sub.add_parser("forget", help="remove one customer's tickets from every stage (audit record, no PII)")
    who = forget.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="every ticket whose text or metadata holds this email")
    who.add_argument("--ticket-id", help="the ticket with this source id")
    forget.add_argument("--home", default=os.environ.get("TUNELINE_HOME", ".tuneline"), help="storage root")
    forget.set_defaults(func=_cmd_forget)

    gen = sub.add_parser("generate", help="write seeded synthetic tickets to <landing>/<product>/")
    gen.add_argument("--landing", required=True)
    gen.add_argument("--products", default=",".join(DEMO_PRODUCTS))
    gen.add_argument("--tickets", type=int, default=150)
    gen.add_argument("--seed", type=int, default=7)
    gen.set_defaults(func=_cmd_generate)

    train = sub.add_parser("train", help="train a LoRA adapter from a YAML TrainConfig (no Dagster)")
    train.add_argument("--config", required=True)
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval", help="evaluate an adapter or the base model on a chat JSONL file")
    ev.add_argument("--adapter", help="PEFT adapter directory")
    ev.add_argument("--base-only", action="store_true", help="evaluate the base model alone")
    ev.add_argument("--data", required=True, help="chat JSONL in tuneline's export format")
    ev.add_argument("--base-model", help="base model directory or id (default: the adapter's, else embedded)")
    ev.add_argument("--home", default=os.environ.get("TUNELINE_HOME", ".tuneline"))
    ev.add_argument("--max-examples", type=int, default=EvalSettings.max_examples)
    ev.add_argument("--max-new-tokens", type=int, default=0, help="0: the references' 95th percentile length")
    ev.add_argument("--output", default="evaluation_results.json")
    ev.set_defaults(func=_cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    ns = build_parser().parse_args(argv)
    return ns.func(ns)


if __name__ == "__main__":
    sys.exit(main())
