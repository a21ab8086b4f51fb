"""Where alerts go: a webhook taking Slack/Teams-compatible JSON (`text`), the one the failure sensor posts to.
The URL is a secret (it carries the channel's token): configured through dg.EnvVar only."""

from __future__ import annotations

import json
import urllib.request

import dagster as dg


class AlertWebhook(dg.ConfigurableResource):
    """`url` empty: alerts are only recorded in the asset's metadata."""

    url: str = ""
    timeout_seconds: float = 10.0

    def send(self, text: str, details: dict) -> int | None:
        """POSTs {"text", "details"}; returns the HTTP status, None when no URL is configured."""
        if not self.url:
            return None
        request = urllib.request.Request(self.url, data=json.dumps({"text": text, "details": details}).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
            return response.status
