"""Checkpoints in a real Redis: restored at start, refused when tampered or for another model."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis

from streamer.app import build_service
from streamer.config import load_settings
from streamer.models import DEFAULT_MODEL, LOGISTIC_MODEL
from streamer.store import checkpoint as ckpt
from streamer.store.checkpoint import CheckpointError

pytestmark = pytest.mark.integration

KEY = "restore-test-key-0123456789"


def _settings(redis_url: str, prefix: str, **overrides):
    return load_settings(redis_url=redis_url, redis_prefix=prefix, checkpoint_key=KEY, **overrides)


async def _trained_service(redis_url: str, prefix: str, **overrides):
    service = await build_service(_settings(redis_url, prefix, **overrides))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    y = (X[:, 0] > 0).astype(int).tolist()
    service.sampler.decide(X)
    service.sampler.learn(X[:60], y[:60])
    service.counts["labels_applied"] = 60
    return service, X


async def _checkpointed(redis_url: str, prefix: str, **overrides):
    """A trained service whose checkpoint is in Redis; its store is closed again."""
    service, X = await _trained_service(redis_url, prefix, **overrides)
    assert service.durable and service.restored is None
    assert not await service.checkpoint("test")  # only the learner checkpoints
    assert await service.role.try_lease()  # the learner role, without consuming labels
    service.role.start_learning()
    assert await service.checkpoint("test")
    await service.close()  # gives the lease back
    return service, X


async def test_a_new_service_restores_the_newest_checkpoint(redis_url: str, redis_prefix: str) -> None:
    service, X = await _checkpointed(redis_url, redis_prefix)
    expected = service.sampler.decide(X[:50])

    restored = await build_service(_settings(redis_url, redis_prefix))
    try:
        assert restored.restored == 1
        assert restored.counts["labels_applied"] == 60
        assert restored.sampler.model.version == service.sampler.model.version
        again = restored.sampler.decide(X[:50])
        assert np.array_equal(again.proba, expected.proba)
    finally:
        await restored.store.close()


async def test_changed_sampling_settings_keep_the_learned_model(redis_url: str, redis_prefix: str) -> None:
    service, _ = await _checkpointed(redis_url, redis_prefix)

    restored = await build_service(_settings(redis_url, redis_prefix, budget=0.2))
    try:
        assert restored.sampler.budget == 0.2
        assert restored.sampler.model.version == service.sampler.model.version
    finally:
        await restored.store.close()


async def test_a_checkpoint_for_another_model_is_refused(redis_url: str, redis_prefix: str) -> None:
    service, _ = await _checkpointed(redis_url, redis_prefix, model=LOGISTIC_MODEL)

    with pytest.raises(CheckpointError, match="holds model 'StandardScaler | LogisticRegression'"):
        await build_service(_settings(redis_url, redis_prefix, model="GaussianNB"))


async def test_without_a_model_setting_a_deployment_keeps_its_checkpointed_model(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # a deployment from before the default became auto restarts on its logistic checkpoint
    service, X = await _checkpointed(redis_url, redis_prefix, model=LOGISTIC_MODEL)

    restored = await build_service(_settings(redis_url, redis_prefix))
    try:
        assert restored.sampler.model.spec == LOGISTIC_MODEL != DEFAULT_MODEL
        assert restored.sampler.model.version == service.sampler.model.version
        assert "keeping the checkpoint's model 'StandardScaler | LogisticRegression'" in caplog.text
    finally:
        await restored.store.close()


async def test_a_tampered_checkpoint_is_refused(redis_url: str, redis_prefix: str) -> None:
    service, _ = await _checkpointed(redis_url, redis_prefix)
    client = redis.Redis.from_url(redis_url)
    key = f"{{{redis_prefix}}}:checkpoint"
    blob = bytearray(client.get(key))
    blob[-20] ^= 0x01  # one bit inside the pickled payload
    client.set(key, bytes(blob))

    with pytest.raises(CheckpointError, match="integrity check"):
        await build_service(_settings(redis_url, redis_prefix))


class _Exploit:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def test_streamer_run_refuses_a_forged_checkpoint_with_a_clear_error(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    forged = ckpt.MAGIC + b"\0" * 32 + pickle.dumps(_Exploit(marker))
    redis.Redis.from_url(redis_url).set(f"{{{redis_prefix}}}:checkpoint", forged)
    env = {**os.environ, "STREAMER_CHECKPOINT_KEY": KEY, "STREAMER_REDIS_URL": redis_url,
           "STREAMER_REDIS_PREFIX": redis_prefix}

    done = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "run", "--bootstrap-servers", "127.0.0.1:1",
         "--metrics-port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )

    assert done.returncode == 1, done.stderr
    assert "integrity check" in done.stderr and "refusing to load it" in done.stderr
    assert "Traceback" not in done.stderr
    assert KEY not in done.stderr + done.stdout
    assert not marker.exists()
