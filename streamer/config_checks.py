"""Checks across settings of the Kafka and Redis security options.

:class:`~streamer.config.Settings` runs them after its fields are read; each raises a
``ValueError`` that says which settings do not go together and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from streamer.store.factory import url_secrets

if TYPE_CHECKING:
    from streamer.config import Settings


def check_kafka_security(settings: Settings) -> None:
    """The Kafka SASL and TLS options fit ``security_protocol``, and their files exist."""
    sasl = {"sasl_mechanism": settings.sasl_mechanism, "sasl_username": settings.sasl_username,
            "sasl_password": settings.sasl_password}
    ssl = {"ssl_cafile": settings.ssl_cafile, "ssl_certfile": settings.ssl_certfile,
           "ssl_keyfile": settings.ssl_keyfile}
    if not settings.security_protocol.startswith("SASL") and any(sasl.values()):
        given = ", ".join(name for name, value in sasl.items() if value)
        raise ValueError(
            f"{given} set but security_protocol={settings.security_protocol} does not use SASL: "
            "set security_protocol to SASL_SSL (or SASL_PLAINTEXT), or remove them"
        )
    if settings.security_protocol not in ("SSL", "SASL_SSL") and any(ssl.values()):
        given = ", ".join(name for name, value in ssl.items() if value)
        raise ValueError(
            f"{given} set but security_protocol={settings.security_protocol} does not use TLS: "
            "set security_protocol to SSL (or SASL_SSL), or remove them"
        )
    if settings.ssl_keyfile is not None and settings.ssl_certfile is None:
        raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate it belongs to)")
    for name, path in ssl.items():
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{name}: file {path} does not exist")


def check_redis_security(settings: Settings) -> None:
    """The Redis AUTH and TLS options fit ``redis_url``, are set once, and their files exist."""
    options = {
        "redis_username": settings.redis_username, "redis_password": settings.redis_password,
        "redis_ssl_ca_certs": settings.redis_ssl_ca_certs,
        "redis_ssl_certfile": settings.redis_ssl_certfile,
        "redis_ssl_keyfile": settings.redis_ssl_keyfile,
        "redis_ssl_cert_reqs": settings.redis_ssl_cert_reqs,
    }
    given = [name for name, value in options.items() if value is not None]
    if settings.redis_url is None:
        if given:
            raise ValueError(f"{', '.join(given)} set but no redis_url: they configure the "
                             "Redis store, set redis_url (or redis_url_file) too")
        return
    url = urlsplit(settings.redis_url.get_secret_value())
    if settings.redis_password is not None and url_secrets(settings.redis_url.get_secret_value()):
        raise ValueError("the Redis password is set twice, in redis_url and in redis_password; "
                         "keep one")
    if settings.redis_username is not None and url.username:
        raise ValueError("the Redis username is set twice, in redis_url and in redis_username; "
                         "keep one")
    tls = [name for name in given if name.startswith("redis_ssl_")]
    if tls and url.scheme != "rediss":
        raise ValueError(f"{', '.join(tls)}: Redis TLS settings need a rediss:// redis_url, got "
                         f"{url.scheme}://")
    if settings.redis_ssl_keyfile is not None and settings.redis_ssl_certfile is None:
        raise ValueError("redis_ssl_keyfile needs redis_ssl_certfile (the client certificate "
                         "it belongs to)")
    for name in ("redis_ssl_ca_certs", "redis_ssl_certfile", "redis_ssl_keyfile"):
        path = options[name]
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{name}: file {path} does not exist")
