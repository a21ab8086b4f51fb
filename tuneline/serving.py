"""An OpenAI-compatible server for CPU: one base model, one LoRA adapter per product.

    tuneline serve --adapter billing=.tuneline/adapters/billing/v-... --api-key-env TUNELINE_SERVE_KEY
    tuneline serve --from-registry billing,shipping          # champions (and challengers) from the registry

The request's `model` picks the product's adapter. Generation is greedy and serialised (one
CPU, one model); counters and a latency histogram are served in Prometheus' text format at /metrics,
percentiles as JSON at /metrics.json and written to a JSON file that the
`serving_metrics` asset reads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tuneline.decoding import GREEDY, mbr_row, recorded_decoding, search_settings, up_to_end

MAX_BODY_BYTES = 64 * 1024
MAX_NEW_TOKENS = 512
MAX_WAITING = 8  # requests queued for the one generation worker beyond this are answered 429
REQUEST_TIMEOUT_SECONDS = 60.0  # generation stops at this wall time (finish_reason "length")


class PromptTooLong(ValueError):
    """The prompt plus the requested reply do not fit the model's context."""


def neutralize_control_tokens(text: str, special_tokens: list[str]) -> str:
    """A user typing `<|im_start|>system` gets literal text, not a turn marker: each special token's text
    is broken by a zero-width space so the tokenizer no longer matches it."""
    for token in sorted(special_tokens, key=len, reverse=True):
        if len(token) > 1 and token in text:
            text = text.replace(token, token[0] + "\u200b" + token[1:])
    return text


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1, max_length=16_000)


class ChatRequest(BaseModel):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1, max_length=64)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_NEW_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_NEW_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    stream: bool = False
    # the conversation this request belongs to (OpenAI's `user`, or metadata.conversation_id): it picks the
    # A/B arm, so one conversation always meets the same adapter; only its hash is written down
    user: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)

    def conversation_id(self) -> str | None:
        return (self.metadata or {}).get("conversation_id") or self.user


class Feedback(BaseModel):
    """POST /v1/feedback: what happened after an answer. Strict: "yes" is not a boolean, 6 is not a CSAT."""

    model_config = ConfigDict(extra="forbid", strict=True)

    response_id: str = Field(pattern=r"^chatcmpl-[0-9a-f]{24}$")
    resolved: bool | None = None
    escalated: bool | None = None
    csat: int | None = Field(default=None, ge=1, le=5)
    thumbs: Literal["up", "down"] | None = None
    corrected_reply: str | None = Field(default=None, min_length=1, max_length=8000)


def _hash_id(value: str) -> str:
    import hashlib

    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class ResponseLog:
    """Every answer and every piece of feedback, redacted with the PII engine before it is written: JSON lines
    under `<root>/<product>/responses-<day>.jsonl` and `feedback-<day>.jsonl` (the material of the A/B report and
    of the next training). Writing happens on its own thread, after the answer went out; the response id is
    known at once, so feedback can follow immediately."""

    def __init__(self, root: Path, redactor):
        self.root = Path(root)
        self.redactor = redactor
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuneline-log")
        for path in self.root.glob("*/responses-*.jsonl"):  # a restarted server still takes feedback
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                self._ids[entry["response_id"]] = entry["product"]

    def product_of(self, response_id: str) -> str | None:
        with self._lock:
            return self._ids.get(response_id)

    def record(self, entry: dict, messages: list[dict], reply: str) -> None:
        with self._lock:
            self._ids[entry["response_id"]] = entry["product"]
        self._writer.submit(self._write_response, entry, messages, reply)

    def _write_response(self, entry: dict, messages: list[dict], reply: str) -> None:
        texts = [m["content"] for m in messages] + [reply]
        redacted = [r.text for r in self.redactor.redact_groups([texts])[0]]
        entry = {**entry, "messages": [{"role": m["role"], "content": t} for m, t in zip(messages, redacted,
                                                                                           strict=False)],
                 "reply": redacted[-1]}
        self._append(entry["product"], "responses", entry)

    def feedback(self, product: str, feedback: Feedback) -> None:
        entry = {**feedback.model_dump(), "product": product, "created": time.time()}
        self._writer.submit(self._write_feedback, product, entry)

    def _write_feedback(self, product: str, entry: dict) -> None:
        if entry["corrected_reply"]:
            entry["corrected_reply"] = self.redactor.redact_groups([[entry["corrected_reply"]]])[0][0].text
        self._append(product, "feedback", entry)

    def _append(self, product: str, kind: str, entry: dict) -> None:
        day = time.strftime("%Y-%m-%d", time.gmtime(entry.get("created", time.time())))
        folder = self.root / product  # product names were checked against the served set
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{kind}-{day}.jsonl").open("a") as fh:
            fh.write(json.dumps(entry) + "\n")

    def flush(self) -> None:
        self._writer.submit(lambda: None).result()


@dataclass
class LatencyStats:
    """Per-request latencies (seconds) and counters; percentiles over the last `window` requests."""

    window: int = 10_000
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    completion_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    registry: object = None

    def __post_init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()  # one per app: two servers in one process never share counters
        # labels are served products and arms only ("none" before a request named one): a caller cannot mint
        # label values, so the number of series stays bounded
        self._requests = Counter("tuneline_requests", "Requests answered, by product, A/B arm and outcome",
                                 ["product", "arm", "outcome"], registry=self.registry)
        self._tokens = Counter("tuneline_tokens", "Tokens per product and arm, prompt or completion",
                               ["product", "arm", "kind"], registry=self.registry)
        self._latency = Histogram("tuneline_request_seconds", "Latency of successful completions",
                                  ["product", "arm"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                                  registry=self.registry)

    def prometheus_text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def record(self, seconds: float, tokens: int = 0, error: bool = False, product: str = "none",
               arm: str = "none", prompt_tokens: int = 0) -> None:
        self._requests.labels(product, arm, "error" if error else "ok").inc()
        if not error:
            self._latency.labels(product, arm).observe(seconds)
            self._tokens.labels(product, arm, "completion").inc(tokens)
            self._tokens.labels(product, arm, "prompt").inc(prompt_tokens)
        with self.lock:
            self.requests += 1
            self.errors += error
            self.completion_tokens += tokens
            if not error:
                self.latencies.append(seconds)
                del self.latencies[:-self.window]

    def snapshot(self) -> dict:
        from tuneline.ab_testing import nearest_rank

        with self.lock:
            ordered = sorted(self.latencies)

            def pct(p):
                value = nearest_rank(ordered, p)
                return round(value, 4) if value is not None else None

            return {"requests": self.requests, "errors": self.errors, "completion_tokens": self.completion_tokens,
                    "p50_seconds": pct(50), "p95_seconds": pct(95), "p99_seconds": pct(99),
                    "written_at": time.time()}


class AdapterServer:
    """Holds the base model with every product's adapter loaded; generation is serialised on one worker
    thread, the same thread that loaded the weights: a model used from another thread than the one that
    allocated it ran 2x slower here (measured, torch 2.13 CPU)."""

    def __init__(self, base_model: str, adapters: dict[str, str], challengers: dict[str, str] | None = None):
        if not adapters:
            raise ValueError("no adapters to serve: give --adapter product=DIR or --from-registry")
        challengers = challengers or {}
        unknown = sorted(set(challengers) - set(adapters))
        if unknown:
            raise ValueError(f"a challenger needs its product's champion: {unknown}")
        self.products = sorted(adapters)
        self.adapter_dirs = {(p, "champion"): d for p, d in adapters.items()} | \
            {(p, "challenger"): d for p, d in challengers.items()}
        self._system_prompts = {key: trained_system_prompt(d, key[0]) for key, d in self.adapter_dirs.items()}
        # each adapter decodes as its validation split chose (greedy, beam or MBR), as evaluation measured it
        self._decodings = {_adapter_name(*key): recorded_decoding(d) for key, d in self.adapter_dirs.items()}
        self.chat_template_sha256 = shared_chat_template(list(self.adapter_dirs.values()))
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuneline-generate")
        self._worker.submit(self._load, base_model, {_adapter_name(*key): d for key, d in self.adapter_dirs.items()}
                            ).result()

    def system_prompt(self, product: str, arm: str = "champion") -> str | None:
        """The system prompt the serving adapter was trained with for this product (its metadata.json)."""
        return self._system_prompts.get((product, arm))

    def has_challenger(self, product: str) -> bool:
        return (product, "challenger") in self.adapter_dirs

    def _load(self, base_model: str, adapters: dict[str, str]) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        first, *rest = adapters.items()
        self.tokenizer = AutoTokenizer.from_pretrained(first[1])  # saved beside the adapter by training
        loaded = hashlib.sha256((self.tokenizer.chat_template or "").encode()).hexdigest()
        if self.chat_template_sha256 not in (None, loaded):
            raise ValueError(f"{first[1]}: the saved tokenizer's chat template is not the one it was trained with")
        base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
        self.model = PeftModel.from_pretrained(base, first[1], adapter_name=first[0]).eval()
        for name, path in rest:
            self.model.load_adapter(path, adapter_name=name)
        self.context_tokens = int(getattr(base.config, "max_position_embeddings", 0) or 2048)
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        self.special_tokens = sorted({*self.tokenizer.all_special_tokens,
                                      *(t.content for t in added.values() if getattr(t, "special", False))})

    def complete(self, product: str, messages: list[dict], max_new_tokens: int,
                 max_seconds: float = REQUEST_TIMEOUT_SECONDS, arm: str = "champion") -> tuple[str, int, int, str]:
        """(reply, prompt tokens, completion tokens, finish reason); blocks until the worker ran it.
        Raises PromptTooLong before any generation when the prompt cannot fit."""
        return self._worker.submit(self._complete, _adapter_name(product, arm), messages, max_new_tokens,
                                   max_seconds).result()

    def _complete(self, adapter: str, messages: list[dict], max_new_tokens: int,
                  max_seconds: float) -> tuple[str, int, int, str]:
        import torch

        messages = [{**m, "content": neutralize_control_tokens(m["content"], self.special_tokens)} for m in messages]
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        prompt_tokens = int(ids["input_ids"].shape[1])
        if prompt_tokens + max_new_tokens > self.context_tokens:
            raise PromptTooLong(f"the prompt is {prompt_tokens} tokens and max_tokens {max_new_tokens}; this model's "
                                f"context holds {self.context_tokens} tokens in all")
        deadline = time.monotonic() + max_seconds
        decoding = self._decodings.get(adapter, GREEDY)
        with torch.no_grad():
            self.model.set_adapter(adapter)
            out = self.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, max_time=max_seconds,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                                      eos_token_id=self.tokenizer.eos_token_id, **search_settings(decoding))
            new = out[0, ids["input_ids"].shape[1]:]
            left = deadline - time.monotonic()
            if decoding.method == "mbr" and left > 0:
                new = mbr_row(self.model, self.tokenizer, ids, new, max_new_tokens, decoding, left)
        new = up_to_end(new, self.tokenizer.eos_token_id)
        finish = "stop" if bool((new == self.tokenizer.eos_token_id).any()) else "length"
        text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        return text, int(ids["input_ids"].shape[1]), int(new.shape[0]), finish


def trained_system_prompt(adapter_dir: str, product: str) -> str | None:
    """The system prompt `adapter_dir` was trained with for `product` (a shared adapter knows several), from
    its metadata.json; None for adapters trained before it was recorded."""
    path = Path(adapter_dir) / "metadata.json"
    if not path.is_file():
        return None
    prompts = json.loads(path.read_text()).get("system_prompts") or {}
    return prompts.get(product) or (next(iter(prompts.values())) if len(prompts) == 1 else None)


def shared_chat_template(adapter_dirs: list[str]) -> str | None:
    """The sha256 of the chat template every adapter was trained with (metadata.json); one server formats
    every prompt with one template, so adapters trained with different ones are refused at start rather
    than served with a template they never saw. None when no adapter recorded it."""
    recorded = {}
    for adapter_dir in adapter_dirs:
        path = Path(adapter_dir) / "metadata.json"
        sha = json.loads(path.read_text()).get("chat_template_sha256") if path.is_file() else None
        if sha:
            recorded.setdefault(sha, []).append(adapter_dir)
    if len(recorded) > 1:
        raise ValueError("adapters trained with different chat templates cannot share one server: "
                         + "; ".join(f"{sha[:12]}: {dirs}" for sha, dirs in recorded.items()))
    return next(iter(recorded), None)


def _adapter_name(product: str, arm: str) -> str:
    return product if arm == "champion" else f"{product}@{arm}"


def _error(status: int, message: str, kind: str):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": status}})


def create_app(server: AdapterServer, api_key: str | None = None, metrics_file: Path | None = None,
               metrics_open: bool = False, max_waiting: int = MAX_WAITING,
               request_timeout: float = REQUEST_TIMEOUT_SECONDS,
               challenger_share: float | Callable[[str], float] = 0.1, response_log: ResponseLog | None = None,
               shadow: bool = False):
    """The FastAPI app: /v1/models, /v1/chat/completions, /v1/feedback, /metrics (Prometheus), /metrics.json,
    /health.

    `api_key` None serves without auth (the CLI only allows that with --no-auth). /metrics needs the key
    too unless `metrics_open`. At most `max_waiting` completions wait for the worker; more get 429.
    A product with a challenger answers `challenger_share` of its conversations with it (stable per
    conversation; a function of the product when the share follows the registry's rollout); with a
    `response_log` every answer is recorded, redacted, and feedback is taken. In `shadow` mode the champion
    answers every conversation and the challenger's answer to the same messages is generated after the
    reply went out and logged (arm "shadow", `shadow_of` the answered response) for offline comparison."""
    from tuneline.ab_testing import arm_for

    app = FastAPI(title="tuneline serving", docs_url=None, redoc_url=None)
    stats = LatencyStats()
    app.state.stats = stats
    expected = f"Bearer {api_key}".encode() if api_key else None
    waiting = {"n": 0}
    waiting_lock = threading.Lock()

    shadow_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuneline-shadow")

    def answer_in_shadow(product: str, messages: list[dict], max_new: int, response_id: str, conversation: str):
        started = time.perf_counter()
        entry = {"response_id": f"shadow-{response_id}", "shadow_of": response_id, "product": product,
                 "arm": "shadow", "adapter_dir": server.adapter_dirs[(product, "challenger")],
                 "conversation": conversation, "created": time.time()}
        try:
            text, prompt_tokens, completion_tokens, finish = server.complete(product, messages, max_new,
                                                                             request_timeout, "challenger")
        except Exception as exc:  # noqa: BLE001 - a shadow failure is data for the comparison, not an outage
            response_log.record({**entry, "error": True, "error_type": type(exc).__name__,
                                 "latency_seconds": round(time.perf_counter() - started, 4)}, [], "")
            return
        response_log.record({**entry, "latency_seconds": round(time.perf_counter() - started, 4),
                             "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                             "finish_reason": finish}, messages, text)

    def write_metrics():
        if metrics_file is not None:
            from tuneline.storage import atomic_write_json

            atomic_write_json(metrics_file, {**stats.snapshot(), "products": server.products})

    def authorized(request: Request) -> bool:
        given = request.headers.get("authorization", "").encode("utf-8", "surrogateescape")
        return expected is None or hmac.compare_digest(given, expected)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        guarded = request.url.path.startswith("/v1/") or (request.url.path.startswith("/metrics") and not metrics_open)
        if guarded and not authorized(request):
            stats.record(0, error=True)
            return _error(401, "missing or invalid bearer token", "authentication_error")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            stats.record(0, error=True)
            return _error(413, f"request body over {MAX_BODY_BYTES} bytes", "invalid_request_error")
        return await call_next(request)

    @app.get("/health")
    def health():
        return {"status": "ok", "products": server.products}

    @app.get("/metrics")
    def metrics():
        from fastapi.responses import Response
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(stats.prometheus_text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics.json")
    def metrics_json():
        return stats.snapshot()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": p, "object": "model", "created": 0, "owned_by": "tuneline"}
                                           for p in server.products]}

    def log_entry(response_id: str, product: str, conversation: str, arm: str, started: float) -> dict:
        """The fields every logged answer has, a failed one included."""
        return {"response_id": response_id, "product": product, "arm": arm,
                "adapter_dir": server.adapter_dirs[(product, arm)], "conversation": _hash_id(conversation),
                "created": time.time(), "latency_seconds": round(time.perf_counter() - started, 4)}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        started = time.perf_counter()
        body = bytearray()
        async for chunk in request.stream():  # counted while reading: a chunked upload has no content-length
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                stats.record(0, error=True)
                return _error(413, f"request body over {MAX_BODY_BYTES} bytes", "invalid_request_error")
        try:
            payload = ChatRequest.model_validate_json(bytes(body))
        except ValidationError as exc:
            stats.record(0, error=True)
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _error(400, f"invalid request: {where}: {first['msg']}", "invalid_request_error")
        if payload.stream:
            stats.record(0, error=True)
            return _error(400, "stream=true is not supported by this server", "invalid_request_error")
        if payload.model not in server.products:
            stats.record(0, error=True)
            return _error(404, f"model {payload.model!r} not found; available: {server.products}",
                          "invalid_request_error")
        max_new = payload.max_completion_tokens or payload.max_tokens or 128
        import anyio

        with waiting_lock:
            full = waiting["n"] >= max_waiting
            if not full:
                waiting["n"] += 1
        if full:
            stats.record(0, error=True)
            return _error(429, f"{max_waiting} requests are already waiting; retry later", "rate_limit_error")
        response_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        conversation = payload.conversation_id() or response_id
        share = challenger_share(payload.model) if callable(challenger_share) else challenger_share
        arm = arm_for(conversation, share, salt=payload.model) \
            if server.has_challenger(payload.model) and not shadow else "champion"
        messages = [m.model_dump() for m in payload.messages]
        trained = server.system_prompt(payload.model, arm)
        if trained and messages[0]["role"] != "system":  # the prompt it was trained with, not none at all
            messages = [{"role": "system", "content": trained}, *messages]
        try:
            text, prompt_tokens, completion_tokens, finish = await anyio.to_thread.run_sync(
                server.complete, payload.model, messages, max_new, request_timeout, arm)
        except PromptTooLong as exc:
            stats.record(0, error=True)
            return _error(400, str(exc), "invalid_request_error")
        except Exception as exc:  # a broken adapter is the A/B test's business: logged with its arm, 500 out
            stats.record(0, error=True, product=payload.model, arm=arm)
            if response_log is not None:
                response_log.record({**log_entry(response_id, payload.model, conversation, arm, started), "error": True,
                                     "error_type": type(exc).__name__}, [], "")
            return _error(500, f"generation failed ({type(exc).__name__})", "server_error")
        finally:
            with waiting_lock:
                waiting["n"] -= 1
        latency = time.perf_counter() - started
        stats.record(latency, completion_tokens, product=payload.model, arm=arm, prompt_tokens=prompt_tokens)
        write_metrics()
        if response_log is not None:
            response_log.record({**log_entry(response_id, payload.model, conversation, arm, started),
                                 "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                 "finish_reason": finish}, messages, text)
            if shadow and server.has_challenger(payload.model):
                shadow_worker.submit(answer_in_shadow, payload.model, messages, max_new, response_id,
                                     _hash_id(conversation))
        return {"id": response_id, "object": "chat.completion", "created": int(time.time()),
                "model": payload.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
                "tuneline": {"arm": arm}}

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        body = bytearray()
        async for chunk in request.stream():  # bounded while reading, as for completions
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _error(413, f"request body over {MAX_BODY_BYTES} bytes", "invalid_request_error")
        try:
            given = Feedback.model_validate_json(bytes(body))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _error(422, f"invalid feedback: {where}: {first['msg']}", "invalid_request_error")
        product = response_log.product_of(given.response_id) if response_log is not None else None
        if product is None:
            return _error(404, f"no response {given.response_id!r} was served here", "invalid_request_error")
        response_log.feedback(product, given)
        return {"response_id": given.response_id, "recorded": True}

    return app


def adapters_from_registry(tracking_uri: str, products: list[str]) -> dict[str, str]:
    from tuneline.registry import champion_version

    found = {}
    for product in products:
        champion = champion_version(tracking_uri, f"tuneline-{product}")
        if champion is None:
            raise ValueError(f"product {product!r} has no champion in the registry at {tracking_uri}")
        found[product] = champion["tags"]["adapter_dir"]
    return found


def challengers_from_registry(tracking_uri: str, products: list[str]) -> dict[str, str]:
    """The adapter of each product's `challenger` alias, for products in an A/B test."""
    from tuneline.registry import rollout_state

    found = {}
    for product in products:
        challenger = rollout_state(tracking_uri, f"tuneline-{product}")["challenger"]
        if challenger and challenger["adapter_dir"]:
            found[product] = challenger["adapter_dir"]
    return found


def served_share(state: dict, loaded_challenger: str | None) -> float:
    """The share of conversations the loaded challenger gets under the registry's rollout `state`: the
    recorded share while it is the `challenger`, all of them once it was promoted (`champion` points at it),
    none once it was rolled back or replaced."""
    if loaded_challenger is None:
        return 0.0
    if (state.get("champion") or {}).get("adapter_dir") == loaded_challenger:
        return 1.0
    if (state.get("challenger") or {}).get("adapter_dir") == loaded_challenger:
        return float(state["share"])
    return 0.0


class RegistryRollout:
    """Challenger shares that follow the registry: re-read every `poll_seconds` on a daemon thread, so the
    rollout policy's decisions reach a running server without a restart (a failed read keeps the last
    shares)."""

    def __init__(self, tracking_uri: str, challengers: dict[str, str], poll_seconds: float = 30.0):
        self.tracking_uri, self.challengers, self.poll_seconds = tracking_uri, challengers, poll_seconds
        self.shares: dict[str, float] = {}
        self.refresh()
        threading.Thread(target=self._poll, name="tuneline-rollout", daemon=True).start()

    def refresh(self) -> None:
        from tuneline.registry import rollout_state

        for product, loaded in self.challengers.items():
            self.shares[product] = served_share(rollout_state(self.tracking_uri, f"tuneline-{product}"), loaded)

    def _poll(self) -> None:
        while True:
            time.sleep(self.poll_seconds)
            try:
                self.refresh()
            except Exception:  # the registry unreachable for a while: keep serving the last shares
                continue

    def __call__(self, product: str) -> float:
        return self.shares.get(product, 0.0)


def base_model_of(adapter_dir: str) -> str:
    return json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["base_model_name_or_path"]
