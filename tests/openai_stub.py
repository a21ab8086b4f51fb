"""A real HTTP server on loopback that speaks the parts of the OpenAI API tuneline uses.

Chat completions answer from a queue of canned contents (so tests can send malformed ones);
requests are recorded for assertions. Started and stopped by the tests.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIStub:
    def __init__(self):
        self.chat_replies: list[str] = []
        self.reply_for = None  # optional: request body -> reply content (takes precedence over the queue)
        self.job_statuses: list[str] = ["queued", "running", "succeeded"]  # one per retrieve
        self.job_error: str | None = None
        self.uploads: list[bytes] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, payload: dict):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _job(self, status: str) -> dict:
                return {"id": "ftjob-1", "object": "fine_tuning.job", "created_at": 1, "model": "base",
                        "status": status, "training_file": "file-1", "validation_file": None,
                        "fine_tuned_model": "ft:base:tuneline:1" if status == "succeeded" else None,
                        "trained_tokens": 1234 if status == "succeeded" else None, "finished_at": None,
                        "organization_id": "org", "result_files": [], "seed": 42, "hyperparameters": {},
                        "error": {"code": "invalid_file", "message": stub.job_error, "param": None}
                        if status == "failed" else None}

            def do_GET(self):
                with stub.lock:
                    stub.requests.append({"path": self.path, "method": "GET"})
                    status = stub.job_statuses.pop(0) if len(stub.job_statuses) > 1 else stub.job_statuses[0]
                if "/fine_tuning/jobs/" in self.path:
                    self._send(200, self._job(status))
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                if self.path.endswith("/files"):
                    with stub.lock:
                        stub.uploads.append(raw)
                        stub.requests.append({"path": self.path, "method": "POST"})
                        n = len(stub.uploads)
                    self._send(200, {"id": f"file-{n}", "object": "file", "bytes": len(raw), "created_at": 1,
                                     "filename": "train.jsonl", "purpose": "fine-tune", "status": "processed"})
                    return
                if self.path.endswith("/fine_tuning/jobs"):
                    with stub.lock:
                        stub.requests.append({"path": self.path, "method": "POST", "body": json.loads(raw)})
                    self._send(200, self._job("validating_files"))
                    return
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw[:200].decode(errors="replace")}
                with stub.lock:
                    stub.requests.append({"path": self.path, "body": body,
                                          "auth": self.headers.get("authorization")})
                    if stub.reply_for is not None:
                        reply = stub.reply_for(body)
                    else:
                        reply = stub.chat_replies.pop(0) if stub.chat_replies else "{}"
                if self.path.endswith("/chat/completions"):
                    self._send(200, {"id": "c1", "object": "chat.completion", "created": int(time.time()),
                                     "model": body.get("model", "stub"),
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": reply}}],
                                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
