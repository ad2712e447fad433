"""Redis AUTH and TLS against a real redis-server, and `streamer run` keeping its secrets.

One redis-server for the module: ``--requirepass``, an ACL user, a plain port and a TLS port
that requires client certificates (certificates made by ``openssl``). Kafka SASL/SSL is not
tested here: the embedded broker has neither (tests/unit/test_security.py checks the options).
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamer.broker import free_port
from streamer.config import Settings, load_settings
from streamer.store.base import JoinOutcome, PendingStore
from streamer.store.factory import StoreUnavailableError, open_store
from streamer.wire import encode_item, encode_label
from tests.fixtures_redis import find_redis_server
from tests.integration.harness import ServiceProcess, produce
from tests.unit.test_security import Certs, issue_certs

pytestmark = pytest.mark.integration

PASSWORD = "requirepass 7f3e secret"  # with spaces: they must survive files and URLs
APP_USER, APP_PASSWORD = "app", "acl-user-password-c41d"
KEY = "integration-checkpoint-key-0123456789"


@dataclass
class SecureRedis:
    port: int
    tls_port: int
    certs: Certs
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def secure_redis() -> Iterator[SecureRedis]:
    binary = find_redis_server()
    if binary is None:
        pytest.fail("integration tests need redis-server (apt-get install redis-server)")
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the TLS certificates")
    workdir = Path(tempfile.mkdtemp(prefix="streamer-secure-redis-"))
    certs = issue_certs(workdir / "tls")
    log = workdir / "redis.log"
    for _ in range(3):  # another process may take the free ports first
        port, tls_port = free_port(), free_port()
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(workdir), "--requirepass", PASSWORD,
                 "--user", APP_USER, "on", f">{APP_PASSWORD}", "~*", "&*", "+@all",
                 "--tls-port", str(tls_port), "--tls-cert-file", str(certs.server_cert),
                 "--tls-key-file", str(certs.server_key), "--tls-ca-cert-file", str(certs.ca),
                 "--tls-auth-clients", "yes"],
                stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
            )  # fmt: skip
        if _wait_ready(process, port):
            break
        process.kill()
        process.wait()
    else:
        text = log.read_text(errors="replace")
        if "TLS" in text and ("not supported" in text or "Bad directive" in text):
            pytest.skip(f"{binary} was built without TLS support")
        pytest.fail(f"redis-server with --requirepass and TLS did not start:\n{text[-2000:]}")
    try:
        yield SecureRedis(port, tls_port, certs, process, log)
    finally:
        process.terminate()
        process.wait(10)


def _wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 10.0) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, socket_timeout=1.0)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.05)
        return False
    finally:
        client.close()


def _secret_file(directory: Path, name: str, value: str) -> Path:
    path = directory / name
    path.write_text(value + "\n")  # as `echo value > file` or a Kubernetes secret written by hand
    return path


@pytest.fixture
def prefix() -> str:
    return f"sec-{uuid.uuid4().hex[:10]}"


async def _round_trip(store: PendingStore) -> None:
    """The store works: an item put is joined once."""
    await store.put_many(["a"], np.ones((1, 3)), requested_at=100.0, ttl_seconds=60.0)
    outcome, joined = await store.take("a", now=101.0)
    assert outcome is JoinOutcome.JOINED and joined is not None
    assert joined.features.tolist() == [1.0, 1.0, 1.0]


async def _open(settings: Settings, prefix: str) -> PendingStore:
    """What the service does with its settings (streamer.app.build_service)."""
    assert settings.redis_url is not None
    return await open_store(settings.redis_url.get_secret_value(), prefix=prefix,
                            client_options=settings.redis_client_options())


@pytest.fixture
async def opened() -> AsyncIterator[list[PendingStore]]:
    stores: list[PendingStore] = []
    yield stores
    for store in stores:
        await store.close()


# --- Redis AUTH --------------------------------------------------------------------------------


async def test_the_redis_password_can_come_from_a_file(
    secure_redis: SecureRedis, tmp_path: Path, prefix: str, opened: list[PendingStore]
) -> None:
    settings = load_settings(
        redis_url=f"redis://127.0.0.1:{secure_redis.port}/0", checkpoint_key=KEY,
        redis_password_file=_secret_file(tmp_path, "redis-password", PASSWORD),
    )  # fmt: skip
    opened.append(store := await _open(settings, prefix))
    await _round_trip(store)


async def test_an_acl_user_and_password_can_come_from_files(
    secure_redis: SecureRedis, tmp_path: Path, prefix: str, opened: list[PendingStore]
) -> None:
    settings = load_settings(
        redis_url=f"redis://127.0.0.1:{secure_redis.port}/0", checkpoint_key=KEY,
        redis_username_file=_secret_file(tmp_path, "user", APP_USER),
        redis_password_file=_secret_file(tmp_path, "password", APP_PASSWORD),
    )  # fmt: skip
    opened.append(store := await _open(settings, prefix))
    await _round_trip(store)


async def test_a_password_in_the_url_file_works(
    secure_redis: SecureRedis, tmp_path: Path, prefix: str, opened: list[PendingStore]
) -> None:
    from urllib.parse import quote

    url = f"redis://:{quote(PASSWORD)}@127.0.0.1:{secure_redis.port}/0"
    settings = load_settings(redis_url_file=_secret_file(tmp_path, "url", url), checkpoint_key=KEY)
    opened.append(store := await _open(settings, prefix))
    await _round_trip(store)


@pytest.mark.parametrize("password", ["wrong-password-91a0", None], ids=["wrong", "none"])
async def test_a_wrong_or_missing_password_is_a_clear_error_without_the_password(
    secure_redis: SecureRedis, password: str | None, prefix: str
) -> None:
    settings = load_settings(redis_url=f"redis://127.0.0.1:{secure_redis.port}/0",
                             checkpoint_key=KEY, redis_password=password)
    with pytest.raises(StoreUnavailableError) as info:
        await _open(settings, prefix)
    message = str(info.value)
    assert f"Redis at redis://127.0.0.1:{secure_redis.port}/0 refused the credentials" in message
    assert "check the password" in message
    assert "wrong-password-91a0" not in message and PASSWORD not in message


async def test_a_wrong_password_in_the_url_is_masked_in_the_error(
    secure_redis: SecureRedis, prefix: str
) -> None:
    with pytest.raises(StoreUnavailableError) as info:
        await open_store(f"redis://:wrong-password-91a0@127.0.0.1:{secure_redis.port}/0",
                         prefix=prefix)
    assert "redis://:***@127.0.0.1" in str(info.value)
    assert "wrong-password-91a0" not in str(info.value)


# --- Redis TLS ---------------------------------------------------------------------------------


def _tls_settings(secure_redis: SecureRedis, tmp_path: Path, **more: Any) -> Settings:
    return load_settings(
        redis_url=f"rediss://127.0.0.1:{secure_redis.tls_port}/0", checkpoint_key=KEY,
        redis_password_file=_secret_file(tmp_path, "redis-password", PASSWORD), **more,
    )  # fmt: skip


async def test_rediss_with_a_ca_and_a_client_certificate_works(
    secure_redis: SecureRedis, tmp_path: Path, prefix: str, opened: list[PendingStore]
) -> None:
    certs = secure_redis.certs
    settings = _tls_settings(secure_redis, tmp_path, redis_ssl_ca_certs=certs.ca,
                             redis_ssl_certfile=certs.client_cert, redis_ssl_keyfile=certs.client_key)
    opened.append(store := await _open(settings, prefix))
    await _round_trip(store)


async def test_rediss_refuses_a_server_whose_certificate_it_cannot_verify(
    secure_redis: SecureRedis, tmp_path: Path, prefix: str
) -> None:
    certs = secure_redis.certs  # no redis_ssl_ca_certs: the system CAs did not sign the server
    settings = _tls_settings(secure_redis, tmp_path, redis_ssl_certfile=certs.client_cert,
                             redis_ssl_keyfile=certs.client_key)
    with pytest.raises(StoreUnavailableError, match="CERTIFICATE_VERIFY_FAILED") as info:
        await _open(settings, prefix)
    assert "redis_ssl_" in str(info.value) and PASSWORD not in str(info.value)


async def test_rediss_without_the_client_certificate_the_server_requires_is_refused(
    secure_redis: SecureRedis, tmp_path: Path, prefix: str
) -> None:
    settings = _tls_settings(secure_redis, tmp_path, redis_ssl_ca_certs=secure_redis.certs.ca)
    with pytest.raises(StoreUnavailableError, match="cannot reach Redis at rediss://") as info:
        await _open(settings, prefix)
    assert PASSWORD not in str(info.value)


async def test_rediss_with_cert_reqs_none_skips_the_server_check(
    secure_redis: SecureRedis, tmp_path: Path, prefix: str, opened: list[PendingStore]
) -> None:
    certs = secure_redis.certs
    settings = _tls_settings(secure_redis, tmp_path, redis_ssl_cert_reqs="none",
                             redis_ssl_certfile=certs.client_cert, redis_ssl_keyfile=certs.client_key)
    opened.append(store := await _open(settings, prefix))
    await _round_trip(store)


# --- `streamer run`: secrets from files, TLS + AUTH, bound address, nothing leaked --------------


def _app_passes_redis_options() -> bool:
    import streamer.app

    return "redis_client_options" in inspect.getsource(streamer.app)


async def _one_label_joins(bootstrap: str, topics: dict[str, str], service: ServiceProcess) -> None:
    """Items in, a label request out, its label back in and joined through the Redis store."""
    items = [(f"s{i}".encode(), encode_item(id=f"s{i}", features=[float(i % 7), 1.0]))
             for i in range(200)]
    await produce(bootstrap, topics["items-topic"], items)
    consumer = AIOKafkaConsumer(topics["label-requests-topic"], bootstrap_servers=bootstrap,
                                group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=10)
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=60)
    finally:
        await consumer.stop()
    request = orjson.loads(record.value)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics["labels-topic"],
                                     encode_label(id=request["id"], label="a"),
                                     key=request["id"].encode())
    finally:
        await producer.stop()
    await asyncio.to_thread(
        service.wait_for, lambda s: s["join_outcomes"].get("joined", 0) >= 1, 60, "a joined label"
    )


async def _run_and_check(kafka: Any, topics: dict[str, str], flags: dict[str, Any],
                         secrets: list[str], tmp_path: Path) -> None:
    service = ServiceProcess(kafka.bootstrap_servers,
                             {**topics, "budget": 0.2, "metrics-host": "127.0.0.1", **flags},
                             tmp_path / "service.log")
    await asyncio.to_thread(service.start)
    try:
        await _one_label_joins(kafka.bootstrap_servers, topics, service)
        code, body = service.get("/status")
        assert code == 200
        with pytest.raises(OSError):  # bound to 127.0.0.1 only, not every address of the host
            await asyncio.wait_for(asyncio.open_connection("127.0.0.2", service.port), 2)
    finally:
        assert service.stop() == 0
    settings = orjson.loads(body)["settings"]
    assert settings["checkpoint_key"] == "**********"
    for secret in secrets:
        assert secret not in body.decode(), "a secret in /status"
        assert secret not in service.log_path.read_text(errors="replace"), "a secret in the log"


async def test_run_with_the_redis_url_and_key_from_files_keeps_them_secret(
    kafka: Any, topics: dict[str, str], secure_redis: SecureRedis, tmp_path: Path
) -> None:
    from urllib.parse import urlencode

    certs = secure_redis.certs
    tls = urlencode({"ssl_ca_certs": certs.ca, "ssl_certfile": certs.client_cert,
                     "ssl_keyfile": certs.client_key})
    url = f"rediss://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{secure_redis.tls_port}/0?{tls}"
    flags = {
        "redis-url-file": _secret_file(tmp_path, "url", url),
        "redis-prefix": f"sec-{uuid.uuid4().hex[:10]}",
        # wins over the STREAMER_CHECKPOINT_KEY the harness puts in the environment
        "checkpoint-key-file": _secret_file(tmp_path, "key", KEY),
    }
    await _run_and_check(kafka, topics, flags, [APP_PASSWORD, KEY], tmp_path)


@pytest.mark.skipif(
    not _app_passes_redis_options(),
    reason="streamer.app does not pass settings.redis_client_options() to open_store yet",
)
async def test_run_with_redis_password_and_tls_settings_keeps_them_secret(
    kafka: Any, topics: dict[str, str], secure_redis: SecureRedis, tmp_path: Path
) -> None:
    certs = secure_redis.certs
    flags = {
        "redis-url": f"rediss://127.0.0.1:{secure_redis.tls_port}/0",
        "redis-prefix": f"sec-{uuid.uuid4().hex[:10]}",
        "redis-password-file": _secret_file(tmp_path, "password", PASSWORD),
        "redis-ssl-ca-certs": certs.ca,
        "redis-ssl-certfile": certs.client_cert,
        "redis-ssl-keyfile": certs.client_key,
        "checkpoint-key-file": _secret_file(tmp_path, "key", KEY),
    }
    await _run_and_check(kafka, topics, flags, [PASSWORD, KEY], tmp_path)
