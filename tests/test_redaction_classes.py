"""Issue #9, one test per class of credential the redactor used to miss (each fails on rule set 1.0)."""

import base64
import json
from urllib.parse import quote

import polars as pl
import pytest

from tracedrop.pipelines.redaction import Redactor

PEM_LINES = [
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
    "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo",
    "9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ0iT9wCS0DRTXu269V264Vf/3jvre",
]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(key=b"classes-key")


def redact(redactor: Redactor, *texts: str, sessions: list[str] | None = None) -> list[str]:
    scope = None if sessions is None else pl.Series(sessions)
    return redactor.redact(pl.Series(list(texts), dtype=pl.String), scope).texts.to_list()


def test_password_forms(redactor: Redactor) -> None:
    samples = {
        "CREATE USER 'app'@'%' IDENTIFIED BY 'Tr0ub4dor&3x';": "Tr0ub4dor&3x",
        "pg_dump --username app --password S3cure!pass db": "S3cure!pass",
        "gpg --batch --passphrase h0rse-Battery9 -d secrets.gpg": "h0rse-Battery9",
        "openssl pkcs12 -in cert.p12 -passin pass:Exp0rt!Key -nodes": "Exp0rt!Key",
        "mysql -u root -pW1ll0wm3ad0w db": "W1ll0wm3ad0w",
        "curl -u deploy:qu4rtz-Thistle https://nexus.internal/x": "qu4rtz-Thistle",
        "PGPASSWORD=c0balt-Summit7 psql -h db -U app": "c0balt-Summit7",
        "Server login ID/PW: admin/Ad1n!2024x": "Ad1n!2024x",
        "user:ops,pwd:Lant3rn#42": "Lant3rn#42",
        "Passwort: Kennw0rt!Sicher": "Kennw0rt!Sicher",
        'val password: String = "K0tl1nS3cret"': "K0tl1nS3cret",
        '#define WIFI_PASS "ZhJ14O*NiykyIGO0"': "ZhJ14O*NiykyIGO0",
        "database:\n  password: y4ml-Pass99\n": "y4ml-Pass99",
    }
    for text, out in zip(samples, redact(redactor, *samples), strict=True):
        assert samples[text] not in out, out
        assert "<REDACTED:" in out


def test_key_secret_token_values_in_any_syntax_and_case(redactor: Redactor) -> None:
    samples = {
        "SECRET KEY: 9f8Kq2LmX7pR4tVz1NcB": "9f8Kq2LmX7pR4tVz1NcB",
        "Activation key : 7K3QF-9XJ2M-R8WPL-4TZQN": "7K3QF-9XJ2M-R8WPL-4TZQN",
        "Authorization: NTLM TlRMTVNTUAADAAAAGAAYAEAAAAA": "TlRMTVNTUAADAAAAGAAYAEAAAAA",
        "byte[] secretKey = new byte[] {0x35, 0x2f, 0x11, 0x9a, 0xc4, 0x07, 0x5e, 0xb1};": "0x35, 0x2f",
        "ApiToken = 'q8W3nZ5tL1xR7vB2mK9d'": "q8W3nZ5tL1xR7vB2mK9d",
    }
    for text, out in zip(samples, redact(redactor, *samples), strict=True):
        assert samples[text] not in out, out
    # the lenient scan's prefilter is case-insensitive like the patterns: nothing slips past the redactor
    texts = pl.Series(["aUtHoRiZaTiOn: BeArEr Xk9mP2vLq8Rt5Wn3"])
    assert redactor.scan(redactor.redact(texts).texts, strict=True).is_empty()


VENDOR_TOKENS = [
    "NRAK-" + "A1B2C3D4E5F6G7H8J9K0L1M2N3P",
    "ATATT3xFfGF0" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gJ3lN5pR7tV9xZ1bD3fH5" + "=9A8B7C6D",
    "dckr_pat_" + "Ab3De5Gh7Jk9Mn1Pq3St5Vw7Yz9",
    "hvs." + "CAESIJ3kL5mN7pQ9rS1tU3vW5xY7zA9bC1dE3fG5",
    "ya29." + "a0AfH6SMBx3kL5mN7pQ9rS1tU3vW5xY7zA9bC1dE3f",
    "1//0" + "gK3kL5mN7pQ9rS1tU3vW5xY7zA9bC1dE3fG5hJ7",
    "xapp-1-A0123456789-1234567890123-" + "ab12cd34ef56ab12cd34ef56ab12cd34",
    "glrt-" + "Ab3De5Gh7Jk9Mn1Pq3St5",
    "ghs_" + "Ab3De5Gh7Jk9Mn1Pq3St5Vw7Yz9Ab3De5Gh7Jk9_Ab3De5Gh7Jk9Mn1Pq3St5",
    "pk_live_" + "51Hb3De5Gh7Jk9Mn1Pq3St5",
    "sk_test_" + "51Hb3De5Gh7Jk9Mn1Pq3St5",
    "phc_" + "Ab3De5Gh7Jk9Mn1Pq3St5Vw7Yz9Ab3De5Gh7Jk9Mn1Pq",
    "00D5g000004QxyZ!AQ4AQ" + "b3De5Gh7Jk9Mn1Pq3St5Vw7Yz9Ab3De5Gh7Jk9Mn1Pq3St5" * 2,
    "ops_eyJ" + "zaWduSW5BZGRyZXNzIjoibXkuMXBhc3N3b3JkLmNvbSIsInVzZXJBdXRoIjp7Im1ldGhvZCI6IlNSUGctNDA5NiJ9",
    "akab-" + "zrjiunx4oi9vdpo4-gs68f52uj5doxlz6",
]


def test_vendor_formats(redactor: Redactor) -> None:
    texts = [f"see {token} in the logs" for token in VENDOR_TOKENS]
    for token, out in zip(VENDOR_TOKENS, redact(redactor, *texts), strict=True):
        assert token not in out, out


def test_private_key_bodies_behind_prefixes_and_truncated_keys(redactor: Redactor) -> None:
    logged = "\n".join(f"2026-11-02T10:14:0{i}Z build[{i}]: {line}" for i, line in enumerate(PEM_LINES))
    concatenated = "key = (\n" + "\n".join(f'    "{line}\\n"' for line in PEM_LINES) + "\n)"
    pgp = "# -----BEGIN PGP PRIVATE KEY BLOCK-----\n#\n" + "\n".join(f"# {line}" for line in PEM_LINES)
    escaped = json.dumps({"log": "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(PEM_LINES)})
    truncated = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(PEM_LINES[:2]) + "\n\nThe build failed on step 3."
    outs = redact(redactor, logged, concatenated, pgp, escaped, truncated)
    for out in outs:
        assert not any(line in out or line[:32] in out for line in PEM_LINES), out
    assert outs[4].endswith("\n\nThe build failed on step 3.")
    assert json.loads(outs[3])["log"].startswith("<REDACTED:private-key>")


def test_every_occurrence_of_a_found_value(redactor: Redactor) -> None:
    first = 'DB_PASSWORD="h0rse-Battery9"'
    later = "connecting with h0rse-Battery9 as app; GET /login?u=app&next=h0rse-Battery9"
    (same_text,) = redact(redactor, first + "\n" + later)
    assert "h0rse-Battery9" not in same_text
    across = redact(redactor, first, later, later, sessions=["s1", "s1", "s2"])
    assert "h0rse-Battery9" not in across[1]
    assert across[2] == later  # another session keeps its text


def test_encoded_secrets(redactor: Redactor) -> None:
    url = "GET /search?q=" + quote('{"password": "Tr0ub4dor&3x"}', safe="") + "&limit=20"
    env_file = b"APP_ENV=prod\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9pLmT2kX\n"
    dotenv = base64.b64encode(env_file).decode()
    body = json.dumps({"image_url": {"url": f"data:application/octet-stream;base64,{dotenv}"}})
    unicode = '{"content": "config \\u0022api_key\\u0022: \\u0022q8W3nZ5tL1xR7vB2mK9dF4hJ\\u0022"}'
    outs = redact(redactor, url, f"echo '{dotenv}' | base64 -d > .env", body, unicode)
    assert "Tr0ub4dor" not in outs[0] and "Tr0ub4dor" not in quote(outs[0])
    assert dotenv not in outs[1] and dotenv not in outs[2]
    assert "<REDACTED:encoded-secret>" in outs[2] and json.loads(outs[2])
    assert "q8W3nZ5tL1xR7vB2mK9dF4hJ" not in outs[3]


def test_home_directories_outside_home_and_non_ascii_names(redactor: Redactor) -> None:
    paths = ["/mnt/c/Users/oliver.b/.ssh", "/var/home/maria/x", "/Volumes/Macintosh HD/Users/hwang/p", "/home/jürgen/x"]
    for name, out in zip(["oliver.b", "maria", "hwang", "jürgen"], redact(redactor, *paths), strict=True):
        assert name not in out and "<USER:" in out
        assert "ürgen" not in out


def test_secret_cut_at_the_end_of_a_text(redactor: Redactor) -> None:
    out = redact(redactor, "token output: ...ghp_abc", "please cc sofia_r46@ou", 'client("ACx", "48181801cd3033139ac')
    assert out[0].endswith("<REDACTED:truncated-secret>")
    assert "sofia_r46" not in out[1]
    assert "48181801cd3033139ac" not in out[2]


def test_authors_authorities_and_paths_are_not_assigned_secrets(redactor: Redactor) -> None:
    texts = [
        "__author__ = 'tibell@example.org (Johan Tibell)'",
        '"AWS::ACMPCA::CertificateAuthority": "9fcfa92780965940",',
        '"AWS::EC2::EnclaveCertificateIamRoleAssociation": "dc84a895188dd6d1",',
        "let client = SecretsManager::ResourcePolicy::new(cfg);",
    ]
    assert redact(redactor, *texts)[2:] == texts[2:]
    assert redact(redactor, *texts)[1] == texts[1]
    assert "generic-secret" not in redact(redactor, *texts)[0]
    assert "<REDACTED:" in redact(redactor, 'Authorization = "Xk9mP2vLq8Rt5Wn3Zp7c"')[0]
