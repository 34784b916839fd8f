"""A small OpenAI-compatible chat completions server on loopback, for tests.

Plain chat (the glossary's correction) answers ``reply(user_message)``. Structured output
is understood as a local server would: ``response_format`` ``json_schema`` answers an
object made to fit the schema (strings taken from the transcript's words, so keywords are
words that were said), unless ``answer`` says otherwise; ``json_object`` reads the schema
from the system message, where scribe puts it in JSON mode. Modes for the failure paths:
``refuse_json_schema`` (an HTTP 400 naming it, as servers without it answer),
``ignore_schema_first`` (the first answer of each conversation does not fit).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORD = re.compile(r"[^\W\d_][\w.+-]{3,}")


class FakeLLM:
    """Answers POST /v1/chat/completions; records every request's body."""

    def __init__(
        self,
        reply: Callable[[str], str] | None = None,
        *,
        answer: Callable[[dict[str, Any]], Any] | None = None,
        refuse_json_schema: bool = False,
        ignore_schema_first: bool = False,
        delay_s: float = 0.0,
    ) -> None:
        self.reply = reply or (lambda user: user)
        self.answer = answer
        self.refuse_json_schema = refuse_json_schema
        self.ignore_schema_first = ignore_schema_first
        self.delay_s = delay_s
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body})
                if outer.delay_s:
                    threading.Event().wait(outer.delay_s)
                status, payload = outer.respond(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # a slow answer still waiting does not hold exit
        self.server.block_on_close = False
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        kind = (body.get("response_format") or {}).get("type")
        if kind == "json_schema" and self.refuse_json_schema:
            error = {"message": "response_format json_schema is not supported by this server"}
            return 400, {"error": {**error, "type": "invalid_request_error", "code": None}}
        if kind in ("json_schema", "json_object"):
            content = json.dumps(self.structured(body, kind), ensure_ascii=False)
        else:
            content = self.reply(body["messages"][-1]["content"])
        return 200, {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }

    def structured(self, body: dict[str, Any], kind: str) -> Any:
        messages = body["messages"]
        if self.ignore_schema_first and len(messages) == 2:
            return {"answer": "free text, not what the schema asks"}
        if kind == "json_schema":
            schema = body["response_format"]["json_schema"]["schema"]
        else:
            schema = json.loads(messages[0]["content"].split("fits this JSON Schema:\n", 1)[1])
        if self.answer is not None:
            return self.answer(body)
        words = WORD.findall(messages[1]["content"].split("Transcript", 1)[-1]) or ["nothing"]
        return fitting(schema, words)

    def __enter__(self) -> FakeLLM:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def structured_requests(self) -> list[dict]:
        return [r["body"] for r in self.requests if r["body"].get("response_format")]

    def sentences_sent(self) -> list[str]:
        return [
            r["body"]["messages"][-1]["content"].split("Sentence to correct: ")[1].split("\n")[0]
            for r in self.requests
        ]


def fitting(schema: dict[str, Any], words: list[str]) -> Any:
    """A value that fits ``schema`` (the subset scribe's templates use), from ``words``."""
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]
        kind = next(k for k in kind if k != "null")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {name: fitting(sub, words) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        count = max(1, schema.get("minItems", 0))
        count = min(count + 1, schema.get("maxItems", count + 1))
        return [fitting(schema["items"], words[i:] + words[:i]) for i in range(count)]
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    return " ".join(words[:3])[: schema.get("maxLength", 200)]
