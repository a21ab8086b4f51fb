"""A crash during a write leaves the previous version visible, never a partial file: a writer killed with
SIGKILL mid-file, and an exception halfway through an asset's exports."""

import multiprocessing
import os
import signal
import time

import dagster as dg
import polars as pl

from tests.conftest import age_files
from tuneline.storage import atomic_write, atomic_write_text, sweep_orphans


def _slow_writer(path: str, started) -> None:
    def write(tmp):
        with open(tmp, "wb") as fh:
            for _ in range(200):
                fh.write(b"new-version " * 10_000)
                fh.flush()
                started.set()
                time.sleep(0.05)

    atomic_write(path, write)


def test_sigkill_mid_write_leaves_the_previous_version_and_a_sweepable_orphan(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_text(target, "previous version\n")
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    writer = ctx.Process(target=_slow_writer, args=(str(target), started))
    writer.start()
    assert started.wait(timeout=60)
    time.sleep(0.2)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    assert writer.exitcode == -signal.SIGKILL
    assert target.read_text() == "previous version\n"
    orphans = list(tmp_path.glob(".report.json.tmp-*"))
    assert len(orphans) == 1 and orphans[0].stat().st_size > 0  # the killed writer's half file, hidden
    assert sweep_orphans(target) == []  # too young: it could belong to a writer still running
    old = time.time() - 7200
    os.utime(orphans[0], (old, old))
    atomic_write_text(target, "next version\n")  # the next write sweeps it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    assert target.read_text() == "next version\n"


def test_an_exception_halfway_through_the_exports_keeps_the_previous_exports(home, tiny_model_dir, monkeypatch):
    from datasets import DatasetDict

    from ft_assets.definitions import Settings, build_resources, product_assets
    from ft_assets.partitions import PRODUCTS_PARTITION_NAME
    from tuneline.synthetic import write_landing_zone

    write_landing_zone(home / "landing", ["billing"], 40)
    age_files(home / "landing")
    resources = build_resources(Settings(home=str(home), model_source="local", model=str(tiny_model_dir)))
    data = ["raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index",
            "scored_dataset", "dataset_splits"]
    exports = home / "exports" / "billing"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        assert dg.materialize(product_assets(), instance=instance, resources=resources, partition_key="billing",
                              selection=data).success
        before = {p.relative_to(exports): p.read_bytes() for p in exports.rglob("*") if p.is_file()}
        manifest = home / "assets" / "dataset_splits" / "billing.parts.json"  # the stored value's commit point
        splits_before = manifest.read_bytes()

        # new tickets arrive, then the HF export dies after the JSONL files were written in staging
        write_landing_zone(home / "more", ["billing"], 10, seed=5)
        age_files(home / "more")
        more = pl.read_csv(home / "more" / "billing" / "tickets-0001.csv", infer_schema=False)
        more.with_columns(pl.format("late-{}", "ticket_id").alias("ticket_id"),
                          pl.format("late-{}", "thread_id").alias("thread_id")).write_csv(
            home / "landing" / "billing" / "tickets-0002.csv")
        age_files(home / "landing")

        def disk_full(self, *args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(DatasetDict, "save_to_disk", disk_full)
        result = dg.materialize(product_assets(), instance=instance, resources=resources, partition_key="billing",
                                selection=data, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.get_step_failure_events())
    assert failure.step_key == "dataset_splits" and "No space left" in str(failure.event_specific_data.error)
    after = {p.relative_to(exports): p.read_bytes() for p in exports.rglob("*") if p.is_file()}
    assert after == before, "the exports are the previous run's, complete"
    assert manifest.read_bytes() == splits_before
    assert [p.name for p in exports.parent.iterdir() if p.name.startswith(".billing.")] in (
        [], [".billing.lock"]), "no staging directory left behind"
