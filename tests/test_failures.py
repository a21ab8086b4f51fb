import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg

from ft_resources.storage import TunelineStorage
from ft_sensors.failures import failure_record, post_webhook, run_failure_sensor


def test_failure_record_and_webhook_on_a_local_server():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        record = failure_record("abcdef123456", "__ASSET_JOB", {"dagster/partition": "billing"}, "boom: disk full")
        assert post_webhook(f"http://127.0.0.1:{server.server_address[1]}/hook", record) == 204
    finally:
        server.shutdown()
    assert received[0]["run"]["product"] == "billing"
    assert "abcdef12" in received[0]["text"] and "boom: disk full" in received[0]["text"]


def test_sensor_writes_a_record_for_a_failed_run(tmp_path):
    @dg.asset
    def always_fails():
        raise RuntimeError("the landing bucket is gone")

    with dg.instance_for_test() as instance:
        result = dg.materialize([always_fails], instance=instance, raise_on_error=False)
        assert not result.success
        failure = [e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"
                   or e.event_type_value == "RUN_FAILURE"][0]
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_sensor", dagster_event=failure, dagster_instance=instance,
            dagster_run=result.dagster_run, resources={"storage": TunelineStorage(root=str(tmp_path))},
        ).for_run_failure()
        run_failure_sensor(context)
    record = json.loads((tmp_path / "failures" / f"{result.run_id}.json").read_text())
    assert record["run_id"] == result.run_id
    assert "always_fails" in record["error"], record["error"]
