"""Secrets, personal data and look-alikes planted in what a coding agent reads or a user pastes.

Each factory returns a :class:`Plant`: the text (a file, a command's output or a user message) and
the exact values planted in it, so the ground truth can list which value went into which body.
Look-alikes (git SHAs, uuids, lockfile hashes, image digests, data URLs, tool-call ids) are recorded
too, as category ``lookalike``: a redactor should leave them alone.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from tracedrop.pipelines.synth.ids import Ids

B64 = string.ascii_letters + string.digits + "+/"
B64URL = string.ascii_letters + string.digits + "-_"
UPPER_NUM = string.ascii_uppercase + string.digits
NAMES = ("alice", "bob", "carol", "dmitri", "esther", "farid", "grace", "hiro", "ines", "jonas")
DOMAINS = ("example.com", "contoso-mail.com", "fabrikam.io", "northwind.dev")

SECRET, PII, LOOKALIKE = "secret", "pii", "lookalike"


@dataclass(frozen=True)
class PlantedItem:
    kind: str
    category: str
    value: str


@dataclass(frozen=True)
class Plant:
    """Text delivered to the model: by a tool (``read_file`` path / ``execute_command`` command) or the user."""

    tool: str  # "read_file", "execute_command" or "user"
    argument: str  # the path read, the command run, or the question the user answers
    text: str
    items: tuple[PlantedItem, ...]


def _b64(ids: Ids, n: int) -> str:
    return ids.token(n, B64)


def _pem(ids: Ids, label: str, lines: int) -> str:
    body = "\n".join(_b64(ids, 64) for _ in range(lines))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"


def _b64url_json(obj: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()


def _email(ids: Ids) -> str:
    return f"{ids.rng.choice(NAMES)}.{ids.token(5, string.ascii_lowercase)}@{ids.rng.choice(DOMAINS)}"


def aws_credentials(ids: Ids) -> Plant:
    key, secret = "AKIA" + ids.token(16, UPPER_NUM), _b64(ids, 40)
    text = f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\nregion = eu-west-1\n"
    return Plant(
        "read_file",
        "~/.aws/credentials",
        text,
        (PlantedItem("aws_access_key_id", SECRET, key), PlantedItem("aws_secret_access_key", SECRET, secret)),
    )


def github_tokens(ids: Ids) -> Plant:
    classic = "ghp_" + ids.token(36)
    fine = "github_pat_" + ids.token(22) + "_" + ids.token(59)
    text = f"GH_TOKEN={classic}\nGITHUB_PAT={fine}\n"
    return Plant(
        "execute_command",
        "env | grep -i ^gh",
        text,
        (PlantedItem("github_token", SECRET, classic), PlantedItem("github_pat", SECRET, fine)),
    )


def gitlab_token(ids: Ids) -> Plant:
    token = "glpat-" + ids.token(20, B64URL)
    text = f"variables:\n  GITLAB_TOKEN: {token}\n  DOCKER_DRIVER: overlay2\nstages: [build, test]\n"
    return Plant("read_file", ".gitlab-ci.yml", text, (PlantedItem("gitlab_token", SECRET, token),))


def openai_key(ids: Ids) -> Plant:
    key = "sk-proj-" + ids.token(74, B64URL) + "T3BlbkFJ" + ids.token(74, B64URL)
    text = f'import os\n\nOPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "{key}")\nMODEL = "gpt-4.1"\n'
    return Plant("read_file", "app/settings.py", text, (PlantedItem("openai_key", SECRET, key),))


def anthropic_key(ids: Ids) -> Plant:
    key = "sk-ant-api03-" + ids.token(93, B64URL) + "AA"
    text = f"HOME=/root\nANTHROPIC_API_KEY={key}\nPATH=/usr/local/bin:/usr/bin\n"
    return Plant("execute_command", "env", text, (PlantedItem("anthropic_key", SECRET, key),))


def slack_token(ids: Ids) -> Plant:
    token = f"xoxb-{ids.token(12, string.digits)}-{ids.token(13, string.digits)}-{ids.token(24)}"
    text = (
        "#!/usr/bin/env bash\nset -euo pipefail\ncurl -sS -X POST https://slack.com/api/chat.postMessage \\\n"
        f'  -H "Authorization: Bearer {token}" \\\n  -d channel=C024BE91L -d text="deploy finished"\n'
    )
    return Plant("read_file", "scripts/notify.sh", text, (PlantedItem("slack_token", SECRET, token),))


def google_key(ids: Ids) -> Plant:
    key = "AIza" + ids.token(35, B64URL)
    text = f'export const mapsConfig = {{\n  apiKey: "{key}",\n  region: "EU",\n}};\n'
    return Plant("read_file", "web/src/maps.ts", text, (PlantedItem("google_api_key", SECRET, key),))


def jwt_paste(ids: Ids) -> Plant:
    token = ".".join(
        (
            _b64url_json({"alg": "HS256", "typ": "JWT"}),
            _b64url_json({"sub": ids.uuid4(), "role": "admin", "exp": 1798761600}),
            ids.token(43, B64URL),
        )
    )
    text = f"This request returns 401, why?\n\ncurl -H 'Authorization: Bearer {token}' https://api.internal/v2/me"
    return Plant("user", "Which request fails?", text, (PlantedItem("jwt", SECRET, token),))


def private_key(ids: Ids) -> Plant:
    block = _pem(ids, "RSA PRIVATE KEY", 25)
    return Plant("read_file", "deploy/id_rsa", block + "\n", (PlantedItem("private_key", SECRET, block),))


def truncated_private_key(ids: Ids) -> Plant:
    partial = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(_b64(ids, 70) for _ in range(9)) + "\n" + _b64(ids, 31)
    )
    return Plant(
        "execute_command",
        "head -c 700 ~/.ssh/id_ed25519",
        partial,
        (PlantedItem("private_key_truncated", SECRET, partial),),
    )


def dotenv(ids: Ids) -> Plant:
    db_password, redis_password = ids.token(18), ids.token(24)
    stripe, app_secret = "sk_live_" + ids.token(99), ids.hex(64)
    text = (
        "NODE_ENV=production\nPORT=8080\n"
        f"DATABASE_URL=postgres://app:{db_password}@db.prod.internal:5432/app\n"
        f"REDIS_URL=redis://:{redis_password}@cache.internal:6379/0\n"
        f"STRIPE_SECRET_KEY={stripe}\nSECRET_KEY={app_secret}\nLOG_LEVEL=info\n"
    )
    return Plant(
        "read_file",
        ".env",
        text,
        (
            PlantedItem("url_password", SECRET, db_password),
            PlantedItem("url_password", SECRET, redis_password),
            PlantedItem("stripe_key", SECRET, stripe),
            PlantedItem("generic_secret", SECRET, app_secret),
        ),
    )


def psql_password(ids: Ids) -> Plant:
    password = ids.token(16)
    text = (
        f"$ psql postgres://reporting:{password}@10.0.3.17:5432/warehouse -c 'select 1'\n"
        'psql: error: connection to server at "10.0.3.17", port 5432 failed: timeout expired\n'
    )
    return Plant(
        "execute_command",
        "make db-check",
        text,
        (
            PlantedItem("url_password", SECRET, password),
            PlantedItem("ip_address", PII, "10.0.3.17"),
        ),
    )


def email_and_home(ids: Ids) -> Plant:
    email, name = _email(ids), ids.rng.choice(NAMES)
    home = ids.rng.choice((f"/home/{name}", f"/Users/{name}", f"C:\\Users\\{name}"))
    sep = "\\" if home.startswith("C:") else "/"
    text = (
        f'Traceback (most recent call last):\n  File "{home}{sep}src{sep}billing{sep}export.py", line 88, in run\n'
        f"    notify(\"{email}\")\nsmtplib.SMTPRecipientsRefused: {{'{email}': (550, b'mailbox unavailable')}}\n"
    )
    return Plant(
        "execute_command",
        "python -m billing.export",
        text,
        (PlantedItem("email", PII, email), PlantedItem("home_path", PII, home)),
    )


def git_remotes(ids: Ids) -> Plant:
    org, repo, ip = (
        f"acme-{ids.token(6, string.ascii_lowercase)}",
        ids.rng.choice(("payments", "ledger", "infra")),
        (f"203.0.113.{ids.rng.randrange(1, 255)}"),
    )
    ssh, https = f"git@github.com:{org}/{repo}.git", f"https://gitlab.{org}.example/{org}/{repo}.git"
    text = f"origin\t{ssh} (fetch)\norigin\t{ssh} (push)\nmirror\t{https} (fetch)\n# deploy host {ip}\n"
    return Plant(
        "execute_command",
        "git remote -v; cat .deployhost",
        text,
        (
            PlantedItem("git_remote", PII, ssh),
            PlantedItem("git_remote", PII, https),
            PlantedItem("ip_address", PII, ip),
        ),
    )


def git_log(ids: Ids) -> Plant:
    shas = [ids.hex(40) for _ in range(3)]
    author = f"{ids.rng.choice(NAMES).title()} <{_email(ids)}>"
    text = "".join(
        f"commit {sha}\nAuthor: {author}\nDate:   Mon Nov 2 10:1{i}:00 2026 +0100\n\n    fix: retry\n\n"
        for i, sha in enumerate(shas)
    )
    return Plant(
        "execute_command",
        "git log -3",
        text,
        (
            *(PlantedItem("git_sha", LOOKALIKE, s) for s in shas),
            PlantedItem("email", PII, author[author.index("<") + 1 : -1]),
        ),
    )


def lockfile(ids: Ids) -> Plant:
    integrity = "sha512-" + _b64(ids, 86) + "=="
    text = (
        '{\n  "name": "web",\n  "lockfileVersion": 3,\n  "packages": {\n    "node_modules/zod": {\n'
        f'      "version": "3.23.8",\n      "resolved": "https://registry.npmjs.org/zod/-/zod-3.23.8.tgz",\n'
        f'      "integrity": "{integrity}"\n    }}\n  }}\n}}\n'
    )
    return Plant("read_file", "package-lock.json", text, (PlantedItem("integrity_hash", LOOKALIKE, integrity),))


def docker_pull(ids: Ids) -> Plant:
    digest = "sha256:" + ids.hex(64)
    text = f"latest: Pulling from library/postgres\nDigest: {digest}\nStatus: Image is up to date for postgres:16\n"
    return Plant("execute_command", "docker pull postgres:16", text, (PlantedItem("docker_digest", LOOKALIKE, digest),))


def fixture_ids(ids: Ids) -> Plant:
    record_id, call = ids.uuid4(), ids.call_id()
    text = orjson.dumps(
        {"id": record_id, "messages": [{"role": "tool", "tool_call_id": call, "content": "ok"}]},
        option=orjson.OPT_INDENT_2,
    ).decode()
    return Plant(
        "read_file",
        "tests/fixtures/chat.json",
        text,
        (PlantedItem("uuid", LOOKALIKE, record_id), PlantedItem("call_id", LOOKALIKE, call)),
    )


def image_paste(ids: Ids) -> Plant:
    data_url = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA" + _b64(ids, 2400) + "=="
    return Plant("user", "Can you paste the screenshot?", data_url, (PlantedItem("data_url", LOOKALIKE, data_url),))


PlantFactory = Callable[[Ids], Plant]
FACTORIES: dict[str, tuple[PlantFactory, ...]] = {
    SECRET: (
        aws_credentials,
        github_tokens,
        gitlab_token,
        openai_key,
        anthropic_key,
        slack_token,
        google_key,
        jwt_paste,
        private_key,
        truncated_private_key,
        dotenv,
        psql_password,
    ),
    PII: (email_and_home, git_remotes),
    LOOKALIKE: (git_log, lockfile, docker_pull, fixture_ids, image_paste),
}
ALL_FACTORIES: tuple[PlantFactory, ...] = tuple(f for group in FACTORIES.values() for f in group)
CATEGORY_WEIGHTS = {SECRET: 6, PII: 2, LOOKALIKE: 3}


def random_plant(rng: random.Random, ids: Ids) -> Plant:
    """A plant of a random category (secrets most often) and a random kind within it."""
    category = rng.choices(list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()))[0]
    return rng.choice(FACTORIES[category])(ids)
