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

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw[:200].decode(errors="replace")}
                with stub.lock:
                    stub.requests.append({"path": self.path, "body": body,
                                          "auth": self.headers.get("authorization")})
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
