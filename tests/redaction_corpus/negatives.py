"""Hard-negative kinds: text that looks secret-ish but must come out of redaction unchanged."""

import json
from collections.abc import Callable

from tests.redaction_corpus.values import ALNUM, B64, B64URL, HEX, LOWER_ALNUM, Values

Negative = Callable[[Values], str]


def git_sha(v: Values) -> str:
    sha = v.chars(HEX, 40)
    return v.pick(
        (
            f"commit {sha}\nMerge: {v.chars(HEX, 7)} {v.chars(HEX, 7)}\nDate:   Mon Nov 2 10:14:03 2026 +0100",
            f"HEAD is now at {sha[:7]} fix: handle token refresh",
            f"$ git rev-parse HEAD\n{sha}",
            f'Fixes: {sha[:12]} ("auth: rotate session secret on login")',
            f"* {sha[:9]} (origin/main) bump password hashing rounds",
            f"Cherry-picked from {sha}",
        )
    )


def digest(v: Values) -> str:
    sha256, sha512, sha1 = v.chars(HEX, 64), v.chars(HEX, 128), v.chars(HEX, 40)
    return v.pick(
        (
            f"{sha256}  dist/tracedrop-0.{v.rng.randint(1, 9)}.0.tar.gz",
            f"SHA256 (app-linux-amd64) = {sha256}",
            f"{sha512}  release.zip",
            f'"checksum": "sha1:{sha1}"',
            f"sha256: {sha256}",
            f"Digest (SHA-512): {sha512}",
        )
    )


def uuid(v: Values) -> str:
    return v.pick(
        (
            f"request_id={v.uuid4()} status=200 duration_ms={v.rng.randint(3, 900)}",
            f'  uid: {v.uuid4()}\n  resourceVersion: "{v.digits(8)}"',
            json.dumps({"trace_id": v.uuid4(), "session_id": v.uuid4()}),
            f"Created job {v.uuid4()}",
        )
    )


def integrity(v: Values) -> str:
    value = "sha512-" + v.random_b64(64)
    name = v.pick(("lodash", "react-dom", "@babel/core", "esbuild", "typescript"))
    return v.pick(
        (
            f'"node_modules/{name}": {{\n  "version": "4.17.21",\n  "integrity": "{value}"\n}}',
            f'"{name}@^4.17.21":\n  version "4.17.21"\n  integrity {value}',
            f'<script src="https://cdn.example/{name}.min.js" integrity="sha384-{v.random_b64(48)}"></script>',
        )
    )


def docker_digest(v: Values) -> str:
    digest_ = "sha256:" + v.chars(HEX, 64)
    return v.pick(
        (
            f"image: ghcr.io/acme/api@{digest_}",
            f"Digest: {digest_}\nStatus: Downloaded newer image for python:3.11-slim",
            f"FROM python:3.11-slim@{digest_}",
            f'"Id": "{digest_}", "RepoTags": ["acme/api:latest"]',
        )
    )


def base64_image(v: Values) -> str:
    png = "iVBORw0KGgoAAAANSUhEUgAA" + v.chars(B64, v.rng.randint(200, 600)) + "=="
    url = f"data:image/png;base64,{png}"
    return v.pick(
        (
            json.dumps({"type": "image_url", "image_url": {"url": url}}),
            f'<img src="{url}" alt="logo">',
            f"background-image: url({url});",
        )
    )


def minified_js(v: Values) -> str:
    a, b, c = (v.pick("etnrio") + v.pick("abcdefxyz") for _ in range(3))
    return v.pick(
        (
            f'!function({a},{b}){{"object"==typeof exports?module.exports={b}():{a}.{c}={b}()}}'
            f"(this,function(){{return function({a}){{var {b}={{}};return {b}}}}});",
            f"var {a}=Object.defineProperty,{b}=(t,e)=>{{for(var r in e){a}(t,r,{{get:e[r],enumerable:!0}})}};"
            f"{c}.exports={b};",
            f"function {a}({b}){{return {b}&&{b}.__esModule?{b}:{{default:{b}}}}}"
            f'const {c}=/*#__PURE__*/{a}(require("react"));',
            f'const {a}="{v.chars(ALNUM, 8)}",{b}=e=>e.replace(/[^a-z0-9]/gi,"");export{{{a} as k,{b} as t}};',
        )
    )


def lockfile(v: Values) -> str:
    return v.pick(
        (
            f'{{file = "requests-2.32.{v.rng.randint(0, 9)}-py3-none-any.whl", hash = "sha256:{v.chars(HEX, 64)}"}},',
            f"github.com/spf13/cobra v1.8.{v.rng.randint(0, 9)} h1:{v.random_b64(32)}",
            f'checksum = "{v.chars(HEX, 64)}"',
            f"urllib3==2.2.{v.rng.randint(0, 9)} \\\n    --hash=sha256:{v.chars(HEX, 64)}",
            f'  hashes = [\n    "h1:{v.random_b64(32)}",\n    "zh:{v.chars(HEX, 64)}",\n  ]',
            f'resolved "https://registry.yarnpkg.com/ms/-/ms-2.1.{v.rng.randint(0, 9)}.tgz#{v.chars(HEX, 40)}"',
        )
    )


def placeholder(v: Values) -> str:
    return v.pick(
        (
            "password: your-password-here",
            "DB_PASSWORD=<password>",
            '# example only, change me\npassword = "changeme"',
            "api_key: YOUR_API_KEY",
            "export OPENAI_API_KEY=<your-api-key>",
            "token: <your-token>",
            'secret: "********"',
            "PASSWORD=xxxxxxxx",
            "password: REPLACE_ME",
            'client_secret = "<client-secret>"',
            "Authorization: Bearer <token>",
            "postgresql://<user>:<password>@<host>:5432/<db>",
            "postgres://USER:PASSWORD@HOST:5432/DB",
            "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "STRIPE_SECRET_KEY=sk_test_...",
            "aws_secret_access_key = YOUR_SECRET_ACCESS_KEY",
        )
    ) + v.pick(("", "\n", "  # see docs/setup.md"))


def env_reference(v: Values) -> str:
    return v.pick(
        (
            "password: ${DB_PASSWORD}",
            "PGPASSWORD=$DB_PASS psql -h db -U app",
            '"token": "${{ secrets.GH_TOKEN }}"',
            'api_key = os.environ["OPENAI_API_KEY"]',
            "const key = process.env.STRIPE_SECRET_KEY;",
            "set API_KEY=%API_KEY%",
            "$env:API_KEY = $env:FALLBACK_KEY",
            "valueFrom:\n  secretKeyRef:\n    name: app-db\n    key: password",
            'mysql -u app -p"$MYSQL_PASSWORD" app',
            'curl -u "$USER:$TOKEN" https://ci.example/api',
            "password: '{{ vault_db_password }}'",
            "client_secret: !env CLIENT_SECRET",
        )
    ) + v.pick(("", "\n", "  # from the environment"))


def null_value(v: Values) -> str:
    return v.pick(
        (
            "password: null",
            'password: ""',
            "password: ~",
            '"token": null',
            "API_KEY=",
            "secret = None",
            "export AWS_SECRET_ACCESS_KEY=",
            '{"password": "", "user": "app"}',
            "passphrase: false",
        )
    ) + v.pick(("", "\n", " "))


def type_annotation(v: Values) -> str:
    return v.pick(
        (
            "password: str",
            "password: Optional[str] = None",
            "token: string;",
            "private String password;",
            "apiKey?: string",
            "def login(user: str, password: str) -> Session:",
            "password: SecretStr = Field(..., min_length=12)",
            "fn authenticate(token: &str) -> Result<Claims, AuthError>",
            "func NewClient(apiKey string, timeout time.Duration) *Client",
            "secret_key: bytes",
        )
    ) + v.pick(("", "\n", "  # validated upstream"))


def function_name(v: Values) -> str:
    return v.pick(
        (
            "user.get_password()",
            "reset_password_token = make_reset_link(user)",
            "if not verify_token(token): raise Unauthorized()",
            "ids = tokenizer.encode(text)",
            "hasher = PasswordHasher(time_cost=3)",
            "def on_secret_rotated(event): ...",
            "response = client.chat(max_tokens=4096)",
            "print(usage.total_tokens, usage.prompt_tokens)",
            "keyboard.press(Key.enter)",
            "passwordless_login_enabled: true",
        )
    ) + v.pick(("", "\n", "  # ok"))


def test_vector(v: Values) -> str:
    """Published test vectors and documentation example keys, clearly labelled as such."""
    return v.pick(
        (
            "# AWS documentation example credentials\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "RFC 4231 test case 1\nKey  = 0x0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b\nData = 0x4869205468657265",
            "FIPS-197 appendix B test vector: KEY = 2b7e151628aed2a6abf7158809cf4f3c",
            "RFC 7519 example JWT signature: dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "test vector (RFC 6238): secret=12345678901234567890 T=59 TOTP=94287082",
        )
    ) + v.pick(("", "\n", f"  # case {v.rng.randint(1, 40)}"))


def ssh_public_key(v: Values) -> str:
    key = v.pick(
        (
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + v.chars(B64, 43),
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ" + v.chars(B64, 508),
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBB" + v.chars(B64, 90) + "=",
        )
    )
    return v.pick((f"{key} deploy-key", f"gitlab.example.com {key}", f'command="/usr/bin/rrsync" {key} backup'))


def certificate(v: Values) -> str:
    body = "MIID" + v.chars(B64, 700)
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----"


def masked_secret(v: Values) -> str:
    return v.pick(
        (
            "OPENAI_API_KEY=sk-proj-****************************" + v.chars(ALNUM, 4),
            "token: ghp_************************************",
            "AKIA************ (redacted)",
            "Authorization: Bearer [REDACTED]",
            "password: ********",
            "token=[FILTERED]&user=app",
            "xoxb-***-***-****",
            f"api_key: ...{v.chars(ALNUM, 4)}",
        )
    ) + v.pick(("", "\n", "  # masked by the CLI"))


def api_object_id(v: Values) -> str:
    return v.pick(
        (
            json.dumps({"id": "chatcmpl-" + v.chars(ALNUM, 29), "object": "chat.completion", "created": 1793000000}),
            json.dumps({"id": "call_" + v.chars(ALNUM, 24), "type": "function"}),
            json.dumps({"id": "msg_01" + v.chars(ALNUM, 22), "type": "message", "role": "assistant"}),
            json.dumps({"type": "tool_use", "id": "toolu_01" + v.chars(ALNUM, 22), "name": "bash"}),
            f"request-id: req_011C{v.chars(ALNUM, 18)}",
            json.dumps({"id": "resp_" + v.chars(HEX, 48), "status": "completed"}),
        )
    )


def trace_id(v: Values) -> str:
    return v.pick(
        (
            f"traceparent: 00-{v.chars(HEX, 32)}-{v.chars(HEX, 16)}-01",
            f"x-request-id: {v.chars(HEX, 32)}",
            f"X-Amzn-Trace-Id: Root=1-{v.chars(HEX, 8)}-{v.chars(HEX, 24)}",
            json.dumps({"span_id": v.chars(HEX, 16), "trace_id": v.chars(HEX, 32)}),
            f"Sentry event {v.chars(HEX, 32)} captured",
        )
    )


def version_string(v: Values) -> str:
    n = v.rng.randint(0, 30)
    return v.pick(
        (
            f"numpy==2.{n}.1",
            f"npm install lodash@4.17.{n}",
            f"node-v20.{n}.1-linux-x64.tar.xz",
            f"assets/logo@2x.png?v={v.chars(HEX, 8)}",
            f"Successfully installed pydantic-2.{n}.4 pydantic-core-2.{n}.1",
            f"go: downloading golang.org/x/crypto v0.{n}.0",
        )
    )


def build_artifact(v: Values) -> str:
    return v.pick(
        (
            f"static/js/main.{v.chars(HEX, 8)}.chunk.js",
            f'<div class="css-{v.chars(LOWER_ALNUM, 7)} e1{v.chars(LOWER_ALNUM, 5)}0">',
            f"color: #{v.chars(HEX, 6)}; background: #{v.chars(HEX, 6)};",
            f"pod/api-{v.chars(HEX, 9)}-{v.chars(LOWER_ALNUM, 5)} 1/1 Running 0 3h",
            f"oid sha256:{v.chars(HEX, 64)}\nsize {v.rng.randint(1000, 99999999)}",
            f'"ETag": "\\"{v.chars(HEX, 32)}\\""',
            f"arn:aws:iam::{v.digits(12)}:role/ci-deploy",
        )
    )


def fingerprint(v: Values) -> str:
    return v.pick(
        (
            f"ether {':'.join(v.chars(HEX, 2) for _ in range(6))}  txqueuelen 1000",
            f"256 SHA256:{v.random_b64(32, pad=False)} deploy-key (ED25519)",
            f"Key fingerprint = {' '.join(v.chars('0123456789ABCDEF', 4) for _ in range(10))}",
            f"MD5:{':'.join(v.chars(HEX, 2) for _ in range(16))}",
        )
    )


def public_jwk(v: Values) -> str:
    jwk = {
        "kty": "RSA",
        "use": "sig",
        "kid": v.chars(B64URL, 20),
        "alg": "RS256",
        "e": "AQAB",
        "n": v.random_b64(256, url=True, pad=False),
    }
    return json.dumps({"keys": [jwk]}, indent=v.pick((None, 2)))


def code_identifier(v: Values) -> str:
    return v.pick(
        (
            "api_key = settings.OPENAI_API_KEY",
            'token = request.headers.get("Authorization")',
            'secret = get_secret("db/password")',
            'password = form.cleaned_data["password"]',
            "client = Client(client_secret=client_secret, timeout=30)",
            "self.token = token",
            "const apiKey = useApiKey();",
            "password=self.password_field.text(),",
            'SECRET_KEY = env.str("DJANGO_SECRET_KEY")',
            "access_key = credentials.access_key",
        )
    ) + v.pick(("", "\n", "  # noqa"))


def four_part_version(v: Values) -> str:
    return v.pick(
        (
            f"Visual C++ 2015-2022 Redistributable 14.{v.rng.randint(30, 44)}.{v.rng.randint(30000, 34999)}.0",
            f"FileVersion: 10.0.{v.rng.randint(19041, 26100)}.{v.rng.randint(1, 5000)}",
            f"Chrome/131.0.{v.rng.randint(6000, 6999)}.{v.rng.randint(10, 200)} Safari/537.36",
        )
    )


def prose_about_secrets(v: Values) -> str:
    return v.pick(
        (
            "Never commit your API key; store it in the secret manager and rotate it every 90 days.",
            "The password must be at least 12 characters and contain a digit.",
            "Set the token in your environment before running the tests.",
            "If the secret leaks, revoke it immediately and open an incident.",
            "Tokens are hashed with argon2id before storage.",
            "Your session token expires after 30 minutes of inactivity.",
        )
    ) + v.pick(("", "\n", " See the security guide."))


def benign_config(v: Values) -> str:
    """Settings whose names mention passwords, tokens or keys but whose values are not secrets."""
    return v.pick(
        (
            f"password_min_length: {v.rng.randint(8, 16)}",
            f"token_ttl_seconds: {v.pick((900, 3600, 86400))}",
            "secret_name: app-db-credentials",
            "api_key_header: X-API-Key",
            "auth_method: oauth2",
            "key_file: /etc/ssl/private/server.key",
            "password_file: /run/secrets/db_password",
            "tokenizer: cl100k_base",
            f"max_tokens = {v.pick((1024, 4096, 8192))}",
            'primary_key = "id"',
            'PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]',
            "keyring_backend: secretservice",
            "SECRET_KEY_FALLBACKS = []",
        )
    ) + v.pick(("", "\n", "\nlog_level: info"))


def benign_base64(v: Values) -> str:
    """Base64 of harmless files, as agents move files around: a decoding redactor must leave them."""
    content = v.pick(
        (
            f"APP_ENV=production\nLOG_LEVEL=info\nPORT={v.rng.randint(3000, 9000)}\n",
            f"# Notes\n\nRelease {v.rng.randint(1, 9)}.{v.rng.randint(0, 20)} ships the new exporter.\n",
            f'[tool.pytest.ini_options]\ntestpaths = ["tests"]\ntimeout = {v.rng.randint(60, 900)}\n',
            f"name,count\nalpha,{v.rng.randint(1, 999)}\nbeta,{v.rng.randint(1, 999)}\n",
        )
    )
    encoded = v.b64(content.encode())
    gzipped = "H4sIAAAAAAAAA" + v.random_b64(v.rng.randint(60, 240))  # a gzip stream: binary once decoded
    return v.pick(
        (
            f"echo '{encoded}' | base64 -d > notes.txt",
            f"echo '{gzipped}' | base64 -d | gunzip > report.csv",
            json.dumps({"type": "image_url", "image_url": {"url": f"data:text/plain;base64,{encoded}"}}),
            f"data:\n  config: {encoded}",
        )
    )


def benign_query(v: Values) -> str:
    return v.pick(
        (
            f"GET /api/v2/search?q=password+reset+flow&page={v.rng.randint(1, 9)}&sort=desc HTTP/1.1",
            f"https://docs.example.com/search?query=rotate%20api%20key&lang=en&v={v.rng.randint(1, 99)}",
            f"curl 'https://api.example.com/v1/items?limit={v.rng.randint(10, 100)}&fields=id%2Cname%2Ctoken_count'",
        )
    )


def secret_pattern_source(v: Values) -> str:
    """Detector source and scanner configs: patterns that describe secrets without holding one."""
    return v.pick(
        (
            'AWS_KEY = re.compile(r"(?:AKIA|ASIA)[A-Z2-7]{16}")',
            "regex = 'ghp_[A-Za-z0-9]{36}'",
            '  - id: slack-bot-token\n    regex: "xoxb-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{24}"',
            "const STRIPE = /sk_(live|test)_[0-9a-zA-Z]{24,99}/;",
            '[[rules]]\nid = "generic-api-key"\nkeywords = ["api_key", "secret", "token"]',
            'if token.startswith(("glpat-", "gldt-")) and len(token) >= 26:',
            'PRIVATE_KEY_HEADER = "-----BEGIN RSA PRIVATE KEY-----"',
        )
    ) + v.pick(("", "\n", f"  # rule {v.rng.randint(1, 200)}"))


NEGATIVES: dict[str, tuple[Negative, int]] = {
    "git-sha": (git_sha, 25),
    "digest": (digest, 25),
    "uuid": (uuid, 20),
    "integrity-hash": (integrity, 20),
    "docker-digest": (docker_digest, 20),
    "base64-image": (base64_image, 20),
    "minified-js": (minified_js, 20),
    "lockfile-line": (lockfile, 25),
    "placeholder": (placeholder, 30),
    "env-reference": (env_reference, 30),
    "null-value": (null_value, 20),
    "type-annotation": (type_annotation, 20),
    "function-name": (function_name, 20),
    "test-vector": (test_vector, 15),
    "ssh-public-key": (ssh_public_key, 20),
    "certificate": (certificate, 12),
    "masked-secret": (masked_secret, 20),
    "api-object-id": (api_object_id, 20),
    "trace-id": (trace_id, 20),
    "version-string": (version_string, 20),
    "build-artifact": (build_artifact, 20),
    "fingerprint": (fingerprint, 20),
    "public-jwk": (public_jwk, 12),
    "code-identifier": (code_identifier, 25),
    "four-part-version": (four_part_version, 10),
    "prose-about-secrets": (prose_about_secrets, 15),
    "benign-config": (benign_config, 25),
    "benign-base64": (benign_base64, 20),
    "benign-query": (benign_query, 15),
    "secret-pattern-source": (secret_pattern_source, 15),
}
