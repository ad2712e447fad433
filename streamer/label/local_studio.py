"""A Label Studio on this machine, started from the venv ``make label-studio`` installs.

For ``streamer demo --annotator label-studio`` without a Label Studio of your own, and for the
tests: Label Studio 1.23.2 starts offline with SQLite in a folder of its own, with a fixed login
and a legacy API token (``LABEL_STUDIO_USER_TOKEN`` + ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN``).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from streamer.broker import free_port

VENV_NAME = ".venv-label-studio"
_START_SECONDS = 180.0


def find_label_studio() -> Path | None:
    """``label-studio`` from $STREAMER_LABEL_STUDIO_BIN, else ./.venv-label-studio, else beside this
    checkout; None when not installed."""
    if configured := os.environ.get("STREAMER_LABEL_STUDIO_BIN"):
        return Path(configured) if Path(configured).exists() else None
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / VENV_NAME / "bin" / "label-studio"
        if candidate.exists():
            return candidate
    return None


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


class LocalLabelStudio:
    """``label-studio start`` on a free port of 127.0.0.1, with its data in ``data_dir``."""

    def __init__(self, binary: Path, data_dir: Path, user: str, password: str, token: str,
                 port: int | None = None, webhooks_to_private_addresses: bool = True) -> None:
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.user, self.password, self.token = user, password, token
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "label-studio.log"
        self._private_hooks = webhooks_to_private_addresses
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, say=None) -> LocalLabelStudio:
        """Start it and wait until /health answers (the first start migrates its database:
        about half a minute)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
               "LABEL_STUDIO_USERNAME": self.user, "LABEL_STUDIO_PASSWORD": self.password,
               "LABEL_STUDIO_USER_TOKEN": self.token, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
               "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true", "COLLECT_ANALYTICS": "false",
               "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}
        if self._private_hooks:  # the bridge's /webhook is on 127.0.0.1, which Label Studio blocks
            env["SSRF_PROTECTION_ENABLED"] = "false"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "start", "--no-browser", "--port", str(self.port),
                 "--internal-host", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + _START_SECONDS
        said = time.monotonic()
        while not healthy(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Label Studio did not start; its log {self.log_path} ends:\n"
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            if say is not None and time.monotonic() - said > 10:
                say(f"  still starting Label Studio ({time.monotonic() - deadline + _START_SECONDS:.0f} s)...")
                said = time.monotonic()
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
