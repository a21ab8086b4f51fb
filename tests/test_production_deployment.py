"""Dagster's production shape on real services, started by the test on loopback: PostgreSQL from Debian's
packages (runs, event log, schedules; MLflow's tracking store beside them), the gRPC code server, the
daemon and the webserver as separate processes, with deploy/dagster.yaml and deploy/workspace.yaml.

A backfill over six products runs with at most two runs at a time; the daemon is killed in the middle
of it and started again; the backfill completes with every partition materialized exactly once. A run
whose launch the kill interrupted is failed by run monitoring and retried; a run whose worker process is
killed is failed by the code server and its retry (from the failed step) succeeds."""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.test_e2e_dagster_dev import BACKFILL_STATUS, DATA_ASSETS, LAUNCH_BACKFILL, _free_port, _graphql
from tuneline.synthetic import write_landing_zone

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parent.parent
PRODUCTS = ("billing", "shipping", "account", "billing-eu", "shipping-eu", "account-eu")
MAX_CONCURRENT_RUNS = 2
START_TIMEOUT_SECONDS = 90
ROOT_RUN_ID_TAG, PARENT_RUN_ID_TAG = "dagster/root_run_id", "dagster/parent_run_id"  # run retries' lineage
PASSWORD = "tuneline-test-pw"


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: its commands run as Debian's `postgres` user."""
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, text=True,
                          **kwargs)


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on 127.0.0.1 with databases `dagster` and `mlflow`; yields its port."""
    bin_dir = _postgres_bin()
    if bin_dir is None or shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("needs Debian's postgresql package and root (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="tuneline-pg-"))  # outside pytest's root-only tmp: postgres must enter
    shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                 "--auth-host=scram-sha-256")
    _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "start",
                 "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {root}")
    try:
        psql = [str(bin_dir / "psql"), "-h", str(root), "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
        _as_postgres(*psql, "-c", f"CREATE ROLE tuneline LOGIN PASSWORD '{PASSWORD}'")
        for database in ("dagster", "mlflow"):
            _as_postgres(*psql, "-c", f"CREATE DATABASE {database} OWNER tuneline")
        yield {"port": port, "psql": psql}
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=PROJECT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait(check, timeout: float, what: str, processes=()):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in processes:
            assert p.poll() is None, f"{what}: a process exited ({p.args[0]})"
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


@pytest.fixture(scope="module")
def deployment(postgres, tmp_path_factory):
    """deploy/dagster.yaml (limits tightened for two cores) over the test's PostgreSQL; the code server,
    webserver and daemon as three processes. Yields a dict with the instance, urls, env and processes."""
    import dagster as dg

    base = tmp_path_factory.mktemp("deploy")
    home, dagster_home, logs = base / "home", base / "dagster_home", base / "logs"
    dagster_home.mkdir()
    logs.mkdir()
    config = yaml.safe_load((PROJECT / "deploy" / "dagster.yaml").read_text())
    config["concurrency"]["runs"]["max_concurrent_runs"] = MAX_CONCURRENT_RUNS
    config["run_monitoring"]["poll_interval_seconds"] = 5
    config["run_monitoring"]["start_timeout_seconds"] = START_TIMEOUT_SECONDS  # a launch cut by the kill
    config["storage"]["postgres"]["postgres_db"]["port"] = postgres["port"]  # the test's server, not 5432
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    code_port, web_port, mlflow_port = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "TUNELINE_HOME": str(home),
           "DAGSTER_PG_USERNAME": "tuneline", "DAGSTER_PG_PASSWORD": PASSWORD, "DAGSTER_PG_HOST": "127.0.0.1",
           "DAGSTER_PG_DB": "dagster", "TUNELINE_CODE_SERVER_HOST": "127.0.0.1",
           "TUNELINE_CODE_SERVER_PORT": str(code_port), "TUNELINE_PSEUDONYM_KEY": "tuneline-deploy-test",
           "TUNELINE_MLFLOW_URI": f"http://127.0.0.1:{mlflow_port}"}
    bin_dir = Path(sys.executable).parent
    workspace = str(PROJECT / "deploy" / "workspace.yaml")
    processes = {
        "mlflow": _start([str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                          "--backend-store-uri",
                          f"postgresql+psycopg2://tuneline:{PASSWORD}@127.0.0.1:{postgres['port']}/mlflow",
                          "--artifacts-destination", f"file://{base / 'mlartifacts'}", "--workers", "1"],
                         env, logs / "mlflow.log"),
        "code_server": _start([str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p",
                               str(code_port), "-m", "ft_assets.definitions", "-a", "defs"], env,
                              logs / "code_server.log"),
    }
    previous = {k: os.environ.get(k) for k in env if os.environ.get(k) != env[k]}
    os.environ.update(env)
    try:
        _wait(lambda: subprocess.run([str(bin_dir / "dagster"), "api", "grpc-health-check", "-p", str(code_port)],
                                     capture_output=True).returncode == 0, 180, "code server", processes.values())
        processes["webserver"] = _start([str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
                                         "-p", str(web_port)], env, logs / "webserver.log")
        processes["daemon"] = _start([str(bin_dir / "dagster-daemon"), "run", "-w", workspace], env,
                                     logs / "daemon.log")
        url = f"http://127.0.0.1:{web_port}/graphql"
        _wait(lambda: _graphql(url, "{ version }"), 180, "webserver", processes.values())
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        yield {"instance": instance, "url": url, "env": env, "home": home, "processes": processes, "logs": logs,
               "mlflow": f"http://127.0.0.1:{mlflow_port}", "workspace": workspace, "bin": bin_dir}
    finally:
        for process in processes.values():
            _stop(process)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _backfill_status(url: str, backfill_id: str) -> str:
    return _graphql(url, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]


def test_backfill_survives_a_daemon_restart_with_two_runs_at_a_time(deployment):
    import dagster as dg

    from ft_assets.partitions import PRODUCTS_PARTITION_NAME

    instance, url, processes = deployment["instance"], deployment["url"], deployment["processes"]
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    landing = deployment["home"] / "landing"
    landing.mkdir(parents=True)
    write_landing_zone(landing, list(PRODUCTS[:3]), 30)
    write_landing_zone(deployment["home"] / "second", list(PRODUCTS[:3]), 30, seed=8)  # other tickets for -eu
    for product in PRODUCTS[:3]:
        (deployment["home"] / "second" / product).rename(landing / f"{product}-eu")
    past = time.time() - 600
    for path in landing.rglob("*.*"):
        os.utime(path, (past, past))
    instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, list(PRODUCTS))
    selection = [{"path": [a]} for a in (*DATA_ASSETS, "rejected_tickets")]
    params = {"partitionNames": list(PRODUCTS), "assetSelection": selection, "fromFailure": False}
    launched = _graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def backfill_runs():
        return instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))

    _wait(lambda: any(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in backfill_runs()), 600,
          "a first backfill run")
    _stop(processes["daemon"], signal.SIGKILL)  # mid-backfill: runs go on in the code server's processes
    time.sleep(10)
    processes["daemon"] = _start([str(deployment["bin"] / "dagster-daemon"), "run", "-w", deployment["workspace"]],
                                 deployment["env"], deployment["logs"] / "daemon.log")
    status = _wait(lambda: (s := _backfill_status(url, backfill_id)) not in ("REQUESTED", "CANCELING", "FAILING")
                   and s, 1200, "the backfill", [processes["daemon"]])
    daemon_log = (deployment["logs"] / "daemon.log").read_text()
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (status, daemon_log[-3000:])

    records = backfill_runs()
    _assert_every_failure_was_retried_to_success(records)
    for record in records:  # the only failure the daemon's kill may cause: a launch it cut short
        if record.dagster_run.status != dg.DagsterRunStatus.SUCCESS:
            assert record.start_time is None, f"run {record.dagster_run.run_id} failed after it had started"
    spans = sorted((r.start_time, r.end_time) for r in records if r.start_time is not None)
    peak = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert peak <= MAX_CONCURRENT_RUNS, f"{peak} runs at once (limit {MAX_CONCURRENT_RUNS})"
    for asset in (*DATA_ASSETS, "rejected_tickets"):
        events = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
        per_partition = {p: sum(1 for e in events if e.partition_key == p) for p in PRODUCTS}
        assert per_partition == dict.fromkeys(PRODUCTS, 1), (asset, per_partition)
    print(f"backfill over {len(PRODUCTS)} products: {len(records)} runs, at most {peak} at once, "
          "daemon killed and restarted mid-way")


def _assert_every_failure_was_retried_to_success(records) -> None:
    """Each chain of retries (runs sharing dagster/root_run_id) ends in a successful run."""
    import dagster as dg

    chains: dict[str, list] = {}
    for record in records:
        run = record.dagster_run
        chains.setdefault(run.tags.get(ROOT_RUN_ID_TAG, run.run_id), []).append(record)
    for root, chain in chains.items():
        last = max(chain, key=lambda r: r.create_timestamp)
        assert last.dagster_run.status == dg.DagsterRunStatus.SUCCESS, (root, [r.dagster_run.status for r in chain])
        assert all(r.dagster_run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
                   for r in chain), (root, [r.dagster_run.status for r in chain])


def _run_worker_pid(instance, run_id: str) -> int | None:
    """The run worker's pid, from the multiprocess executor's engine event."""
    import dagster as dg

    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        found = re.search(r"parent process \(pid: (\d+)\)", entry.message or "")
        if found:
            return int(found.group(1))
    return None


def test_a_killed_run_worker_is_failed_and_its_retry_succeeds(deployment):
    import dagster as dg
    import psutil

    instance, url = deployment["instance"], deployment["url"]
    product = PRODUCTS[0]
    assert instance.get_latest_materialization_event(dg.AssetKey("raw_tickets")) is not None, "needs the backfill"
    selection = [{"path": [a]} for a in (*DATA_ASSETS, "rejected_tickets")]
    params = {"partitionNames": [product], "assetSelection": selection, "fromFailure": False}
    launched = _graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def running_worker():
        for record in instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id})):
            if record.dagster_run.status == dg.DagsterRunStatus.STARTED:
                pid = _run_worker_pid(instance, record.dagster_run.run_id)
                if pid is not None and psutil.pid_exists(pid):
                    return record.dagster_run.run_id, pid
        return None

    killed_run, pid = _wait(running_worker, 600, "a started run of the backfill",
                            deployment["processes"].values())
    worker = psutil.Process(pid)
    for process in [*worker.children(recursive=True), worker]:  # the run worker and its step processes
        process.kill()
    _wait(lambda: instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE, 120,
          "the killed run marked failed")
    status = _wait(lambda: (s := _backfill_status(url, backfill_id)) not in ("REQUESTED", "CANCELING", "FAILING")
                   and s, 900, "the backfill after the kill", deployment["processes"].values())
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    retries = [r for r in records if r.dagster_run.tags.get(PARENT_RUN_ID_TAG) == killed_run]
    assert retries and retries[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS, "the retry succeeded"
    _assert_every_failure_was_retried_to_success(records)
    crash = [e.message for e in instance.all_logs(killed_run, of_type=dg.DagsterEventType.ENGINE_EVENT)
             if "Run execution process" in (e.message or "")]
    assert crash, "the code server explained the failure"


def test_mlflow_keeps_its_tracking_store_on_the_same_postgres(deployment, postgres):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=deployment["mlflow"])
    _wait(lambda: client.search_experiments() is not None, 180, "mlflow server", [deployment["processes"]["mlflow"]])
    experiment = client.create_experiment("deploy-test")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "rougeL", 0.42)
    rows = _as_postgres(*postgres["psql"], "-d", "mlflow", "-tAc",
                        f"SELECT value FROM metrics WHERE run_uuid = '{run.info.run_id}' AND key = 'rougeL'").stdout
    assert rows.strip() == "0.42"
