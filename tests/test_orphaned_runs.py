"""A run whose worker process is killed without reporting (SIGKILL, the out-of-memory killer) stays STARTED and
keeps its `training` pool slot; every later training step then waits for ever. Tested with a real worker
process killed with SIGKILL on a real SQLite instance written the way `tuneline` writes it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest

WORKER = textwrap.dedent("""
    import time
    import dagster as dg

    @dg.asset(pool="training")
    def holds_the_training_slot():
        time.sleep(600)

    dg.materialize([holds_the_training_slot], instance=dg.DagsterInstance.get())
""")


def _claimed_training_slots(instance: dg.DagsterInstance) -> list:
    return instance.event_log_storage.get_concurrency_info("training").claimed_slots


@pytest.fixture
def local_instance(tmp_path, monkeypatch):
    from tuneline.cli import ensure_dagster_home

    home = ensure_dagster_home(tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        yield instance


def _start_worker_and_wait_for_its_slot(instance, tmp_path) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    worker = subprocess.Popen([sys.executable, str(script)], env=os.environ.copy(), cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not _claimed_training_slots(instance):
        assert worker.poll() is None, "the worker process ended before it claimed the slot"
        assert time.monotonic() < deadline, "the worker never claimed the training slot"
        time.sleep(0.5)
    return worker


def test_a_killed_run_is_failed_and_frees_the_training_slot(local_instance, tmp_path):
    from tuneline.launching import fail_runs_whose_worker_is_gone

    worker = _start_worker_and_wait_for_its_slot(local_instance, tmp_path)
    try:
        [record] = local_instance.get_run_records()
        assert fail_runs_whose_worker_is_gone(local_instance) == []  # alive: left alone
        assert _claimed_training_slots(local_instance)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    run_id = record.dagster_run.run_id
    assert local_instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED  # Dagster cannot tell

    assert fail_runs_whose_worker_is_gone(local_instance) == [run_id]

    assert local_instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    assert _claimed_training_slots(local_instance) == []
    assert fail_runs_whose_worker_is_gone(local_instance) == []

    @dg.asset(pool="training")
    def trains_next():
        return 1

    assert dg.materialize([trains_next], instance=local_instance).success  # the next training step runs


def test_a_pid_reused_by_a_later_process_is_not_taken_for_the_worker():
    from tuneline.launching import _worker_is_alive

    assert _worker_is_alive(os.getpid(), time.time())
    assert not _worker_is_alive(os.getpid(), 1000.0)  # this process began long after such a run
