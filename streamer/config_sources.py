"""Where settings come from: flags > env (``STREAMER_*``) > config file, and secret files.

:class:`~streamer.config.Settings` reads these layers through :class:`SecretPairs`, in which a
secret and its ``_file`` form (``STREAMER_<NAME>_FILE``, the Docker/Kubernetes secrets
convention) count as one setting; :func:`read_secret_files` then puts each file's content in
its setting.
"""

from __future__ import annotations

import contextvars
import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

# The config file of the settings being built: load_settings sets it around Settings(...).
config_file_var: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "streamer_config_file", default=None
)


class ConfigError(ValueError):
    """Settings that cannot work; the message says which and how to fix them."""


MASK = "**********"
# settings whose values are secrets: masked in public(), errors and repr
SECRET_FIELDS = ("sasl_password", "redis_url", "redis_password", "checkpoint_key", "label_studio_token")
# settings that may also come from a file named by <name>_file (STREAMER_<NAME>_FILE)
FILE_FIELDS = (
    "sasl_username", "sasl_password", "redis_url", "redis_username", "redis_password",
    "checkpoint_key", "label_studio_token",
)  # fmt: skip


def _setting_names(name: str) -> str:
    """How a user sets ``name``: its flag and its env var."""
    return f"{name} (--{name.replace('_', '-')} / STREAMER_{name.upper()})"


def read_secret_files(data: Any) -> Any:
    """The raw settings with each ``<name>_file`` read into ``<name>``.

    A secret set both directly and by a file is an error; every problem is listed in one
    ``ValueError``.
    """
    if not isinstance(data, dict):
        return data
    data = dict(data)
    problems = []
    for name in FILE_FIELDS:
        path = data.get(f"{name}_file")
        if path is None or path == "":
            continue
        given = _setting_names(f"{name}_file")
        if data.get(name) not in (None, ""):
            problems.append(f"{_setting_names(name)} and {given} are both set; keep one")
            continue
        try:
            data[name] = read_secret_file(Path(str(path)))
        except ValueError as exc:
            problems.append(f"{given}: {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return data


class SecretPairs(PydanticBaseSettingsSource):
    """Flags > env > config file, where a secret and its ``_file`` form count as one setting.

    The highest layer that sets either wins (``--checkpoint-key`` overrides
    ``STREAMER_CHECKPOINT_KEY_FILE``); one layer setting both is an error, found later.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], layers: tuple[PydanticBaseSettingsSource, ...]
    ) -> None:
        super().__init__(settings_cls)
        self._layers = layers

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ merges whole layers

    def __call__(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for layer in reversed(self._layers):  # lowest first, so higher layers overwrite
            values = layer()
            for name in FILE_FIELDS:
                if _given(values, name) or _given(values, f"{name}_file"):
                    merged.pop(name, None)
                    merged.pop(f"{name}_file", None)
            merged.update(values)
        return merged


def _given(values: dict[str, Any], name: str) -> bool:
    return values.get(name) not in (None, "")


class ConfigFileSource(PydanticBaseSettingsSource):
    """Values from a TOML or JSON file (``--config`` or ``STREAMER_CONFIG``)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = config_file_var.get()
        self._values = read_config_file(path) if path else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings of a TOML or JSON file: its ``[streamer]`` table or its top level."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:] or 'TOML'}: {exc}") from exc
    values = values.get("streamer", values)  # allow a [streamer] table
    return {key.replace("-", "_"): value for key, value in values.items()}


def read_secret_file(path: Path) -> str:
    """The secret a file holds: its text less one trailing newline (Docker/Kubernetes secrets).

    Raises ``ValueError`` naming the path (never the content) if it is missing, unreadable or
    empty.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"file {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a file") from None
    except PermissionError:
        raise ValueError(f"file {path} cannot be read (permission denied for this user)") from None
    except UnicodeDecodeError:
        raise ValueError(f"file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"file {path} cannot be read: {exc.strerror}") from None
    value = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    if not value.strip():
        raise ValueError(f"file {path} is empty")
    return value
