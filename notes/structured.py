"""Structured answers from the LLM: JSON that fits a schema, or a failure that says why.

Asks with ``response_format={"type": "json_schema", "json_schema": {"name", "schema",
"strict": true}}``; a server that refuses that (an HTTP 400 or 422 naming the response
format) is asked again in JSON mode (``{"type": "json_object"}``) with the schema in the
system message, and the answer is validated here all the same. An answer that is not JSON
or does not fit is sent back with the validation errors, at a lower temperature, until
``attempts`` run out. Every send is audited; the transcript's e-mail addresses and phone
numbers are masked before they leave (``scribe/llm.py``) and put back in the answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from jsonschema import Draft202012Validator

from scribe.egress import EgressRefused, refusal
from scribe.llm import Audit, LLMConfig, chat_client, check_egress, mask, unmask

# Each retry lowers the temperature by this much, down to 0.
TEMPERATURE_STEP = 0.2
MAX_ERRORS_SHOWN = 5


class NotesError(Exception):
    """Notes could not be made; ``code`` and ``message`` are what the API shows."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.spent: Answer | None = None  # the answers asked for before it failed

    def cost(self) -> dict[str, Any]:
        """What the failed note records of the answers it took."""
        if self.spent is None:
            return {}
        return {
            "attempts": self.spent.attempts,
            "usage": self.spent.usage,
            "model": self.spent.model,
        }


@dataclass
class Answer:
    """A validated answer and what it cost."""

    data: Any
    model: str
    attempts: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    response_format: str = "json_schema"

    def add_usage(self, usage: Any) -> None:
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            self.usage[name] = self.usage.get(name, 0) + int(getattr(usage, name, 0) or 0)


@dataclass(frozen=True)
class Request:
    """What to ask: a system message, the user's (which holds the transcript), the schema."""

    system: str
    user: str
    schema: Mapping[str, Any]
    name: str  # the schema's name, as json_schema wants one: ^[a-zA-Z0-9_-]{1,64}$
    temperature: float = 0.2


def schema_errors(data: Any, schema: Mapping[str, Any]) -> list[str]:
    """Why ``data`` does not fit ``schema`` (empty when it does), most useful first."""
    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: e.path)
    return [f"at {error.json_path}: {error.message}" for error in errors[:MAX_ERRORS_SHOWN]]


def structured_answer(
    request: Request, *, config: LLMConfig, audit: Audit, attempts: int
) -> Answer:
    """Ask until the answer fits ``request.schema`` (at most ``attempts`` answers).

    Raises NotesError: ``llm_refused`` (the endpoint is not allowed; nothing was sent),
    ``llm_unavailable``, ``llm_timeout``, ``llm_error`` (the server failed),
    ``llm_invalid_answer`` (still not fitting after every attempt).
    """
    try:
        egress = check_egress(config)
    except EgressRefused as exc:
        raise NotesError(
            "llm_refused",
            f"{exc} Ask the operator to list the LLM's host in SCRIBE_LLM_ALLOWED_HOSTS.",
        ) from None
    masked, mapping = mask(request.user) if config.mask_pii else (request.user, {})
    messages: list[dict[str, str]] = [
        {"role": "system", "content": request.system},
        {"role": "user", "content": masked},
    ]
    answer = Answer(data=None, model=config.model)
    client = chat_client(config, egress)

    def record(sent: int, outcome: str) -> None:
        audit(sent, outcome[:200], egress.destination)

    problems: list[str] = []
    try:
        while answer.attempts < attempts:
            temperature = max(0.0, request.temperature - TEMPERATURE_STEP * answer.attempts)
            content = _send(client, request, messages, answer, config, record, temperature)
            answer.attempts += 1
            data, problems = _parsed(content, request.schema)
            if not problems:
                answer.data = _unmasked(data, mapping)
                return answer
            messages += [
                {"role": "assistant", "content": content},
                {
                    "role": "user",
                    "content": "Your answer does not fit the JSON Schema: "
                    + "; ".join(problems)
                    + ". Answer again with one JSON object that fits it, nothing else.",
                },
            ]
        raise NotesError(
            "llm_invalid_answer",
            f"The LLM's answer did not fit the template's schema after {answer.attempts} "
            f"attempt(s): {'; '.join(problems)}. Try again (POST /v1/jobs/{{id}}/notes), or "
            "ask the operator to raise SCRIBE_LLM_NOTES_ATTEMPTS or use a stronger model.",
        )
    except NotesError as exc:
        exc.spent = answer
        raise
    finally:
        client.close()


def _send(client, request, messages, answer: Answer, config, record, temperature) -> str:
    """One chat completion; falls back to JSON mode once when json_schema is refused."""
    sent = sum(len(m["content"]) for m in messages)
    while True:
        try:
            response = client.chat.completions.create(
                model=config.model,
                temperature=temperature,
                messages=_with_schema(messages, request)
                if answer.response_format == "json_object"
                else messages,
                response_format=_response_format(answer.response_format, request),
            )
        except openai.BadRequestError as exc:
            if answer.response_format == "json_schema" and _refuses_json_schema(exc):
                record(sent, f"refused json_schema: {exc.status_code}")
                answer.response_format = "json_object"
                continue
            raise _failure(exc, sent, record, config) from None
        except (openai.OpenAIError, EgressRefused) as exc:
            raise _failure(exc, sent, record, config) from None
        record(sent, "answered")
        answer.add_usage(response.usage)
        answer.model = response.model or config.model
        return response.choices[0].message.content or ""


def _response_format(kind: str, request: Request) -> dict[str, Any]:
    if kind == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {"name": request.name, "schema": dict(request.schema), "strict": True},
    }


def _with_schema(messages: list[dict[str, str]], request: Request) -> list[dict[str, str]]:
    """JSON mode enforces no schema: the system message carries it instead."""
    schema = json.dumps(request.schema, ensure_ascii=False)
    system = (
        f"{messages[0]['content']}\n\nAnswer with one JSON object, nothing else, that fits "
        f"this JSON Schema:\n{schema}"
    )
    return [{"role": "system", "content": system}, *messages[1:]]


def _refuses_json_schema(exc: openai.APIStatusError) -> bool:
    text = str(exc).lower()
    return exc.status_code in (400, 422) and ("json_schema" in text or "response_format" in text)


def _failure(exc: BaseException, sent: int, record, config: LLMConfig) -> NotesError:
    refused = refusal(exc)
    if refused is not None:
        record(sent, f"refused: {refused}")
        return NotesError(
            "llm_refused",
            f"{refused} Ask the operator to list the host in SCRIBE_LLM_ALLOWED_HOSTS.",
        )
    record(sent, f"failed: {type(exc).__name__}")
    if isinstance(exc, openai.APITimeoutError):
        return NotesError(
            "llm_timeout",
            f"The LLM at {config.base_url} did not answer within {config.timeout_s:g} s "
            "(SCRIBE_LLM_TIMEOUT_S). Try again later (POST /v1/jobs/{id}/notes).",
        )
    if isinstance(exc, openai.APIConnectionError):
        return NotesError(
            "llm_unavailable",
            f"The LLM at {config.base_url} could not be reached ({exc}). The transcript is "
            "complete; ask for the notes again once it is up (POST /v1/jobs/{id}/notes).",
        )
    status = getattr(exc, "status_code", None)
    return NotesError(
        "llm_error",
        f"The LLM at {config.base_url} answered with an error"
        f"{f' (HTTP {status})' if status else ''}: {str(exc)[:300]}. Try again later "
        "(POST /v1/jobs/{id}/notes); tell the operator if it persists.",
    )


def _parsed(content: str, schema: Mapping[str, Any]) -> tuple[Any, list[str]]:
    text = content.strip()
    if text.startswith("```"):  # a fenced block, as some local models answer in JSON mode
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"the answer is not JSON ({exc.msg} at character {exc.pos})"]
    return data, schema_errors(data, schema)


def _unmasked(data: Any, mapping: dict[str, str]) -> Any:
    """The answer with the masked addresses and numbers put back in every string."""
    if not mapping:
        return data
    if isinstance(data, str):
        return unmask(data, mapping)
    if isinstance(data, list):
        return [_unmasked(item, mapping) for item in data]
    if isinstance(data, dict):
        return {key: _unmasked(value, mapping) for key, value in data.items()}
    return data
