"""Plain-language insights: one interface, a template provider (default) and an Amazon Bedrock provider.

An agent hands a provider the *facts* of one finding (a flat mapping of numbers and short texts it has
already computed) and its own template renderer. :class:`TemplateProvider` returns the rendered template:
deterministic, free and offline. :class:`BedrockProvider` asks a model on Amazon Bedrock (the
``bedrock-runtime`` Converse API) to rewrite the same facts as a short note for an MSP owner, with the
template text as the draft it must stay faithful to; on any error it falls back to the template, so a
Bedrock outage never stops a run. Which one is used is a setting (``<agent>.insights_provider``), off by
default; credentials come from the standard AWS chain, never from our files.

The model is told to use only the given facts; every number in its note can be traced to them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

Renderer = Callable[[Mapping[str, Any]], str]

SYSTEM_PROMPT = (
    "You write short notes for the owner of a Managed Service Provider about one client. Use only the facts "
    "given, keep every number exactly as given, do not invent causes, and end with the suggested action. "
    "At most 3 sentences, plain language, no headings, no lists."
)


@dataclass(frozen=True)
class Insight:
    text: str
    provider: str  #: "template" or "bedrock:<model id>" (or "template (bedrock failed: ...)")


class InsightProvider(Protocol):
    name: str

    def explain(self, facts: Mapping[str, Any], render: Renderer) -> Insight: ...


class TemplateProvider:
    """The agent's own template, filled with the facts."""

    name = "template"

    def explain(self, facts: Mapping[str, Any], render: Renderer) -> Insight:
        return Insight(render(facts), self.name)


@dataclass
class BedrockProvider:
    """Rewrites the template draft with a Bedrock model through the Converse API."""

    model_id: str
    max_tokens: int = 300
    region: str | None = None
    client: Any = None
    temperature: float = 0.0
    calls: int = field(default=0, init=False)

    @property
    def name(self) -> str:
        return f"bedrock:{self.model_id}"

    def _client(self):
        if self.client is None:
            import boto3

            self.client = boto3.client("bedrock-runtime", region_name=self.region)
        return self.client

    def request(self, facts: Mapping[str, Any], draft: str) -> dict[str, Any]:
        """The Converse request for one insight (exposed so tests can check it exactly)."""
        prompt = ("Facts (JSON):\n" + json.dumps(dict(facts), sort_keys=True, default=str)
                  + "\n\nDraft to improve (keep its numbers and its suggested action):\n" + draft)
        return {"modelId": self.model_id, "system": [{"text": SYSTEM_PROMPT}],
                "messages": [{"role": "user", "content": [{"text": prompt}]}],
                "inferenceConfig": {"maxTokens": self.max_tokens, "temperature": self.temperature}}

    def explain(self, facts: Mapping[str, Any], render: Renderer) -> Insight:
        draft = render(facts)
        try:
            self.calls += 1
            response = self._client().converse(**self.request(facts, draft))
            parts = response["output"]["message"]["content"]
            text = " ".join(p["text"].strip() for p in parts if "text" in p).strip()
            if not text:
                raise ValueError(f"empty answer (stopReason {response.get('stopReason')})")
            return Insight(text, self.name)
        except Exception as exc:  # never let the optional model break the run
            log.warning("Bedrock insight failed, using the template: %s", exc)
            return Insight(draft, f"template (bedrock failed: {type(exc).__name__})")


def provider(kind: str, *, model_id: str = "", max_tokens: int = 300, region: str | None = None,
             client: Any = None) -> InsightProvider:
    """The provider a setting names: ``template`` or ``bedrock``."""
    if kind == "template":
        return TemplateProvider()
    if kind == "bedrock":
        if not model_id:
            raise ValueError("the bedrock insight provider needs a model id (<agent>.bedrock_model_id)")
        return BedrockProvider(model_id, max_tokens, region, client)
    raise ValueError(f"unknown insight provider {kind!r} (template | bedrock)")
