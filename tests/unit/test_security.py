"""Security settings: secrets from files, masking everywhere, Redis AUTH/TLS and Kafka SASL/SSL options.

The TLS files are made by the ``openssl`` command for each test module (EC keys: fast).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from streamer.broker import free_port
from streamer.config import FILE_FIELDS, SECRET_FIELDS, ConfigError, Settings, load_settings
from streamer.kafka.client import client_kwargs
from streamer.store.factory import StoreUnavailableError, mask_url, open_store, scrub, url_secrets

KEY = "checkpoint-key-0123456789"

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the openssl command makes the test certificates"
)


# --- test certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


_REQ_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = streamer test
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def issue_certs(directory: Path) -> Certs:
    """A CA, and a server and a client certificate it signed (for 127.0.0.1 and localhost)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "openssl.cnf"
    config.write_text(_REQ_CONFIG)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *newkey, "-config", str(config), "-extensions", "ca",
            "-subj", "/CN=streamer test CA", "-days", "2", "-keyout", "ca.key", "-out", "ca.crt")
    for name in ("server", "client"):
        openssl("req", "-new", *newkey, "-config", str(config), "-subj", f"/CN=streamer {name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
                "-extfile", str(config), "-extensions", "leaf", "-out", f"{name}.crt")
    for key in directory.glob("*.key"):
        key.chmod(0o600)
    return Certs(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificates")
    return issue_certs(tmp_path_factory.mktemp("tls"))


def plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


# --- secrets from files ------------------------------------------------------------------------

# settings each secret needs beside it to be valid, and a value for it
CONTEXT: dict[str, dict[str, Any]] = {
    "sasl_username": {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                      "sasl_password": "pw"},
    "sasl_password": {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                      "sasl_username": "app"},
    "redis_url": {"checkpoint_key": KEY},
    "redis_username": {"redis_url": "redis://cache:6379/0", "checkpoint_key": KEY},
    "redis_password": {"redis_url": "redis://cache:6379/0", "checkpoint_key": KEY},
    "checkpoint_key": {},
    "label_studio_token": {"label_studio_url": "http://label-studio:8080"},
}  # fmt: skip
VALUES = {
    "sasl_username": "kafka-user-from-file",
    "sasl_password": "kafka-password-from-file",
    "redis_url": "redis://:redis-password-from-file@cache:6379/0",
    "redis_username": "redis-user-from-file",
    "redis_password": "redis-password-from-file",
    "checkpoint_key": "checkpoint-key-from-file-0123",
    "label_studio_token": "label-studio-token-from-file",
}


def test_every_secret_has_a_file_form() -> None:
    assert set(CONTEXT) == set(FILE_FIELDS)
    assert set(SECRET_FIELDS) <= set(FILE_FIELDS)
    for name in FILE_FIELDS:
        assert f"{name}_file" in Settings.model_fields


@pytest.mark.parametrize("name", FILE_FIELDS)
def test_a_secret_comes_from_the_file_its_env_var_names(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / name
    secret.write_text(VALUES[name] + "\n")  # as `echo value > file` writes it
    monkeypatch.setenv(f"STREAMER_{name.upper()}_FILE", str(secret))
    s = load_settings(**CONTEXT[name])
    assert plain(getattr(s, name)) == VALUES[name]
    assert s.public()[f"{name}_file"] == str(secret)


def test_a_secret_file_can_be_named_in_the_config_file_or_by_a_flag(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY)
    (tmp_path / "url").write_text("redis://:pw@cache:6379/0\n")
    config = tmp_path / "streamer.toml"
    config.write_text(f'checkpoint-key-file = "{tmp_path / "key"}"\n')
    from streamer.cli import _settings_from_args, build_parser

    args = build_parser().parse_args(
        ["run", "--config", str(config), "--redis-url-file", str(tmp_path / "url")]
    )
    s = _settings_from_args(args)
    assert s.checkpoint_key is not None and s.checkpoint_key.get_secret_value() == KEY
    assert s.redis_url is not None and s.redis_url.get_secret_value() == "redis://:pw@cache:6379/0"


@pytest.mark.parametrize(
    ("content", "value"),
    [("k" * 20, "k" * 20), ("k" * 20 + "\n", "k" * 20), ("k" * 20 + "\r\n", "k" * 20),
     ("k" * 20 + "\n\n", "k" * 20 + "\n"), (" " + "k" * 20 + " \n", " " + "k" * 20 + " ")],
)  # fmt: skip
def test_exactly_one_trailing_newline_is_stripped(content: str, value: str, tmp_path: Path) -> None:
    (tmp_path / "key").write_text(content, newline="")
    s = load_settings(checkpoint_key_file=tmp_path / "key")
    assert s.checkpoint_key is not None and s.checkpoint_key.get_secret_value() == value


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text(""), "is empty"),
        (lambda p: p.write_text("\n"), "is empty"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"\xff\xfe-not-text"), "is not UTF-8 text"),
    ],
    ids=["missing", "empty", "newline-only", "directory", "binary"],
)
def test_an_unusable_secret_file_is_a_clear_error(make: Any, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "redis-password"
    make(path)
    with pytest.raises(ConfigError) as info:
        load_settings(redis_url="redis://cache:6379/0", checkpoint_key=KEY, redis_password_file=path)
    message = str(info.value)
    assert "--redis-password-file / STREAMER_REDIS_PASSWORD_FILE" in message
    assert str(path) in message and problem in message


def test_an_unreadable_secret_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "key"
    path.write_text("unreadable-secret-0123456789")
    path.chmod(0)
    read_text = Path.read_text

    def as_another_user(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == path:  # root reads any file: refuse as the kernel would for another user
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", as_another_user)
    with pytest.raises(ConfigError, match="permission denied") as info:
        load_settings(checkpoint_key_file=path)
    assert "unreadable-secret" not in str(info.value)


def test_a_value_and_its_file_in_one_layer_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text(KEY)
    monkeypatch.setenv("STREAMER_CHECKPOINT_KEY", "another-key-0123456789")
    monkeypatch.setenv("STREAMER_CHECKPOINT_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ConfigError, match="both set") as info:
        load_settings()
    assert "another-key" not in str(info.value) and KEY not in str(info.value)


def test_a_higher_layer_overrides_either_form_of_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "env-key").write_text("key-from-the-env-file-0123")
    config = tmp_path / "streamer.toml"
    config.write_text('checkpoint_key = "key-from-the-config-file-0123"\n')
    monkeypatch.setenv("STREAMER_CHECKPOINT_KEY_FILE", str(tmp_path / "env-key"))

    from_env = load_settings(config)
    assert plain(from_env.checkpoint_key) == "key-from-the-env-file-0123"

    from_flag = load_settings(config, checkpoint_key="key-from-the-flag-0123456")
    assert plain(from_flag.checkpoint_key) == "key-from-the-flag-0123456"
    assert from_flag.checkpoint_key_file is None  # the env's file was not used


def test_a_secret_file_content_never_appears_in_errors(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("too-short\n")
    with pytest.raises(ConfigError, match="at least 16 characters") as info:
        load_settings(checkpoint_key_file=tmp_path / "key")
    assert "too-short" not in str(info.value)


# --- masking -----------------------------------------------------------------------------------

SECRETS = {
    "sasl_password": "SASL-PASSWORD-8c1f",
    "redis_password": "REDIS-PASSWORD-77ab",
    "checkpoint_key": "CHECKPOINT-KEY-5e2d-0123456789",
}


def all_secrets_settings(**more: Any) -> Settings:
    return load_settings(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", sasl_username="app",
        redis_url="rediss://app@cache:6380/0", redis_ssl_cert_reqs="none", **SECRETS, **more,
    )  # fmt: skip


def test_no_secret_appears_in_public_settings_repr_or_str() -> None:
    s = all_secrets_settings()
    for text in (str(s.public()), repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        for secret in SECRETS.values():
            assert secret not in text
    shown = s.public()
    assert all(shown[name] == "**********" for name in SECRETS)
    assert shown["redis_url"] == "rediss://app@cache:6380/0"  # no password in it: shown as is


def test_a_password_in_the_redis_url_is_masked_in_public_settings() -> None:
    s = load_settings(redis_url="redis://app:URL-PASSWORD-1@cache:6379/0?password=URL-PASSWORD-2",
                      checkpoint_key=KEY)
    shown = str(s.public())
    assert "URL-PASSWORD" not in shown
    assert "redis://app:***@cache:6379/0?password=***" in shown


def test_errors_across_settings_never_echo_secret_values() -> None:
    # the check of one setting against another used to print every input, secrets included
    with pytest.raises(ConfigError) as info:
        load_settings(redis_url="redis://:URL-SECRET@cache:6379/0", checkpoint_key="SHORT-SECRET",
                      security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                      sasl_password=SECRETS["sasl_password"])
    message = str(info.value)
    for secret in ("URL-SECRET", "SHORT-SECRET", SECRETS["sasl_password"]):
        assert secret not in message


def test_a_validation_error_of_settings_built_directly_hides_the_inputs() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(redis_url="redis://:URL-SECRET@cache:6379/0", checkpoint_key="SHORT-SECRET")
    assert "URL-SECRET" not in str(info.value) and "SHORT-SECRET" not in str(info.value)


def test_a_malformed_secret_setting_is_reported_without_its_value() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(redis_url="http://:URL-SECRET@cache", checkpoint_key=KEY)
    assert "--redis-url / STREAMER_REDIS_URL" in str(info.value)
    assert "URL-SECRET" not in str(info.value)


def test_urls_are_masked_and_their_secrets_scrubbed_from_text() -> None:
    url = "rediss://app:p%40ss@cache:6380/0?password=q&ssl_cert_reqs=required"
    assert mask_url(url) == "rediss://app:***@cache:6380/0?password=***&ssl_cert_reqs=required"
    assert url_secrets(url) == ["p%40ss", "p@ss", "q"]
    assert scrub("auth p@ss / p%40ss failed", url_secrets(url)) == "auth *** / *** failed"


# --- Redis AUTH and TLS ------------------------------------------------------------------------


def test_redis_client_options_carry_auth_and_tls(certs: Certs) -> None:
    s = load_settings(
        redis_url="rediss://cache:6380/0", checkpoint_key=KEY, redis_username="app",
        redis_password="pw", redis_ssl_ca_certs=certs.ca, redis_ssl_certfile=certs.client_cert,
        redis_ssl_keyfile=certs.client_key, redis_ssl_cert_reqs="required",
    )  # fmt: skip
    assert s.redis_client_options() == {
        "username": "app",
        "password": "pw",
        "ssl_ca_certs": str(certs.ca),
        "ssl_certfile": str(certs.client_cert),
        "ssl_keyfile": str(certs.client_key),
        "ssl_cert_reqs": "required",
    }


def test_redis_client_options_are_empty_when_the_url_says_it_all() -> None:
    s = load_settings(redis_url="redis://app:pw@cache:6379/0", checkpoint_key=KEY)
    assert s.redis_client_options() == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"redis_password": "pw"}, "no redis_url"),
        ({"redis_ssl_cert_reqs": "none"}, "no redis_url"),
        ({"redis_url": "redis://cache:6379/0", "redis_ssl_cert_reqs": "none"}, "need a rediss://"),
        ({"redis_url": "redis://:pw@cache:6379/0", "redis_password": "pw2"}, "password is set twice"),
        ({"redis_url": "redis://cache:6379/0?password=pw", "redis_password": "pw2"},
         "password is set twice"),
        ({"redis_url": "redis://app@cache:6379/0", "redis_username": "app"}, "username is set twice"),
        ({"redis_url": "rediss://cache:6380/0", "redis_ssl_keyfile": "k.pem"}, "needs redis_ssl_certfile"),
        ({"redis_url": "rediss://cache:6380/0", "redis_ssl_ca_certs": "/no/ca.pem"}, "does not exist"),
        ({"redis_url": "rediss://cache:6380/0", "redis_ssl_cert_reqs": "maybe"},
         "--redis-ssl-cert-reqs"),
    ],
)  # fmt: skip
def test_incomplete_or_contradictory_redis_security_is_an_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(checkpoint_key=KEY, **kwargs)


async def test_a_bad_redis_url_is_reported_without_its_password() -> None:
    with pytest.raises(StoreUnavailableError) as info:
        await open_store("redis://:URL-SECRET@cache:notaport/0")
    assert "bad Redis URL redis://:***@cache:notaport/0" in str(info.value)
    assert "URL-SECRET" not in str(info.value)


async def test_an_unreachable_redis_is_reported_without_any_password() -> None:
    url = f"redis://:URL-SECRET@127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnavailableError) as info:
        await open_store(url, client_options={"username": "app"})
    assert "cannot reach Redis at redis://:***@127.0.0.1" in str(info.value)
    assert "URL-SECRET" not in str(info.value)
    with pytest.raises(StoreUnavailableError) as info:
        await open_store(url.replace(":URL-SECRET@", ""), client_options={"password": "OPT-SECRET"})
    assert "OPT-SECRET" not in str(info.value)


# --- Kafka SASL and SSL ------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_passes_the_mechanism_and_credentials_to_aiokafka(mechanism: str) -> None:
    s = load_settings(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                      sasl_username="app", sasl_password="pw")
    kwargs = client_kwargs(s)
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT"
    assert kwargs["sasl_mechanism"] == mechanism
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("app", "pw")
    assert "ssl_context" not in kwargs


def test_sasl_ssl_verifies_brokers_against_the_configured_ca(certs: Certs) -> None:
    s = load_settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                      sasl_username="app", sasl_password="pw", ssl_cafile=certs.ca)
    kwargs = client_kwargs(s)
    context = kwargs["ssl_context"]
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [dict(part[0] for part in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "streamer test CA"} in subjects


def test_ssl_without_files_trusts_the_system_cas() -> None:
    kwargs = client_kwargs(load_settings(security_protocol="SSL"))
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & set(kwargs)


async def _tls_exchange(certs: Certs, client_context: ssl.SSLContext) -> bytes:
    """Connect to a local TLS server that requires a client certificate signed by the CA."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.ca))
    server_context.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    server_context.verify_mode = ssl.CERT_REQUIRED

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname="localhost"
        )
        try:
            return await asyncio.wait_for(reader.read(), timeout=5)
        finally:
            writer.close()
    finally:
        server.close()


async def test_ssl_with_a_client_certificate_passes_mutual_tls(certs: Certs) -> None:
    s = load_settings(security_protocol="SSL", ssl_cafile=certs.ca, ssl_certfile=certs.client_cert,
                      ssl_keyfile=certs.client_key)
    assert await _tls_exchange(certs, client_kwargs(s)["ssl_context"]) == b"hello"


async def test_without_the_client_certificate_mutual_tls_is_refused(certs: Certs) -> None:
    s = load_settings(security_protocol="SSL", ssl_cafile=certs.ca)
    try:  # TLS 1.3: the server's refusal arrives after the handshake, as an alert or an EOF
        answer = await _tls_exchange(certs, client_kwargs(s)["ssl_context"])
    except (ssl.SSLError, ConnectionError):
        answer = b""
    assert answer != b"hello"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "needs sasl_mechanism"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "app", "sasl_password": "pw"},
         "needs sasl_mechanism"),
        ({"sasl_mechanism": "PLAIN", "sasl_username": "app", "sasl_password": "pw"},
         "does not use SASL"),
        ({"ssl_cafile": "ca.pem"}, "does not use TLS"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "a",
          "sasl_password": "pw", "ssl_cafile": "ca.pem"}, "does not use TLS"),
        ({"security_protocol": "SSL", "ssl_keyfile": "key.pem"}, "needs ssl_certfile"),
        ({"security_protocol": "SSL", "ssl_cafile": "/no/ca.pem"}, "does not exist"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "a",
          "sasl_password": "pw"}, "--sasl-mechanism"),
    ],
)  # fmt: skip
def test_incomplete_or_contradictory_kafka_security_is_an_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**kwargs)


# --- the CLI -----------------------------------------------------------------------------------


def test_every_run_flag_is_a_setting_and_every_secret_file_has_a_flag() -> None:
    from streamer.cli import _RUN_FLAGS

    fields = set(Settings.model_fields)
    assert {name.replace("-", "_") for name in _RUN_FLAGS} <= fields
    from streamer.label.command import _STUDIO_FLAGS

    for name in FILE_FIELDS:  # the bridge's token is a flag of `streamer label-studio`
        flags = _STUDIO_FLAGS if name.startswith("label_studio") else _RUN_FLAGS
        assert f"{name}_file".replace("_", "-") in flags, name
    for name in ("redis-ssl-ca-certs", "redis-ssl-certfile", "redis-ssl-keyfile",
                 "redis-ssl-cert-reqs", "redis-username", "redis-password", "metrics-host"):
        assert name in _RUN_FLAGS, name
