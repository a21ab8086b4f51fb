"""serving_metrics: what `tuneline serve` measured, as an asset people can watch in the UI."""

import json

import dagster as dg

from ft_resources.storage import TunelineStorage


@dg.asset(group_name="serving", kinds={"fastapi"}, code_version="2",
          automation_condition=dg.AutomationCondition.cron_tick_passed("0 * * * *")
          & ~dg.AutomationCondition.in_progress())
def serving_metrics(context: dg.AssetExecutionContext, storage: TunelineStorage) -> dg.MaterializeResult:
    """Latency percentiles and counters of `tuneline serve`: the server writes `<root>/serving/metrics.json`
    while it answers; this asset reads it hourly (when the automation sensor runs) or on demand. It shows
    nothing until `tuneline serve` has had traffic."""
    path = storage.root_path / "serving" / "metrics.json"
    if not path.exists():  # nothing served yet is a state to show, not a failure of `--select '*'`
        context.log.info(f"no serving metrics at {path}: start `tuneline serve` and send it traffic")
        return dg.MaterializeResult(metadata={"requests": 0, "status": "no serving process has written metrics"})
    metrics = json.loads(path.read_text())
    return dg.MaterializeResult(metadata={
        k: (v if v is not None else float("nan")) for k, v in metrics.items()
        if k in ("requests", "errors", "completion_tokens", "p50_seconds", "p95_seconds", "p99_seconds")
    } | {"products": dg.MetadataValue.table(
        records=[dg.TableRecord({"product": str(p)}) for p in metrics.get("products", [])],
        schema=dg.TableSchema(columns=[dg.TableColumn("product", "string")]))})
