"""Runs launched the way the webserver launches them: through the code location that workspace.yaml names, in
their own process. The UI then attributes them to their job (the Overview timeline lists only runs that carry
a code location), which an in-process `materialize` cannot do. `tuneline demo` launches its jobs this way."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

PROJECT = Path(__file__).resolve().parent.parent
WORKSPACE_FILE = PROJECT / "workspace.yaml"


@contextmanager
def project_workspace(instance: dg.DagsterInstance, workspace_file: Path = WORKSPACE_FILE) -> Iterator:
    """The code location of workspace.yaml, served by a gRPC code server for as long as the block runs."""
    from dagster._cli.workspace.cli_target import get_workspace_from_cli_opts
    from dagster_shared.cli import WorkspaceOpts

    with get_workspace_from_cli_opts(instance, version=dg.__version__,
                                     workspace_opts=WorkspaceOpts(workspace=(str(workspace_file),))) as workspace:
        yield workspace


def launch_and_wait(instance: dg.DagsterInstance, workspace, job_name: str, partition: str | None = None,
                    run_config: dict | None = None, tags: dict[str, str] | None = None,
                    poll_seconds: float = 1.0) -> dg.DagsterRun:
    """Create a run of `job_name` (for one partition) in the workspace's code location, launch it past the queue
    (the caller runs one at a time), and wait until it ends."""
    from dagster._cli.job import _create_run
    from dagster._cli.workspace.cli_target import (
        get_code_location_from_workspace,
        get_remote_job_from_remote_repo,
        get_remote_repository_from_code_location,
    )

    location = get_code_location_from_workspace(workspace, None)
    repository = get_remote_repository_from_code_location(location, None)
    job = get_remote_job_from_remote_repo(repository, job_name)
    run_tags = {**(tags or {}), **({"dagster/partition": partition} if partition else {})}
    run = _create_run(instance=instance, code_location=location, remote_repo=repository, remote_job=job,
                      run_config=run_config or {}, tags=run_tags, op_selection=None, run_id=None)
    instance.launch_run(run.run_id, workspace)
    while not (run := instance.get_run_by_id(run.run_id)).is_finished:
        time.sleep(poll_seconds)
    return run


def run_events(instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType) -> list:
    return [e.dagster_event for e in instance.all_logs(run_id, of_type=event_type) if e.dagster_event]


def materialization_metadata(instance: dg.DagsterInstance, run_id: str, asset: str) -> dict:
    """The plain metadata values of `asset`'s materialization in a run ({} if the run did not write it)."""
    for event in reversed(run_events(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)):
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in materialization.metadata.items()}
    return {}


def failed_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {e.step_key for e in run_events(instance, run_id, dg.DagsterEventType.STEP_FAILURE)}


def check_results(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    return {e.event_specific_data.check_name: e.event_specific_data.passed
            for e in run_events(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION)}


def _worker_is_alive(pid: int, run_started_at: float | None) -> bool:
    """Whether the process that started a run still runs: a pid taken over by a later process does not count."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return run_started_at is None or process.create_time() <= run_started_at + 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: cannot tell, so it is not touched
        return True


def fail_runs_whose_worker_is_gone(instance: dg.DagsterInstance) -> list[str]:
    """Mark as failed the STARTED runs of a local instance whose worker process has died without reporting (a
    SIGKILL, an out-of-memory kill, a machine restart), and free the pool slots they held. Without this such a
    run keeps the `training` pool's one slot for ever and every later training step waits: the default run
    launcher cannot report a worker's health, so run monitoring never sees it. Only a SQLite instance is checked
    (its runs ran on this machine, so their pids mean something here); deployments rely on run monitoring."""
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    failed = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        starts = run_events(instance, run.run_id, dg.DagsterEventType.RUN_START)
        pid = starts[-1].pid if starts else None
        if pid is None or _worker_is_alive(pid, record.start_time):
            continue
        instance.report_run_failed(run, f"the run's worker process (pid {pid}) is gone: it was killed without "
                                        "reporting; marked failed and its pool slots freed by tuneline")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
    return failed


def fail_orphaned_runs(instance: dg.DagsterInstance) -> None:
    """Before launching (or serving the UI): runs of an earlier session whose process was killed would hold
    the training pool's slot for ever; say which were failed."""
    for run_id in fail_runs_whose_worker_is_gone(instance):
        print(f"run {run_id} had lost its worker process: marked failed, its pool slots freed")
