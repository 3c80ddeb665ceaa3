"""Deterministic synthetic coding-agent request bodies (OpenAI chat JSON) for benchmarks and tests.

Mostly code, prose, shell output and diffs, with look-alikes (SHAs, UUIDs, digests, integrity
hashes, base64) and secrets sprinkled in at a low rate.
"""

import base64
import json
import random
import string
import uuid

_WORDS = tuple(
    [
        "the",
        "agent",
        "reads",
        "files",
        "runs",
        "tests",
        "and",
        "edits",
        "code",
        "until",
        "the",
        "build",
        "passes",
        "use",
        "tools",
        "carefully",
        "prefer",
        "small",
        "diffs",
        "explain",
        "each",
        "change",
        "keep",
        "the",
        "user",
        "informed",
        "never",
        "guess",
        "paths",
        "list",
        "the",
        "directory",
        "first",
        "then",
        "open",
        "the",
        "file",
        "check",
        "types",
        "run",
        "the",
        "linter",
        "and",
        "report",
        "failures",
        "clearly",
    ]
)
_IDENT = tuple(
    [
        "config",
        "parser",
        "handler",
        "request",
        "response",
        "client",
        "session",
        "cache",
        "loader",
        "writer",
        "index",
        "batch",
    ]
)
_ALNUM = string.ascii_letters + string.digits


def _token(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _prose(rng: random.Random, n_words: int) -> str:
    words = rng.choices(_WORDS, k=n_words)
    return " ".join(words).capitalize() + "."


def fake_secret(rng: random.Random) -> str:
    """One realistic-looking fake secret, of a kind picked at random."""
    upper = string.ascii_uppercase + string.digits
    makers = [
        lambda: "AKIA" + _token(rng, 16, upper),
        lambda: "ghp_" + _token(rng, 36),
        lambda: "github_pat_" + _token(rng, 22) + "_" + _token(rng, 59),
        lambda: "glpat-" + _token(rng, 20),
        lambda: "sk-proj-" + _token(rng, 48),
        lambda: "sk-ant-api03-" + _token(rng, 93) + "AA",
        lambda: "xoxb-" + "-".join(_token(rng, 12, string.digits) for _ in range(2)) + "-" + _token(rng, 24),
        lambda: "sk_live_" + _token(rng, 24),
        lambda: "AIza" + _token(rng, 35),
        lambda: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI" + _token(rng, 20) + "." + _token(rng, 43),
        lambda: f"postgres://app:{_token(rng, 14)}@db.internal:5432/prod",
        lambda: f"export OPENAI_API_KEY={'sk-' + _token(rng, 48)}",
        lambda: f"DB_PASSWORD={_token(rng, 16)}",
        lambda: f'password = "{_token(rng, 12)}#{_token(rng, 3)}"',
        lambda: f"contact {rng.choice(_IDENT)}.{rng.choice(_IDENT)}@example.com",
        lambda: f"ssh deploy@10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        lambda: (
            "-----BEGIN RSA PRIVATE KEY-----\n"
            + "\n".join(_token(rng, 64) for _ in range(rng.randrange(3, 12)))
            + "\n-----END RSA PRIVATE KEY-----"
        ),
    ]
    return rng.choice(makers)()


def _code(rng: random.Random, n_lines: int) -> str:
    lines = []
    for _ in range(n_lines):
        a, b = rng.sample(_IDENT, 2)
        lines.append(
            rng.choice(
                [
                    f"def {a}_{b}(self, {a}: dict[str, int]) -> list[str]:",
                    f"    {a} = self.{b}.get('{a}', None)  # {_prose(rng, 4)}",
                    f"    for {a} in sorted({b}_items, key=lambda x: x.{a}):",
                    f"const {a}{b.title()} = await fetch(`/api/{a}/${{id}}`, {{ method: 'POST' }});",
                    f"        raise ValueError(f'{a} {{{b}!r}} is invalid')",
                    f"import {{ {a} }} from './{b}';",
                ]
            )
        )
    return "\n".join(lines)


def _shell(rng: random.Random) -> str:
    sha = _token(rng, 40, "0123456789abcdef")
    integrity = base64.b64encode(rng.randbytes(64)).decode()
    return "\n".join(
        [
            f"commit {sha}",
            f"Author: Dev <dev@users.noreply.github.com>\n    {_prose(rng, 8)}",
            f'  "integrity": "sha512-{integrity}",',
            f"Digest: sha256:{_token(rng, 64, '0123456789abcdef')}",
            f"request_id={uuid.UUID(int=rng.getrandbits(128))} status=200 elapsed=0.{rng.randrange(999)}s",
            f"-rw-r--r--  1 dev  staff  {rng.randrange(99999)} Nov 26 05:03 {rng.choice(_IDENT)}.py",
            "===== 42 passed, 1 skipped in 3.21s =====",
        ]
    )


def _diff(rng: random.Random) -> str:
    a, b = rng.sample(_IDENT, 2)
    return f"--- a/src/{a}.py\n+++ b/src/{a}.py\n@@ -10,7 +10,8 @@\n-    {a} = {b}()\n+    {a} = {b}(timeout=30)\n"


def _tool_content(rng: random.Random, secret_rate: float) -> str:
    parts = [rng.choice([_code(rng, rng.randrange(20, 120)), _shell(rng), _diff(rng), _prose(rng, 60)])]
    if rng.random() < secret_rate:
        parts.insert(rng.randrange(len(parts) + 1), fake_secret(rng))
    return "\n".join(parts)


def request_body(rng: random.Random, system_prompt: str, secret_rate: float = 0.05) -> str:
    """One chat-completions request body of a coding-agent session."""
    messages: list[dict] = [{"role": "system", "content": system_prompt}]
    messages.append({"role": "user", "content": _prose(rng, rng.randrange(10, 60))})
    for i in range(rng.randrange(2, 12)):
        call_id = f"call_{_token(rng, 24)}"
        path = f"src/{rng.choice(_IDENT)}/{rng.choice(_IDENT)}.py"
        arguments = json.dumps({"path": path, "note": _tool_content(rng, secret_rate / 4)[:200]})
        messages.append(
            {
                "role": "assistant",
                "content": _prose(rng, rng.randrange(5, 30)),
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "read_file", "arguments": arguments},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": _tool_content(rng, secret_rate)})
        if i % 4 == 3:
            image = base64.b64encode(rng.randbytes(600)).decode()
            part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}}
            messages.append({"role": "user", "content": [part]})
    return json.dumps({"model": "preview/acme-coder", "stream": True, "messages": messages})


def request_bodies(total_bytes: int, seed: int = 0, secret_rate: float = 0.05) -> list[str]:
    """Bodies totalling about `total_bytes` of UTF-8, identical for a given seed."""
    rng = random.Random(seed)
    system_prompt = "\n\n".join(_prose(rng, 120) for _ in range(12))
    bodies: list[str] = []
    size = 0
    while size < total_bytes:
        bodies.append(request_body(rng, system_prompt, secret_rate))
        size += len(bodies[-1].encode())
    return bodies
