"""Context shapes: how a statement carrying a secret sits in a coding-agent trace.

Each shape takes the statement and its labelled secrets and returns the sample text and the secrets
that must disappear from it (a cut secret is labelled by the part left), or None when it does not fit.
Encoded shapes keep the plain secrets as labels: the checker looks for them in every decoded view.
"""

import json
from collections.abc import Callable
from urllib.parse import quote, quote_plus

from tests.redaction_corpus.values import Values

Shaped = tuple[str, list[str]] | None
Shape = Callable[[Values, str, list[str]], Shaped]

_LOG_PREFIXES = (
    "2026-11-02T10:14:{s:02d}.{ms:03d}Z INFO  [worker-3] ",
    "[2026-11-02 10:14:{s:02d},{ms:03d}] DEBUG app.config: ",
    "Nov  2 10:14:{s:02d} web-01 app[2241]: ",
    "2026-11-02 10:14:{s:02d}.{ms:03d} UTC [4417] LOG:  ",
    "web-7d9f8c-x2k4p api 2026-11-02T10:14:{s:02d}Z ",
    "\x1b[2m10:14:{s:02d}\x1b[0m \x1b[36mdebug\x1b[0m ",
)


def raw(v: Values, text: str, secrets: list[str]) -> Shaped:
    return text, secrets


def log(v: Values, text: str, secrets: list[str]) -> Shaped:
    """Every line behind a timestamped log prefix (one log format per sample, time moving forward)."""
    prefix = v.pick(_LOG_PREFIXES)
    second, ms = v.rng.randint(0, 40), v.rng.randint(0, 900)
    lines = [prefix.format(s=min(59, second + i // 8), ms=ms + i) + line for i, line in enumerate(text.split("\n"))]
    return "\n".join(lines), secrets


def stacktrace(v: Values, text: str, secrets: list[str]) -> Shaped:
    """The statement inside an exception message, Python or Java style."""
    if v.rng.random() < 0.5:
        return (
            "Traceback (most recent call last):\n"
            '  File "/srv/app/worker/tasks.py", line 88, in run\n'
            "    client = connect(settings)\n"
            '  File "/srv/app/.venv/lib/python3.11/site-packages/dbkit/pool.py", line 231, in connect\n'
            '    raise ConfigError(f"cannot apply {raw!r}")\n'
            f"dbkit.errors.ConfigError: cannot apply {text!r}"
        ), secrets
    return (
        'Exception in thread "main" java.lang.IllegalStateException: Failed to load ApplicationContext\n'
        f"Caused by: org.springframework.beans.factory.BeanCreationException: invalid property: {text}\n"
        "\tat org.springframework.beans.factory.support.AbstractBeanFactory.getBean(AbstractBeanFactory.java:313)\n"
        "\tat com.acme.billing.App.main(App.java:42)"
    ), secrets


def diff(v: Values, text: str, secrets: list[str]) -> Shaped:
    """The statement as lines added by a unified diff."""
    path = v.pick(
        ("config/settings.py", "deploy/values.yaml", ".env.example", "src/main/resources/app.conf", "README.md")
    )
    added = "\n".join("+" + line for line in text.split("\n"))
    return (
        f"diff --git a/{path} b/{path}\nindex 3f2a9c1..8b7d0e4 100644\n--- a/{path}\n+++ b/{path}\n"
        f"@@ -12,6 +12,{6 + text.count(chr(10)) + 1} @@\n # settings\n{added}\n # end"
    ), secrets


def doc(v: Values, text: str, secrets: list[str]) -> Shaped:
    """A ticket or README excerpt quoting the statement in a fenced block."""
    intro = v.pick(
        (
            "### Steps to reproduce\n\nRun this on staging:",
            "Hi team, the deploy failed again. Here is what I used:",
            "## Local setup\n\nPut the following in your config:",
            "Ticket OPS-4412: rotate after the incident. Current value below.",
        )
    )
    return f"{intro}\n\n```\n{text}\n```\n\nThanks!", secrets


def json_body(v: Values, text: str, secrets: list[str]) -> Shaped:
    """A chat-completions request with the statement as the user's message (sometimes ASCII-escaped)."""
    body = {
        "model": "preview/acme-coder",
        "messages": [{"role": "system", "content": "You are a coding agent."}, {"role": "user", "content": text}],
        "stream": True,
    }
    return json.dumps(body, ensure_ascii=v.rng.random() < 0.3), secrets


def tool_call(v: Values, text: str, secrets: list[str]) -> Shaped:
    """The statement in a tool call's doubly encoded `arguments`."""
    arguments = v.pick(({"command": text}, {"path": "config/app.env", "content": text}))
    call = {
        "id": "call_" + v.chars("abcdefghijklmnopqrstuvwxyz0123456789", 24),
        "type": "function",
        "function": {"name": "bash" if "command" in arguments else "write_file", "arguments": json.dumps(arguments)},
    }
    body = {"model": "preview/acme-coder", "messages": [{"role": "assistant", "content": None, "tool_calls": [call]}]}
    return json.dumps(body), secrets


def tool_result(v: Values, text: str, secrets: list[str]) -> Shaped:
    """The statement as a tool's output, OpenAI or Anthropic message format."""
    if v.rng.random() < 0.5:
        message = {"role": "tool", "tool_call_id": "call_" + v.chars("0123456789abcdef", 16), "content": text}
    else:
        message = {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01"
                    + v.chars("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789", 22),
                    "content": [{"type": "text", "text": text}],
                }
            ],
        }
    return json.dumps({"model": "preview/acme-coder", "messages": [message]}), secrets


def url_encoded(v: Values, text: str, secrets: list[str]) -> Shaped:
    """The statement percent-encoded in a query string or a form body."""
    if v.rng.random() < 0.5:
        return f"GET /api/v2/notes/search?q={quote_plus(text)}&limit=20 HTTP/1.1", secrets
    return f"curl -s -X POST https://paste.internal.example/api -d 'content={quote(text, safe='')}'", secrets


def base64_file(v: Values, text: str, secrets: list[str]) -> Shaped:
    """The statement inside a base64-encoded `.env` / config file, as agents ship files around."""
    content = v.pick(("APP_ENV=production\nLOG_LEVEL=info\n", "# generated\n", "")) + text + "\n"
    encoded = v.b64(content.encode())
    wrapper = v.pick(
        (
            "echo '{b}' | base64 -d > .env",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-env\ntype: Opaque\ndata:\n  .env: {b}",
            '{{"path": ".env", "encoding": "base64", "content": "{b}"}}',
            "ENV_FILE_B64={b}",
        )
    )
    return wrapper.format(b=encoded), secrets


def data_uri(v: Values, text: str, secrets: list[str]) -> Shaped:
    """The statement as a base64 data URI in an `image_url` / file content part."""
    mime = v.pick(("text/plain", "application/octet-stream", "text/x-env"))
    url = f"data:{mime};base64,{v.b64(text.encode())}"
    part = v.pick(({"type": "image_url", "image_url": {"url": url}}, {"type": "file", "file": {"file_data": url}}))
    message = {"role": "user", "content": [{"type": "text", "text": "see attached config"}, part]}
    return json.dumps({"model": "preview/acme-coder", "messages": [message]}), secrets


def repeated(v: Values, text: str, secrets: list[str]) -> Shaped:
    """The first secret mentioned again later without any telling context: every occurrence must go."""
    again = v.pick(
        (
            "\n...\n$ echo -n {s} | wc -c",
            "\n\nverified, {s} works against staging",
            "\n> {s}\nconfirmed",
            "\n# old value (rotated?): {s}",
        )
    )
    return text + again.format(s=secrets[0]), secrets


def cut_at_end(v: Values, text: str, secrets: list[str]) -> Shaped:
    """The text ends inside the last secret (a truncated log or tool output); the part left is labelled."""
    secret = secrets[-1]
    if len(secret) < 16 or "\n" in secret:
        return None
    keep = max(12, int(len(secret) * v.rng.uniform(0.5, 0.8)))
    start = text.rfind(secret)
    if start < 0:
        return None
    cut = secret[:keep]
    return text[: start + keep], [s for s in secrets[:-1] if s in text[:start]] + [cut]


def _filler_lines(v: Values, n: int) -> list[str]:
    """Harmless code and log lines (no credentials, addresses or paths with user names)."""
    templates = (
        "def handle_{w}(request, limit={n}):",
        "    items = repository.fetch_{w}(limit=limit, offset={n})",
        "    logger.info('processed %d {w} records', len(items))",
        "    return JSONResponse({{'count': len(items), 'page': {m}}})",
        "class {W}Service:",
        "    retries = {n}",
        "# TODO({w}): move this into the {w} module",
        "INFO worker-{m} finished batch {n} in {k} ms",
        "    assert response.status_code == 200, response.text",
        "import {w}_client",
    )
    lines = []
    for _ in range(n):
        word = v.word()
        numbers = {key: v.rng.randint(1, 500) for key in "nmk"}
        lines.append(v.pick(templates).format(w=word, W=word.capitalize(), **numbers))
    return lines


def long_body(v: Values, text: str, secrets: list[str]) -> Shaped:
    """A whole agent turn: the statement buried in the middle of a file a tool read, inside a long body."""
    before, after = _filler_lines(v, v.rng.randint(20, 60)), _filler_lines(v, v.rng.randint(20, 60))
    content = "\n".join([*before, text, *after])
    call = {
        "id": "call_" + v.chars("abcdefghijklmnopqrstuvwxyz0123456789", 24),
        "type": "function",
        "function": {"name": "read_file", "arguments": json.dumps({"path": "src/app/settings.py"})},
    }
    messages = [
        {"role": "system", "content": "You are a coding agent. Use the tools to inspect the repository."},
        {"role": "user", "content": "Why does the service fail to start? " + " ".join(_filler_lines(v, 3))},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": content},
    ]
    return json.dumps({"model": "preview/acme-coder", "messages": messages, "max_tokens": 4096}), secrets


SHAPES: dict[str, Shape] = {
    "raw": raw,
    "log": log,
    "stacktrace": stacktrace,
    "diff": diff,
    "doc": doc,
    "json-body": json_body,
    "tool-call": tool_call,
    "tool-result": tool_result,
    "url-encoded": url_encoded,
    "base64-file": base64_file,
    "data-uri": data_uri,
    "repeated": repeated,
    "cut-at-end": cut_at_end,
    "long-body": long_body,
}
# Shapes whose samples are JSON documents (and must stay parsable after redaction).
JSON_SHAPES = frozenset({"json-body", "tool-call", "tool-result", "data-uri", "long-body"})
# Shapes a hard negative is tried in (encodings that hide text are pointless for negatives).
NEGATIVE_SHAPES = ("raw", "log", "diff", "doc", "json-body", "tool-call", "tool-result", "long-body")
