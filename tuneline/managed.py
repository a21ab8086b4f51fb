"""Managed fine-tuning through the OpenAI API (or any server implementing its files + fine_tuning endpoints).

Upload the chat JSONL, create the job, poll with exponential backoff, and raise with the job's own
error when it fails or is cancelled. Nothing here waits forever: `max_wait_seconds` bounds it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

TERMINAL = {"succeeded", "failed", "cancelled"}


class ManagedFineTuneError(RuntimeError):
    """The provider's job failed, was cancelled, or did not finish in time; the message carries its reason."""


@dataclass(frozen=True)
class ManagedJobSettings:
    base_model: str = "gpt-4o-mini-2024-07-18"
    n_epochs: int | None = None
    suffix: str | None = None
    seed: int = 42
    poll_seconds: float = 10.0
    max_poll_seconds: float = 300.0
    max_wait_seconds: float = 6 * 3600


def messages_only(src: Path, dst: Path) -> Path:
    """The provider wants {"messages": [...]} lines only; tuneline's exports also carry split and metadata."""
    with src.open(encoding="utf-8") as fin, dst.open("w", encoding="utf-8") as fout:
        for line in fin:
            if line.strip():
                fout.write(json.dumps({"messages": json.loads(line)["messages"]}, ensure_ascii=False) + "\n")
    return dst


def run_managed_fine_tune(client, train_file: Path, val_file: Path | None, settings: ManagedJobSettings,
                          log=print, sleep=time.sleep) -> dict:
    work = train_file.parent
    uploads = {}
    for name, path in (("training_file", train_file), ("validation_file", val_file)):
        if path is None or not path.exists() or path.stat().st_size == 0:
            continue
        with messages_only(path, work / f".{path.stem}.openai.jsonl").open("rb") as fh:
            uploads[name] = client.files.create(file=fh, purpose="fine-tune").id
    hyper = {"n_epochs": settings.n_epochs} if settings.n_epochs else {}
    job = client.fine_tuning.jobs.create(model=settings.base_model, seed=settings.seed,
                                         **({"suffix": settings.suffix} if settings.suffix else {}),
                                         **({"hyperparameters": hyper} if hyper else {}), **uploads)
    log(f"created fine-tuning job {job.id} on {settings.base_model}")
    delay, waited = settings.poll_seconds, 0.0
    while job.status not in TERMINAL:
        if waited >= settings.max_wait_seconds:
            raise ManagedFineTuneError(f"job {job.id} still {job.status} after {waited:.0f} s; it keeps running at "
                                       "the provider, cancel it there if it is no longer wanted")
        sleep(delay)
        waited += delay
        delay = min(delay * 2, settings.max_poll_seconds)
        job = client.fine_tuning.jobs.retrieve(job.id)
        log(f"job {job.id}: {job.status}")
    if job.status == "failed":
        error = getattr(job, "error", None)
        message = getattr(error, "message", None) or "no error message from the provider"
        raise ManagedFineTuneError(f"fine-tuning job {job.id} failed: {message}")
    if job.status == "cancelled":
        raise ManagedFineTuneError(f"fine-tuning job {job.id} was cancelled")
    return {"job_id": job.id, "fine_tuned_model": job.fine_tuned_model, "trained_tokens": job.trained_tokens,
            "base_model": settings.base_model, **uploads}
