"""One frozen settings object, read at the edge: flags > env (``STREAMER_*``) > config file > defaults.

Nothing deeper in the code reads the environment; the service gets plain values from here.
Secrets may also come from files (``STREAMER_<NAME>_FILE``, the Docker/Kubernetes secrets
convention) and are masked wherever settings are shown: ``public()``, ``repr``, errors.
Where the values come from is :mod:`streamer.config_sources`; the checks of the Kafka and Redis
security options are :mod:`streamer.config_checks`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from streamer.config_checks import check_kafka_security, check_redis_security
from streamer.config_sources import (
    FILE_FIELDS,
    MASK,
    SECRET_FIELDS,
    ConfigError,
    ConfigFileSource,
    SecretPairs,
    config_file_var,
    read_secret_file,
    read_secret_files,
)
from streamer.store.factory import mask_url

__all__ = [
    "FILE_FIELDS",
    "MASK",
    "SECRET_FIELDS",
    "ConfigError",
    "Settings",
    "load_settings",
    "mask_url",
    "read_secret_file",
]


class Settings(BaseSettings):
    """Every setting of ``streamer run``. Env vars are the field names with the ``STREAMER_`` prefix."""

    # hide_input_in_errors: a ValidationError's text never carries the values (secrets among them)
    model_config = SettingsConfigDict(
        env_prefix="STREAMER_", frozen=True, extra="forbid", hide_input_in_errors=True
    )

    # Kafka
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "streamer"
    client_id: str = Field("streamer", description="Kafka client id, in the broker's logs and quotas")
    items_topic: str = "items"
    label_requests_topic: str = "label-requests"
    labels_topic: str = "labels"
    predictions_topic: str = "predictions"
    dead_letters_topic: str = "dead-letters"
    emit_predictions: bool = True
    create_topics: bool = True
    topic_partitions: int = Field(3, ge=1)
    replication_factor: int = Field(1, ge=1, description="replication factor of topics created at start")
    max_batch: int = Field(1024, ge=1, le=100_000)
    # An items micro-batch takes at most as many items as are decided in this long, at the
    # cost per item measured on the recent batches (streamer.runtime.consume.BatchLimit).
    max_delay_ms: float = Field(20.0, gt=0, le=60_000)
    fetch_max_wait_ms: int = Field(10, ge=1, le=10_000)
    # How long the group coordinator waits for a silent consumer before handing its partitions
    # to another (or to this one restarted). None: 2000 on the embedded broker (Tansu), where a
    # kill -9 restart then gets its items partitions back in ~4 s instead of ~18 s, and 10000
    # on Apache Kafka (whose group.min.session.timeout.ms is 6000 by default).
    session_timeout_ms: int | None = Field(None, ge=1_000, le=300_000)
    # Static membership (KIP-345), e.g. the pod name of a StatefulSet: a restarted replica with
    # the same id gets its partitions back at once instead of after session_timeout_ms.
    group_instance_id: str | None = None
    # Kafka security: passed through to aiokafka
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    # state
    redis_url: SecretStr | None = None  # None = in-process store (single replica, not durable)
    # Redis AUTH (ACL user or requirepass) and TLS, unless the URL carries them
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_ssl_ca_certs: Path | None = None  # CA bundle that signed the server's certificate
    redis_ssl_certfile: Path | None = None  # client certificate (Redis tls-auth-clients yes)
    redis_ssl_keyfile: Path | None = None
    redis_ssl_cert_reqs: Literal["required", "optional", "none"] | None = None  # None = required
    redis_prefix: str = "streamer"
    pending_ttl_seconds: float = Field(24 * 3600.0, gt=0)
    max_pending: int = Field(100_000, ge=1)  # backpressure: no new label requests beyond this
    # checkpoints (Redis store only): model + label offsets + applied ids, in one atomic step
    checkpoint_key: SecretStr | None = None  # HMAC key that signs checkpoints (>= 16 bytes)
    checkpoint_every_labels: int = Field(500, ge=1)
    checkpoint_every_seconds: float = Field(10.0, gt=0)
    shutdown_timeout_seconds: float = Field(20.0, gt=0)  # SIGTERM: finish, flush, checkpoint
    max_message_bytes: int = Field(1_000_000, ge=64)  # bigger items/labels are dead letters
    max_abs_feature: float | None = Field(1e15, gt=0)  # larger finite features: out_of_range

    # scale-out (Redis store): roles, the learner lease, model staleness, the shared budget
    # all = scorer and learner candidate (one replica learns: the lease holder); scorer =
    # decide items only; learner = learn from labels only
    role: Literal["all", "scorer", "learner"] = "all"
    model_staleness_seconds: float = Field(1.0, gt=0, le=3600)  # scorers reload within this
    learner_lease_seconds: float = Field(5.0, ge=0.5, le=300)  # a standby learns after this
    global_budget: bool = True  # replicas hold the budget together (a Redis ledger)

    # sampling
    budget: float = Field(0.05, gt=0, le=1)
    model: str | None = None  # None = streamer.models.DEFAULT_MODEL
    policy: str | None = None  # None = streamer.core.sampler.DEFAULT_POLICY, e.g. "margin or novelty"
    class_balance: float = Field(0.0, ge=0, le=4)  # 0 = off; 1 = rare predicted classes weigh 1/share
    drift_boost: bool = False  # raise the ask rate after a drift of the error, paid back later
    labels_per_second: float | None = Field(None, gt=0)  # token bucket on top of the share budget
    # The default promise: the share over the stream within budget_tolerance of the budget, and
    # never more than warm-up + slack labels ahead of budget * seen (slack = tolerance * budget *
    # window / 2). Setting budget_window explicitly asks for the window promise (any window of
    # that many items within the tolerance), which a warm-up would break: no warm-up then.
    budget_window: int = Field(10_000, ge=1)
    budget_tolerance: float = Field(0.02, gt=0, le=1)
    explore: float = Field(0.1, ge=0, lt=1)
    # labels that may be spent ahead of the budget at the start, repaid afterwards; None = the
    # default (streamer.core.budget.DEFAULT_WARMUP_LABELS, 0 under the window promise)
    warmup_labels: int | None = Field(None, ge=0, le=1_000_000)
    seed: int = 0
    n_features: int | None = Field(None, ge=1)
    include_features: bool = Field(True, description="label requests carry the features, for pre-annotation")

    # labelling edges (`streamer label-studio`, `streamer annotate --web`): they read label
    # requests and write labels with the Kafka settings above, never Redis or the model
    label_group_id: str | None = Field(None, description="consumer group of a labelling edge "
                                       "(default: streamer-label-studio / streamer-annotate-web)")
    # "a,b,c": the classes. The service refuses labels of any other (dead letter undeclared_class);
    # the labelling edges offer them as the choices. None: classes grow from the labels, up to
    # max_classes (beyond: dead letter too_many_classes; each class costs every decision)
    classes: str | None = None
    max_classes: int = Field(100, ge=2, le=100_000)
    claim_seconds: float = Field(120.0, gt=0, le=86_400)  # an opened item returns to the queue after
    payload_root: Path | None = None  # file:// payload_uri served only from under this folder
    service_url: str | None = None  # the service's HTTP address: the page shows its budget spent
    label_studio_url: str | None = None
    label_studio_token: SecretStr | None = None
    label_studio_project: str = Field("streamer", description="the Label Studio project's title, created "
                                      "if absent (`streamer label-studio --project`)")
    label_config: Path | None = None  # a labelling config of your own instead of the derived one
    # poll: the bridge asks Label Studio for new annotations; webhook: Label Studio calls the
    # bridge at label_studio_webhook_url (and the bridge still reconciles every minute)
    label_studio_annotations: Literal["poll", "webhook"] = Field(
        "poll", description="how the bridge learns of annotations (`streamer label-studio --annotations`)")
    label_studio_webhook_url: str | None = Field(None, description="the bridge's webhook address as Label "
                                                 "Studio reaches it (`--webhook-url`)")
    label_studio_poll_seconds: float = Field(2.0, gt=0, le=3600, description="seconds between polls for "
                                             "annotations (`--poll-seconds`)")
    label_studio_public_url: str | None = Field(None, description="how Label Studio's pages reach the "
                                                "bridge's frames (`--public-url`)")

    # HTTP
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(9100, ge=0, le=65535)  # 0 = any free port
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Docker/Kubernetes secrets: a file whose content (less one trailing newline) is the value
    sasl_username_file: Path | None = None
    sasl_password_file: Path | None = None
    redis_url_file: Path | None = None
    redis_username_file: Path | None = None
    redis_password_file: Path | None = None
    checkpoint_key_file: Path | None = None
    label_studio_token_file: Path | None = Field(None, description="file holding the Label Studio token")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        layers = (init_settings, env_settings, ConfigFileSource(settings_cls))
        return (SecretPairs(settings_cls, layers),)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        return read_secret_files(data)

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not HOST:PORT (comma-separate several servers)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"scheme {scheme!r} is not redis://, rediss:// or unix://")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from streamer.models import check_model_spec

        check_model_spec(value)  # raises ValueError naming the unknown estimator or bad option
        return value

    @field_validator("policy")
    @classmethod
    def _policy(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() == "random":
            return value
        from streamer.core.policy import parse

        parse(value)  # raises ValueError naming the problem and the known terms
        return value

    @property
    def window_promise(self) -> bool:
        """Whether the per-window budget promise was asked for (``budget_window`` set)."""
        return "budget_window" in self.model_fields_set

    @property
    def warmup(self) -> int:
        """The warm-up in labels: the setting, else the default (none under the window promise)."""
        if self.warmup_labels is not None:
            return self.warmup_labels
        from streamer.core.budget import DEFAULT_WARMUP_LABELS

        return 0 if self.window_promise else DEFAULT_WARMUP_LABELS

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.window_promise and self.warmup_labels:
            raise ValueError(
                f"warmup_labels={self.warmup_labels} and budget_window={self.budget_window} do not "
                "go together: a warm-up spends ahead of the budget at the start, so the first "
                f"window of {self.budget_window} items would hold more than the budget. Drop "
                "budget_window for the default promise (share over the stream, never more than "
                "warm-up + slack ahead), or drop warmup_labels for the window promise")
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol={self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password"
            )
        topics = [
            self.items_topic, self.label_requests_topic, self.labels_topic,
            self.predictions_topic, self.dead_letters_topic,
        ]
        if len(set(topics)) != len(topics):
            raise ValueError(f"topic names must all differ, got {topics}")
        if self.checkpoint_key is not None and len(self.checkpoint_key.get_secret_value()) < 16:
            raise ValueError("checkpoint_key must be at least 16 characters (a random secret)")
        if self.redis_url is not None and self.checkpoint_key is None:
            raise ValueError(
                "a Redis store needs checkpoint_key (STREAMER_CHECKPOINT_KEY, or a file named by "
                "STREAMER_CHECKPOINT_KEY_FILE): checkpoints of the model are signed with it and "
                "refused when the signature does not match"
            )
        if self.role != "all" and self.redis_url is None:
            raise ValueError(
                f"role={self.role} shares the model through Redis: set redis_url (a single "
                "process without Redis runs role=all)"
            )
        if self.label_studio_annotations == "webhook" and not self.label_studio_webhook_url:
            raise ValueError(
                "label_studio_annotations=webhook needs label_studio_webhook_url: the address at "
                "which Label Studio reaches this bridge's /webhook (e.g. http://bridge:9101/webhook)")
        if self.label_config is not None and not Path(self.label_config).is_file():
            raise ValueError(f"label_config: file {self.label_config} does not exist")
        if self.payload_root is not None and not Path(self.payload_root).is_dir():
            raise ValueError(f"payload_root: folder {self.payload_root} does not exist")
        check_kafka_security(self)
        check_redis_security(self)
        return self

    @property
    def declared_classes(self) -> list[str] | None:
        """``classes`` as a list ("a, b" -> ["a", "b"]), None when not declared."""
        if self.classes is None:
            return None
        return [name.strip() for name in self.classes.split(",") if name.strip()] or None

    def redis_client_options(self) -> dict[str, Any]:
        """Keyword arguments of the Redis client beyond the URL: AUTH and TLS, only those set.

        Pass them to ``open_store(..., client_options=...)``.
        """
        options: dict[str, Any] = {
            "username": self.redis_username,
            "password": self.redis_password.get_secret_value() if self.redis_password else None,
            "ssl_ca_certs": str(self.redis_ssl_ca_certs) if self.redis_ssl_ca_certs else None,
            "ssl_certfile": str(self.redis_ssl_certfile) if self.redis_ssl_certfile else None,
            "ssl_keyfile": str(self.redis_ssl_keyfile) if self.redis_ssl_keyfile else None,
            "ssl_cert_reqs": self.redis_ssl_cert_reqs,
        }
        return {name: value for name, value in options.items() if value is not None}

    def public(self) -> dict[str, Any]:
        """The settings as shown in logs and ``/status``: secrets masked."""
        data = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            data[name] = MASK if getattr(self, name) is not None else None
        data["redis_url"] = mask_url(self.redis_url.get_secret_value()) if self.redis_url else None
        data["warmup_labels"] = self.warmup  # what the sampler got, not None for "the default"
        return data


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; raise ``ConfigError`` with every problem listed, one per line."""
    token = config_file_var.set(Path(config_file) if config_file else None)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            flag = f"--{name.replace('_', '-')} / STREAMER_{name.upper()}" if error["loc"] else name
            if error["type"] == "missing":
                lines.append(f"  {flag}: required")
            elif not error["loc"]:  # a check across settings: its input is all of them
                lines.append(f"  {flag}: {error['msg']}")
            else:
                shown = "***" if name in SECRET_FIELDS else repr(error.get("input"))
                lines.append(f"  {flag}: {error['msg']} (got {shown})")
        raise ConfigError("invalid settings:\n" + "\n".join(lines)) from None
    finally:
        config_file_var.reset(token)
