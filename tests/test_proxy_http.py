"""The proxy over real HTTP, driven by the official openai SDK, against stub upstreams (CONTRACT.md §5)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import yaml
from openai import AsyncOpenAI, OpenAI

from tracedrop.replay.proxy.app import ProxySettings, create_app
from tracedrop.replay.proxy.server import ServerThread
from tracedrop.replay.proxy.stub_upstream import StubSettings, StubUpstream, reply_for
from tracedrop.replay.proxy.telemetry import TelemetryLimits
from tracedrop.schemas.bucketing import choose_variant
from tracedrop.schemas.landing import (
    EXPERIMENT_REQUESTS,
    MODEL_EXPERIMENT,
    MODEL_EXPERIMENT_VARIANT,
    MODEL_EXPERIMENT_VARIANT_VERSION,
    PROMPTS_PREFIX,
    RESPONSES_PREFIX,
    USAGE,
)
from tracedrop.schemas.proxy_config import ProxyConfig
from tracedrop.schemas.reader import read_all
from tracedrop.storage.objectstore import open_store

PUBLIC = "preview/acme-coder"
EXPERIMENT_ID = "3f1c2a9e-8b7d-4c6e-9a1b-2d3e4f5a6b7c"
CONTROL_ID = "11111111-1111-4111-8111-111111111111"
TREATMENT_ID = "22222222-2222-4222-8222-222222222222"
CONTROL_V1 = "0a000000-0000-4000-8000-000000000001"
TREATMENT_V1 = "0b000000-0000-4000-8000-000000000001"
TREATMENT_V2 = "0b000000-0000-4000-8000-000000000002"
KEYS = {"ACME_KEY_A": "sk-acme-secret-aaaa", "ACME_KEY_B": "sk-acme-secret-bbbb", "ROUTE_KEY": "sk-route-cccc"}
USER_TOKEN = "test"  # sha256 is the configured client's token_sha256
USER_ID = "user-1"
CHECKPOINT = {CONTROL_ID: "acme-rc1", TREATMENT_ID: "acme-rc2"}


@dataclass
class Stub:
    upstream: StubUpstream
    server: ServerThread

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, Stub]]:
    """Three stub upstreams: a and b for the experiment, slow (streams slowly) for routes."""
    made = {
        "a": StubUpstream(),
        "b": StubUpstream(),
        "slow": StubUpstream(StubSettings(chunk_delay_ms=100)),
    }
    servers = {name: ServerThread(stub.app()).start() for name, stub in made.items()}
    yield {name: Stub(made[name], servers[name]) for name in made}
    for server in servers.values():
        server.stop()


def upstream(stub: Stub, internal_id: str, key_env: str, **extra: Any) -> dict[str, Any]:
    return {"base_url": stub.base_url, "internal_id": internal_id, "api_key_env": key_env, **extra}


def config_for(stubs: dict[str, Stub], *, status: str = "active", treatment_versions: list | None = None) -> dict:
    """Control (weight 1, stub a) vs treatment (weight 3, stub b), two routes and a draft experiment."""
    treatment_versions = treatment_versions or [
        {
            "id": TREATMENT_V1,
            "effective_at": "2026-01-01T00:00:00Z",
            "upstream": upstream(
                stubs["b"], "acme-rc2", "ACME_KEY_B", extra_body={"temperature": 0.2}, remove_from_body=["logit_bias"]
            ),
        }
    ]
    return {
        "trust_forwarded_for": False,
        "clients": [{"token_sha256": hashlib.sha256(USER_TOKEN.encode()).hexdigest(), "user_id": USER_ID}],
        "routes": [
            {"model": "Candidate-A", "upstream": upstream(stubs["a"], "acme-rc7", "ROUTE_KEY")},
            {"model": "slow-model", "upstream": upstream(stubs["slow"], "acme-slow", "ROUTE_KEY")},
        ],
        "experiments": [
            {
                "id": EXPERIMENT_ID,
                "public_model_id": PUBLIC,
                "status": status,
                "variants": [
                    {
                        "id": TREATMENT_ID,
                        "label": "trt-variant-label",
                        "weight": 3,
                        "versions": treatment_versions,
                    },
                    {
                        "id": CONTROL_ID,
                        "label": "ctl-variant-label",
                        "weight": 1,
                        "versions": [
                            {
                                "id": CONTROL_V1,
                                "effective_at": "2026-01-01T00:00:00Z",
                                "upstream": upstream(stubs["a"], "acme-rc1", "ACME_KEY_A"),
                            }
                        ],
                    },
                ],
            },
            {
                "id": "99999999-9999-4999-8999-999999999999",
                "public_model_id": "preview/draft-model",
                "status": "draft",
                "variants": [
                    {
                        "id": "99999999-0000-4000-8000-000000000000",
                        "label": "only",
                        "weight": 1,
                        "versions": [
                            {
                                "id": "99999999-0000-4000-8000-000000000001",
                                "effective_at": "2026-01-01T00:00:00Z",
                                "upstream": upstream(stubs["a"], "draft-rc", "ACME_KEY_A"),
                            }
                        ],
                    }
                ],
            },
        ],
    }


@dataclass
class RunningProxy:
    server: ServerThread
    config_path: Path
    landing: str

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def client(self, token: str = USER_TOKEN, **headers: str) -> OpenAI:
        return OpenAI(base_url=self.base_url, api_key=token, default_headers=headers, max_retries=0)

    def async_client(self, token: str = USER_TOKEN, **headers: str) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.base_url, api_key=token, default_headers=headers, max_retries=0)

    def rewrite(self, config: dict) -> None:
        self.config_path.write_text(yaml.safe_dump(config))


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[..., RunningProxy]]:
    """Start a proxy on a config dict; it is stopped (and its telemetry flushed) at teardown."""
    running: list[RunningProxy] = []

    def start(config: dict, landing: str | None = None, **settings: Any) -> RunningProxy:
        path = tmp_path / f"proxy-{len(running)}.yaml"
        path.write_text(yaml.safe_dump(config))
        landing = landing or str(tmp_path / "landing")
        app = create_app(path, landing, ProxySettings(**settings), env=KEYS)
        proxy = RunningProxy(ServerThread(app).start(), path, landing)
        running.append(proxy)
        return proxy

    yield start
    for proxy in running:
        proxy.server.stop()


def expected_checkpoint(config: dict, kind: str, value: str) -> str:
    variants = ProxyConfig.model_validate(config).experiments[0].variants
    return CHECKPOINT[str(choose_variant(EXPERIMENT_ID, kind, value, variants).id)]


def ask(client: OpenAI, prompt: str, model: str = PUBLIC, **extra: Any) -> str:
    response = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], **extra)
    assert response.model == model
    return response.choices[0].message.content or ""


# --- routing ------------------------------------------------------------------------------------


def test_sync_json_goes_to_the_users_variant_with_its_key_and_transforms(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    config = config_for(stubs)
    proxy = start_proxy(config)
    checkpoint = expected_checkpoint(config, "user", USER_ID)
    answer = ask(proxy.client(), "hello world", logit_bias={"42": 1})
    assert answer == reply_for(checkpoint, "hello world")
    stub = stubs["b"] if checkpoint == "acme-rc2" else stubs["a"]
    seen = stub.upstream.received[-1]
    assert seen["model"] == checkpoint
    expected_key = KEYS["ACME_KEY_B"] if checkpoint == "acme-rc2" else KEYS["ACME_KEY_A"]
    assert seen["headers"]["authorization"] == f"Bearer {expected_key}"
    if checkpoint == "acme-rc2":
        assert seen["body"]["temperature"] == 0.2 and "logit_bias" not in seen["body"]


def test_async_streaming_is_passed_through_with_the_public_model_in_every_chunk(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    config = config_for(stubs)
    proxy = start_proxy(config)

    async def run() -> list[Any]:
        async with proxy.async_client("anonymous-token", **{"X-KiloCode-MachineId": "machine-7"}) as client:
            stream = await client.chat.completions.create(
                model=PUBLIC, messages=[{"role": "user", "content": "stream me"}], stream=True
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    assert len(chunks) > 3
    assert {chunk.model for chunk in chunks} == {PUBLIC}
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == reply_for(expected_checkpoint(config, "machine", "machine-7"), "stream me")


def test_sync_streaming_and_async_json_work_too(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    proxy = start_proxy(config_for(stubs))
    stream = proxy.client().chat.completions.create(
        model=PUBLIC, messages=[{"role": "user", "content": "s"}], stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    async def run() -> str:
        async with proxy.async_client() as client:
            response = await client.chat.completions.create(model=PUBLIC, messages=[{"role": "user", "content": "s"}])
        assert response.model == PUBLIC
        return response.choices[0].message.content or ""

    assert asyncio.run(run()) == streamed


def test_subject_precedence_is_user_then_machine_then_ip(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    config = config_for(stubs)
    proxy = start_proxy(config)
    # find machine ids bucketed apart from the user and from the ip, so the winner is visible
    user_side = expected_checkpoint(config, "user", USER_ID)
    ip_side = expected_checkpoint(config, "ip", "127.0.0.1")
    machine = next(f"m-{i}" for i in range(1000) if expected_checkpoint(config, "machine", f"m-{i}") != user_side)
    assert ask(proxy.client(**{"x-kilocode-machineid": machine}), "p") == reply_for(user_side, "p")
    machine = next(f"m-{i}" for i in range(1000) if expected_checkpoint(config, "machine", f"m-{i}") != ip_side)
    anonymous = proxy.client("not-a-known-token", **{"x-kilocode-machineid": machine})
    assert ask(anonymous, "p") == reply_for(expected_checkpoint(config, "machine", machine), "p")
    assert ask(proxy.client("not-a-known-token"), "p") == reply_for(ip_side, "p")


def test_split_follows_the_weights_over_thousands_of_subjects_and_each_is_stable(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    config = config_for(stubs)
    proxy = start_proxy(config)
    subjects = [f"machine-{i}" for i in range(2000)]

    async def run() -> dict[str, str]:
        limit = asyncio.Semaphore(32)
        seen: dict[str, str] = {}

        async def one(client: AsyncOpenAI, machine: str) -> None:
            async with limit:
                response = await client.chat.completions.create(
                    model=PUBLIC,
                    messages=[{"role": "user", "content": "q"}],
                    extra_headers={"x-kilocode-machineid": machine},
                )
            seen[machine] = response.choices[0].message.content or ""

        async with proxy.async_client("anonymous-token") as client:
            await asyncio.gather(*(one(client, m) for m in subjects))
            await asyncio.gather(*(one(client, m) for m in subjects[:50]))  # again: same answers
        return seen

    seen = asyncio.run(run())
    by_checkpoint = {reply_for(c, "q"): c for c in CHECKPOINT.values()}
    served = {m: by_checkpoint[answer] for m, answer in seen.items()}
    assert served == {m: expected_checkpoint(config, "machine", m) for m in subjects}
    treatment_share = sum(c == "acme-rc2" for c in served.values()) / len(subjects)
    assert abs(treatment_share - 0.75) < 0.04  # weights 3:1; binomial sd ≈ 0.01


def test_hot_swap_on_file_change_keeps_the_slot_and_changes_the_version(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    config = config_for(stubs)
    proxy = start_proxy(config, watch_interval=0.05)
    treated = next(f"m-{i}" for i in range(100) if expected_checkpoint(config, "machine", f"m-{i}") == "acme-rc2")
    control = next(f"m-{i}" for i in range(100) if expected_checkpoint(config, "machine", f"m-{i}") == "acme-rc1")
    treated_client = proxy.client("anon", **{"x-kilocode-machineid": treated})
    control_client = proxy.client("anon", **{"x-kilocode-machineid": control})
    assert ask(treated_client, "x") == reply_for("acme-rc2", "x")
    swapped = config_for(stubs)
    swapped["experiments"][0]["variants"][0]["versions"].append(
        {
            "id": TREATMENT_V2,
            "effective_at": "2026-02-01T00:00:00Z",
            "upstream": upstream(stubs["b"], "acme-rc3", "ACME_KEY_B"),
        }
    )
    proxy.rewrite(swapped)
    deadline = time.monotonic() + 10
    while ask(treated_client, "x") != reply_for("acme-rc3", "x"):
        assert time.monotonic() < deadline, "the reload did not happen"
        time.sleep(0.05)
    assert ask(control_client, "x") == reply_for("acme-rc1", "x")


def test_a_future_dated_version_takes_over_when_its_time_comes(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    versions = [
        {
            "id": TREATMENT_V1,
            "effective_at": "2026-01-01T00:00:00Z",
            "upstream": upstream(stubs["b"], "acme-rc2", "ACME_KEY_B"),
        },
        {
            "id": TREATMENT_V2,
            "effective_at": soon.isoformat(),
            "upstream": upstream(stubs["b"], "acme-rc3", "ACME_KEY_B"),
        },
    ]
    config = config_for(stubs, treatment_versions=versions)
    proxy = start_proxy(config, watch_interval=None)
    treated = next(f"m-{i}" for i in range(100) if expected_checkpoint(config, "machine", f"m-{i}") == "acme-rc2")
    client = proxy.client("anon", **{"x-kilocode-machineid": treated})
    assert ask(client, "x") == reply_for("acme-rc2", "x")
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    assert ask(client, "x") == reply_for("acme-rc3", "x")


def test_plain_routes_forward_as_configured_case_insensitively(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    proxy = start_proxy(config_for(stubs))
    refused_collection = {"provider": {"data_collection": "deny"}}
    assert ask(proxy.client(), "r", model="candidate-a", extra_body=refused_collection) == reply_for("acme-rc7", "r")
    seen = stubs["a"].upstream.received[-1]
    assert seen["model"] == "acme-rc7"
    assert seen["headers"]["authorization"] == f"Bearer {KEYS['ROUTE_KEY']}"


# --- refusals -----------------------------------------------------------------------------------


def test_models_lists_routes_and_active_experiments_only(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    active = start_proxy(config_for(stubs))
    assert [m.id for m in active.client().models.list()] == ["Candidate-A", PUBLIC, "slow-model"]
    paused = start_proxy(config_for(stubs, status="paused"))
    assert [m.id for m in paused.client().models.list()] == ["Candidate-A", "slow-model"]


@pytest.mark.parametrize("model", ["no-such-model", "preview/draft-model"])
def test_unknown_and_draft_models_are_404(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy], model: str
) -> None:
    proxy = start_proxy(config_for(stubs))
    with pytest.raises(openai.NotFoundError) as caught:
        ask(proxy.client(), "x", model=model)
    assert caught.value.body["type"] == "model_not_found"


def test_a_paused_experiment_is_404_like_an_unknown_model(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    proxy = start_proxy(config_for(stubs, status="paused"))
    with pytest.raises(openai.NotFoundError) as caught:
        ask(proxy.client(), "x", model="PREVIEW/Acme-Coder")
    assert caught.value.body["type"] == "model_not_found"


@pytest.mark.parametrize("provider", [{"data_collection": "deny"}, {"zdr": True}])
def test_refusing_data_collection_on_an_experiment_is_400(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy], provider: dict
) -> None:
    proxy = start_proxy(config_for(stubs))
    before = len(stubs["a"].upstream.received) + len(stubs["b"].upstream.received)
    with pytest.raises(openai.BadRequestError) as caught:
        ask(proxy.client(), "x", extra_body={"provider": provider})
    assert caught.value.body["type"] == "data_collection_required"
    assert len(stubs["a"].upstream.received) + len(stubs["b"].upstream.received) == before


def test_bad_bodies_are_400_and_oversized_ones_413(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    proxy = start_proxy(config_for(stubs), max_body_bytes=1000)
    url = proxy.base_url + "/chat/completions"
    assert httpx.post(url, content=b"{not json").status_code == 400
    assert httpx.post(url, content=b"[1, 2]").status_code == 400
    assert httpx.post(url, json={"messages": []}).status_code == 400
    too_big = httpx.post(url, json={"model": PUBLIC, "messages": [{"role": "user", "content": "x" * 2000}]})
    assert too_big.status_code == 413
    assert too_big.json()["error"]["type"] == "request_too_large"


# --- blinding -----------------------------------------------------------------------------------


def forbidden_strings(stubs: dict[str, Stub]) -> list[str]:
    """Everything that would tell a client about the experiment's internals."""
    internals = [EXPERIMENT_ID, CONTROL_ID, TREATMENT_ID, CONTROL_V1, TREATMENT_V1, *KEYS.values(), *KEYS]
    internals += ["acme-rc", "acme-slow", "trt-variant-label", "ctl-variant-label", "x-stub", "fp_", "chatcmpl-stub"]
    internals += [stub.server.url.removeprefix("http://") for stub in stubs.values()]
    return internals


def client_visible(response: httpx.Response) -> str:
    head = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    return f"{response.status_code}\n{head}\n\n{response.text}"


def test_nothing_a_client_can_see_reveals_internals(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    proxy = start_proxy(config_for(stubs))
    headers = {"authorization": f"Bearer {USER_TOKEN}"}
    url = proxy.base_url + "/chat/completions"

    def chat(prompt: str, stream: bool = False, model: str = PUBLIC) -> httpx.Response:
        body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": prompt}]}
        return httpx.post(url, json=body, headers=headers, timeout=30)

    seen = {
        "json": chat("hi"),
        "stream": chat("hi", stream=True),
        "upstream 503": chat("hi [stub:status=503]"),
        "upstream 401": chat("hi [stub:status=401]"),
        "upstream 429 stream": chat("hi [stub:status=429]", stream=True),
        "stream broken": chat("hi there you [stub:drop]", stream=True),
        "route": chat("hi", model="candidate-a"),
        "models": httpx.get(proxy.base_url + "/models"),
        "health": httpx.get(proxy.server.url + "/healthz"),
    }
    assert seen["json"].json()["model"] == PUBLIC
    data_lines = [line for line in seen["stream"].text.splitlines() if line.startswith("data: {")]
    assert data_lines and all(orjson.loads(line[6:])["model"] == PUBLIC for line in data_lines)
    assert seen["upstream 503"].status_code == 502
    assert seen["upstream 429 stream"].status_code == 429
    assert seen["stream broken"].text.count('"error"') == 1
    for name, response in seen.items():
        visible = client_visible(response)
        leaks = [s for s in forbidden_strings(stubs) if s.lower() in visible.lower()]
        assert not leaks, f"{name} reveals {leaks}:\n{visible}"


# --- telemetry ----------------------------------------------------------------------------------


def read_landing(url: str) -> dict[str, list[dict]]:
    """Every landing-zone line the proxy wrote, validated by the landing reader (none quarantined)."""
    store = open_store(url)
    rows: dict[str, list[dict]] = {}
    for record_type in (
        USAGE,
        EXPERIMENT_REQUESTS,
        MODEL_EXPERIMENT,
        MODEL_EXPERIMENT_VARIANT,
        MODEL_EXPERIMENT_VARIANT_VERSION,
    ):
        rows[record_type.name] = []
        for info in store.list(record_type.location):
            table, quarantined = read_all(record_type, info.key, store.open(info.key))
            assert quarantined == [], [str(q) for q in quarantined]
            rows[record_type.name] += table.to_pylist()
    return rows


def test_telemetry_validates_and_links_prompts_and_responses(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy], store_url: str
) -> None:
    proxy = start_proxy(config_for(stubs), landing=store_url)
    kilo = {"x-kilo-request": "msg-1", "x-kilo-session": "ses_abc", "x-kilocode-machineid": "machine-9"}
    client = proxy.client(**kilo)
    ask(client, "first", logit_bias={"1": 2})
    stream = client.chat.completions.create(model=PUBLIC, messages=[{"role": "user", "content": "second"}], stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    ask(proxy.client("anon-token", **{"x-kilocode-taskid": "ses_task"}), "routed", model="candidate-a")
    with pytest.raises(openai.NotFoundError):
        ask(client, "x", model="nope")
    proxy.server.stop()  # a clean shutdown flushes everything buffered

    rows = read_landing(store_url)
    store = open_store(store_url)
    usage = {row["requested_model"]: row for row in rows["usage"] if row["requested_model"] != PUBLIC}
    experiment_usage = [row for row in rows["usage"] if row["requested_model"] == PUBLIC]
    assert len(rows["usage"]) == 4 and len(experiment_usage) == 2
    assert len(rows["experiment_requests"]) == 2
    by_id = {row["usage_id"]: row for row in rows["experiment_requests"]}
    checkpoint = expected_checkpoint(config_for(stubs), "user", USER_ID)
    for row in experiment_usage:
        linked = by_id[row["id"]]
        assert linked["created_at"] == row["created_at"]
        assert linked["client_request_id"] == "msg-1" and linked["allocation_subject"] == "user"
        assert linked["request_kind"] == "chat_completions" and not linked["was_truncated"]
        assert (row["provider"], row["model"], row["kilo_user_id"]) == ("experiment", checkpoint, USER_ID)
        assert (row["session_id"], row["machine_id"], row["status_code"]) == ("ses_abc", "machine-9", 200)
        prompt = store.get(f"{PROMPTS_PREFIX}/{linked['request_body_sha256']}")
        assert hashlib.sha256(prompt).hexdigest() == linked["request_body_sha256"]
        body = orjson.loads(prompt)
        assert body["model"] == checkpoint and "logit_bias" not in body
        assert prompt == orjson.dumps(body, option=orjson.OPT_SORT_KEYS)  # canonical form
        response = orjson.loads(store.get(f"{RESPONSES_PREFIX}/{row['response_body_sha256']}"))
        assert response["object"] == "chat.completion"
        assert response["choices"][0]["message"]["content"] == reply_for(checkpoint, body["messages"][0]["content"])
    assert {row["streamed"] for row in experiment_usage} == {True, False}
    assert streamed == reply_for(checkpoint, "second")
    routed = usage["candidate-a"]
    assert (routed["provider"], routed["model"], routed["session_id"]) == ("route", "acme-rc7", "ses_task")
    assert routed["kilo_user_id"] == "anon:127.0.0.1" and routed["client_ip"] == "127.0.0.1"
    assert routed["input_tokens"] == 1 and routed["output_tokens"] > 0 and routed["response_body_sha256"] is None
    assert (usage["nope"]["status_code"], usage["nope"]["has_error"]) == (404, True)
    assert {row["internal_id"] for row in rows["model_experiment_variant_version"]} == {
        "acme-rc1",
        "acme-rc2",
        "draft-rc",
    }
    everything = b"".join(store.get(info.key) for info in store.list())
    for secret in [*KEYS.values(), *KEYS]:
        assert secret.encode() not in everything


def test_a_client_that_leaves_mid_stream_is_recorded_as_cancelled(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy], tmp_path: Path
) -> None:
    proxy = start_proxy(config_for(stubs))
    body = {"model": "slow-model", "stream": True, "messages": [{"role": "user", "content": "a b c d e f g h"}]}
    with httpx.stream("POST", proxy.base_url + "/chat/completions", json=body, timeout=30) as response:
        next(response.iter_lines())  # one line, then hang up
    ask(proxy.client(), "after", model="candidate-a")
    proxy.server.stop()
    usage = {row["requested_model"]: row for row in read_landing(proxy.landing)["usage"]}
    assert usage["slow-model"]["cancelled"] is True and usage["slow-model"]["streamed"] is True
    assert usage["candidate-a"]["cancelled"] is False


def test_storage_failure_never_fails_a_request(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy], s3_endpoint: str
) -> None:
    proxy = start_proxy(
        config_for(stubs),
        landing="s3://no-such-bucket-for-tracedrop/landing",
        telemetry=TelemetryLimits(flush_interval=0.05, close_timeout=0.5),
    )
    for n in range(3):
        assert ask(proxy.client(), f"q{n}") != ""
    deadline = time.monotonic() + 10
    while httpx.get(proxy.server.url + "/healthz").json()["telemetry"]["failed_writes"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_an_untrusted_x_forwarded_for_from_a_local_client_does_not_pick_the_bucket(
    stubs: dict[str, Stub], start_proxy: Callable[..., RunningProxy]
) -> None:
    config = config_for(stubs)  # trust_forwarded_for: false
    proxy = start_proxy(config)
    own = expected_checkpoint(config, "ip", "127.0.0.1")
    spoofed = next(ip for n in range(1, 255) if expected_checkpoint(config, "ip", ip := f"198.51.100.{n}") != own)
    answer = ask(proxy.client("anonymous-token", **{"X-Forwarded-For": spoofed}), "who am i")
    assert answer == reply_for(own, "who am i")
