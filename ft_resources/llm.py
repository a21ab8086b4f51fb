"""An OpenAI-compatible judge: off by default; base_url, model and key are configuration."""

from __future__ import annotations

import dagster as dg

from tuneline.judge import Judge


class JudgeResource(dg.ConfigurableResource):
    """Set `enabled: true` and point `base_url` at any OpenAI-compatible server (vLLM, Ollama, OpenAI).
    The key comes from the environment only: `api_key: {env: OPENAI_API_KEY}`."""

    enabled: bool = False
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "judge"
    api_key: str = ""
    timeout_seconds: float = 60.0

    def judge(self) -> Judge | None:
        if not self.enabled:
            return None
        return Judge(self.base_url, self.model, self.api_key, timeout=self.timeout_seconds)
