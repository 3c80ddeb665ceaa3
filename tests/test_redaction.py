"""The redactor: labelled corpus, placeholders, stamping, JSON safety, sessions, leak scan."""

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from tracedrop.pipelines.redaction import REDACTOR_VERSION, Redactor, RuleSetError, load_default_rules, load_rules

CORPUS = Path(__file__).parent / "redaction_corpus"
POSITIVES = [json.loads(line) for line in (CORPUS / "positives.jsonl").read_text().splitlines()]
NEGATIVES = [json.loads(line) for line in (CORPUS / "negatives.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(rules=load_default_rules(), key=b"partner-salt")


def redact_one(redactor: Redactor, text: str) -> str:
    return redactor.redact(pl.Series([text])).texts[0]


def as_tool_arguments(text: str) -> str:
    """`text` inside doubly-encoded JSON, as in a tool call's `arguments`."""
    call = {"id": "call_1", "function": {"name": "write", "arguments": json.dumps({"content": text})}}
    return json.dumps({"messages": [{"role": "assistant", "tool_calls": [call]}]})


def from_tool_arguments(body: str) -> str:
    return json.loads(json.loads(body)["messages"][0]["tool_calls"][0]["function"]["arguments"])["content"]


@pytest.mark.parametrize("item", POSITIVES, ids=[f"{p['rule']}-{i}" for i, p in enumerate(POSITIVES)])
def test_every_labelled_secret_is_replaced_by_its_rule_placeholder(redactor: Redactor, item: dict) -> None:
    for wrap, unwrap in [
        (lambda t: t, lambda t: t),
        (json.dumps, json.loads),
        (as_tool_arguments, from_tool_arguments),
    ]:
        result = redactor.redact(pl.Series([wrap(item["text"])]))
        out = unwrap(result.texts[0])
        assert item["secret"] not in out
        assert item["rule"] in {entry["type"] for entry in result.counts[0]}


@pytest.mark.parametrize("item", NEGATIVES, ids=[f"{n['trap']}-{i}" for i, n in enumerate(NEGATIVES)])
def test_hard_negatives_pass_through_unchanged(redactor: Redactor, item: dict) -> None:
    for text in (item["text"], json.dumps(item["text"]), as_tool_arguments(item["text"])):
        result = redactor.redact(pl.Series([text]))
        assert result.texts[0] == text
        assert result.counts.to_list() == [[]]


def test_placeholders_keep_surrounding_quotes_and_delimiters(redactor: Redactor) -> None:
    text = 'OPENAI_API_KEY="sk-proj-' + "a1B2" * 12 + "\"; mail 'bob@example.com', [10.1.2.3]"
    assert redact_one(redactor, text) == (
        "OPENAI_API_KEY=\"<REDACTED:openai-key>\"; mail '<REDACTED:email>', [<REDACTED:ipv4>]"
    )


def test_private_key_inside_json_keeps_escapes_intact(redactor: Redactor) -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow" + "A" * 60 + "\nQ2xhdWRl\n-----END RSA PRIVATE KEY-----"
    body = json.dumps({"content": f'key:\n{pem}\n"done"'})
    assert json.loads(redact_one(redactor, body)) == {"content": 'key:\n<REDACTED:private-key>\n"done"'}


def test_truncated_private_key_is_redacted_to_the_end(redactor: Redactor) -> None:
    text = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\nAAAAAAAAAAEAAAAzAAAAC3Nz"
    assert redact_one(redactor, text) == "<REDACTED:private-key>"


def test_home_user_is_a_keyed_hash_consistent_across_path_styles_and_rows(redactor: Redactor) -> None:
    out = redactor.redact(pl.Series(["/home/alice/x", "C:\\Users\\alice\\y", "/Users/alice"])).texts.to_list()
    tags = {text.split("<")[1].split(">")[0] for text in out}
    assert len(tags) == 1 and tags.pop().startswith("USER:")
    assert not any("alice" in text for text in out)
    other_key = Redactor(key=b"another-partner").redact(pl.Series(["/home/alice/x"])).texts[0]
    assert other_key != out[0]


def test_user_name_is_replaced_bare_within_its_session_only(redactor: Redactor) -> None:
    texts = pl.Series(["cwd /home/alice/app", "alice@laptop:~$ whoami\nalice", "alice@laptop:~$"])
    out = redactor.redact(texts, sessions=pl.Series(["s1", "s1", "s2"])).texts.to_list()
    placeholder = out[0].removeprefix("cwd /home/").removesuffix("/app")
    assert out[1] == f"{placeholder}@laptop:~$ whoami\n{placeholder}"
    assert out[2] == "alice@laptop:~$"


def test_git_remote_spellings_hash_alike_and_hide_the_repo(redactor: Redactor) -> None:
    remotes = [
        "git@github.com:acme/payments.git",
        "https://github.com/acme/payments",
        "ssh://git@github.com/acme/payments.git",
    ]
    out = redactor.redact(pl.Series(remotes)).texts.to_list()
    assert len(set(out)) == 1 and out[0].startswith("<GIT_REMOTE:") and "payments" not in out[0]


def test_nulls_pass_through_and_order_is_kept(redactor: Redactor) -> None:
    result = redactor.redact(pl.Series(["a@b.io", None, "plain"]))
    assert result.texts.to_list() == ["<REDACTED:email>", None, "plain"]
    assert result.counts.to_list() == [[{"type": "email", "count": 1}], [], []]


def test_counts_and_totals_per_type(redactor: Redactor) -> None:
    texts = pl.Series(["x@y.io and z@y.io from 8.8.4.4", "AKIA" + "Q" * 16, "nothing"])
    result = redactor.redact(texts)
    assert result.counts.to_list() == [
        [{"type": "email", "count": 2}, {"type": "ipv4", "count": 1}],
        [{"type": "aws-access-key-id", "count": 1}],
        [],
    ]
    assert result.totals == {"aws-access-key-id": 1, "email": 2, "ipv4": 1}
    mapped = result.counts_arrow()
    assert mapped.type == pa.map_(pa.string(), pa.int64())
    assert mapped.to_pylist()[0] == [("email", 2), ("ipv4", 1)]


def test_re_redacting_counts_nothing_new(redactor: Redactor) -> None:
    once = redactor.redact(pl.Series(["token ghp_" + "aB3dE5gH7jK9" * 3]))
    twice = redactor.redact(once.texts)
    assert twice.texts.equals(once.texts)
    assert twice.counts.to_list() == [[]] and twice.totals == {}


def test_version_is_semver_plus_rule_set_hash(redactor: Redactor) -> None:
    semver, rule_hash = redactor.version.split("+")
    assert semver == load_default_rules().version and len(rule_hash) == 12
    assert redactor.version == REDACTOR_VERSION
    assert rule_hash == load_default_rules().hash[:12]


def test_editing_the_rule_set_changes_the_version(tmp_path: Path) -> None:
    edited = tmp_path / "rules.yaml"
    edited.write_text((CORPUS.parent.parent / "pipelines/redaction/rules.yaml").read_text() + "\n# tweak\n")
    assert load_rules(edited).redactor_version != REDACTOR_VERSION


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("version: 1\nrules: []", "semver"),
        ("version: 1.0.0\nrules:\n  - {id: Bad_Id, pattern: '(?P<secret>x)'}", "kebab-case"),
        ("version: 1.0.0\nrules:\n  - {id: a, pattern: '(?P<secret>x'}", "does not compile"),
        ("version: 1.0.0\nrules:\n  - {id: a, pattern: 'x'}", "must name `secret`"),
        ("version: 1.0.0\nrules:\n  - {id: a, pattern: '(?P<secret>x)', resolver: nope}", "unknown resolver"),
    ],
)
def test_malformed_rule_sets_are_rejected_with_the_reason(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(body)
    with pytest.raises(RuleSetError, match=message):
        load_rules(path)


def test_key_is_required() -> None:
    with pytest.raises(ValueError, match="key"):
        Redactor(key=b"")


def test_strict_scan_finds_leaks_and_ignores_placeholders(redactor: Redactor) -> None:
    texts = pl.Series(
        [
            "see ghp_" + "aB3dE5gH7jK9" * 3 + " used",
            "<REDACTED:github-token> <USER:0123abcd> <GIT_REMOTE:0123456789ab>",
            r"cd \/home\/alice",
            "-H BeArEr Xk9mP2vLq8Rt5Wn3",
        ]
    )
    hits = redactor.scan(texts, strict=True)
    assert hits.select("row", "rule_id").unique(maintain_order=True).rows() == [
        (0, "github-token"),
        (2, "home-user"),
        (3, "bearer-token"),
    ]
    snippets = "".join(hits["snippet"])
    assert "aB3dE5gH7jK9" not in snippets and "alice" not in snippets and "Xk9m" not in snippets


def test_lenient_scan_prefilters_case_insensitively_like_the_patterns(redactor: Redactor) -> None:
    texts = pl.Series(["-H BeArEr Xk9mP2vLq8Rt5Wn3", "Authorization: BASIC dXNlcjpwYXNzd29yZDEyMw=="])
    assert redactor.scan(texts, strict=False)["row"].to_list() == [0, 1]
    assert redactor.scan(redactor.redact(texts).texts, strict=True).is_empty()


def test_strict_scan_of_redacted_corpus_is_clean(redactor: Redactor) -> None:
    texts = pl.Series([item["text"] for item in POSITIVES] + [json.dumps(item["text"]) for item in POSITIVES])
    assert redactor.scan(redactor.redact(texts).texts, strict=True).is_empty()
