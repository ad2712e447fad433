"""``streamer label-studio`` and ``streamer annotate --web``: the labelling edges' commands.

Both read the same Settings as ``streamer run`` (flags > ``STREAMER_*`` env > ``--config``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from streamer.config import Settings, load_settings

log = logging.getLogger("streamer.label")

# flag -> (Settings field, argparse keywords); the Kafka part is shared with `streamer run`
_KAFKA_FLAGS = (
    "bootstrap-servers", "label-requests-topic", "labels-topic", "dead-letters-topic",
    "session-timeout-ms", "max-message-bytes", "pending-ttl-seconds", "topic-partitions",
    "security-protocol", "sasl-mechanism", "sasl-username", "sasl-username-file", "sasl-password",
    "sasl-password-file", "ssl-cafile", "ssl-certfile", "ssl-keyfile", "metrics-host", "log-level",
)
_EDGE_FLAGS: dict[str, tuple[str, dict]] = {
    "group-id": ("label_group_id", {"help": "consumer group of this edge "
                                    "(streamer-label-studio / streamer-annotate-web)"}),
    "classes": ("classes", {"metavar": "A,B,C", "help": "the classes to choose from (default: "
                            "grown from the requests' proba keys)"}),
    "payload-root": ("payload_root", {"metavar": "DIR", "help": "serve file:// payload_uri "
                                      "frames from under this folder only"}),
    "port": ("metrics_port", {"type": int, "help": "port of this edge's HTTP endpoints"}),
}
_STUDIO_FLAGS: dict[str, tuple[str, dict]] = {
    "label-studio-url": ("label_studio_url", {"metavar": "URL", "help": "Label Studio's address"}),
    "label-studio-token": ("label_studio_token", {"help": "Label Studio API token; prefer "
                                                  "--label-studio-token-file"}),
    "label-studio-token-file": ("label_studio_token_file", {"metavar": "FILE"}),
    "project": ("label_studio_project", {"metavar": "TITLE",
                                         "help": "project title, created if absent (streamer)"}),
    "label-config": ("label_config", {"metavar": "FILE", "help": "your labelling config XML "
                                      "instead of the one derived from the classes"}),
    "annotations": ("label_studio_annotations", {"choices": ["poll", "webhook"],
                                                 "help": "how annotations come back (poll)"}),
    "webhook-url": ("label_studio_webhook_url", {"metavar": "URL", "help": "where Label Studio "
                                                 "reaches this bridge's /webhook"}),
    "poll-seconds": ("label_studio_poll_seconds", {"type": float, "help": "poll interval (2)"}),
    "public-url": ("label_studio_public_url", {"metavar": "URL", "help": "this bridge's address "
                                               "as browsers see it, for frames (http://HOST:PORT)"}),
}
_WEB_FLAGS: dict[str, tuple[str, dict]] = {
    "claim-seconds": ("claim_seconds", {"type": float, "help": "an opened item returns to the "
                                        "queue after this (120)"}),
    "service-url": ("service_url", {"metavar": "URL", "help": "the service's HTTP address (e.g. "
                                    "http://127.0.0.1:9100): the page shows the budget it spent"}),
}
BRIDGE_PORT = 9101
WEB_PORT = 8000


def _add(parser: argparse.ArgumentParser, flags: dict[str, tuple[str, dict]]) -> None:
    for name, (_, kwargs) in flags.items():
        if f"--{name}" not in parser._option_string_actions:
            parser.add_argument(f"--{name}", default=None, **kwargs)


def add_edge_flags(parser: argparse.ArgumentParser, run_flags: dict[str, dict], studio: bool) -> None:
    """The flags of one edge command; ``run_flags`` are ``streamer run``'s (their help)."""
    if "--config" not in parser._option_string_actions:
        parser.add_argument("--config", metavar="FILE", default=None, help="TOML or JSON settings file")
    _add(parser, {name: (name.replace("-", "_"), run_flags[name]) for name in _KAFKA_FLAGS})
    _add(parser, _EDGE_FLAGS)
    _add(parser, _STUDIO_FLAGS if studio else _WEB_FLAGS)


def edge_settings(args: argparse.Namespace, studio: bool, default_port: int) -> Settings:
    """Settings from the edge's flags (the flags not given fall back to env and config file)."""
    table = {**{n: (n.replace("-", "_"), {}) for n in _KAFKA_FLAGS}, **_EDGE_FLAGS,
             **(_STUDIO_FLAGS if studio else _WEB_FLAGS)}
    overrides = {field: getattr(args, flag.replace("-", "_"), None) for flag, (field, _) in table.items()}
    overrides = {field: value for field, value in overrides.items() if value is not None}
    settings = load_settings(args.config, **overrides)
    if "metrics_port" not in settings.model_fields_set:  # no flag, env or file chose a port
        settings = settings.model_copy(update={"metrics_port": default_port})
    return settings


def run_edge(main: Callable[[Settings, asyncio.Event], Awaitable[None]], settings: Settings) -> int:
    """Run an edge until SIGTERM or Ctrl-C; exit 1 with the reason when it cannot work."""
    logging.getLogger().setLevel(settings.log_level)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(settings, stop)

    try:
        asyncio.run(go())
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"streamer: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_label_studio(args: argparse.Namespace) -> int:
    from streamer.label.studio import run_bridge

    settings = edge_settings(args, studio=True, default_port=BRIDGE_PORT)
    if not settings.label_studio_url or settings.label_studio_token is None:
        print("streamer label-studio: set --label-studio-url and --label-studio-token (or "
              "--label-studio-token-file, STREAMER_LABEL_STUDIO_URL / STREAMER_LABEL_STUDIO_TOKEN)",
              file=sys.stderr)
        return 2
    return run_edge(run_bridge, settings)


def cmd_annotate_web(args: argparse.Namespace) -> int:
    from streamer.label.web import run_web

    return run_edge(run_web, edge_settings(args, studio=False, default_port=WEB_PORT))


def register_label_studio(sub: argparse._SubParsersAction, run_flags: dict[str, dict]) -> None:
    parser = sub.add_parser(
        "label-studio", help="bridge label requests to a Label Studio project and its annotations back",
        description="Each label request becomes one Label Studio task with the model's prediction "
        "as a pre-annotation; each annotation becomes one label. Same settings as `streamer run`.")
    add_edge_flags(parser, run_flags, studio=True)
    parser.set_defaults(func=cmd_label_studio)
