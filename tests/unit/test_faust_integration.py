"""``streamer.faust_sampling``: what ``sampling_agent`` registers on a Faust app and refuses, and the
batch handling that keeps Faust's offsets honest. No broker: a Faust app is only built here,
never started (the integration test runs one as a worker)."""

from __future__ import annotations

import asyncio
import functools
import sys
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

faust = pytest.importorskip("faust", reason="the Faust integration needs faust-streaming: "
                            "pip install -e '.[faust]'")
import prometheus_client  # noqa: E402
from faust.types.tuples import Message  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from streamer.faust_sampling import as_record, hold, run_batch, sampling_agent  # noqa: E402
from streamer.metrics import Metrics  # noqa: E402


def _app(**conf: Any) -> faust.App:
    return faust.App(f"unit-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9", web_enabled=False,
                     **conf)


def _message(offset: int = 7, **fields: Any) -> Message:
    values = {"topic": "items", "partition": 2, "offset": offset, "timestamp": 1_700_000_000.123,
              "timestamp_type": 0, "headers": None, "key": b"cam3-7",
              "value": b'{"id": "cam3-7", "features": [1.0]}', "checksum": None,
              "serialized_key_size": 6, "serialized_value_size": 35, **fields}
    message = Message(**values)
    message.incref()  # delivered to one stream, as Faust's conductor does
    return message


class _App:
    """The one thing ``run_batch`` asks of an app: to crash."""

    def __init__(self) -> None:
        self.crashed: list[BaseException] = []

    async def crash(self, reason: BaseException) -> None:
        self.crashed.append(reason)


def test_it_registers_an_items_agent_and_a_labels_agent_reading_raw_bytes() -> None:
    app = _app()
    handle = sampling_agent(app, "items", labels_topic="labels", metrics=Metrics())
    assert {"streamer.items", "streamer.labels"} <= set(app.agents)
    for agent, topic in ((handle.items_agent, "items"), (handle.labels_agent, "labels")):
        assert agent.channel.get_topic_name() == topic
        assert agent.channel.value_serializer == "raw"  # a malformed item reaches dead letters


def test_a_faust_topic_is_read_by_its_name_whatever_its_codec() -> None:
    app = _app()
    handle = sampling_agent(app, app.topic("cameras", value_serializer="json"), metrics=Metrics())
    assert handle.items_agent.channel.get_topic_name() == "cameras"
    assert handle.items_agent.channel.value_serializer == "raw"
    assert handle.settings.items_topic == "cameras"


def test_settings_build_the_sampler() -> None:
    handle = sampling_agent(_app(), "items", metrics=Metrics(), settings={
        "budget": 0.2, "policy": "entropy", "model": "GaussianNB", "seed": 3})
    assert handle.sampler.budget == 0.2 and handle.sampler.policy == "entropy"
    assert handle.sampler.model.spec == "GaussianNB"


def test_the_topic_arguments_name_the_topics_and_predictions_are_off_without_one() -> None:
    quiet = sampling_agent(_app(), "items", metrics=Metrics())
    assert quiet.settings.emit_predictions is False
    loud = sampling_agent(_app(), "in", labels_topic="l", label_requests_topic="r",
                          predictions_topic="p", dead_letters_topic="d", metrics=Metrics())
    s = loud.settings
    assert (s.items_topic, s.labels_topic, s.label_requests_topic, s.predictions_topic,
            s.dead_letters_topic, s.emit_predictions) == ("in", "l", "r", "p", "d", True)


def test_two_topics_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="topic names must all differ"):
        sampling_agent(_app(), "items", labels_topic="items", metrics=Metrics())


def test_an_exactly_once_app_is_refused_with_what_to_set() -> None:
    with pytest.raises(ValueError, match="processing_guarantee='at_least_once'"):
        sampling_agent(_app(processing_guarantee="exactly_once"), "items", metrics=Metrics())


def test_take_must_be_a_positive_number_of_messages() -> None:
    with pytest.raises(ValueError, match="take must be a positive number"):
        sampling_agent(_app(), "items", take=0, metrics=Metrics())


def test_the_status_says_not_started_before_the_worker_runs() -> None:
    handle = sampling_agent(_app(), "items", metrics=Metrics())
    assert handle.status() == {"ready": False, "started": False}
    assert handle.ready is False and handle.store is None


def test_metrics_go_to_the_default_registry_and_a_second_agent_is_told_to_pass_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = CollectorRegistry()
    monkeypatch.setattr(prometheus_client, "REGISTRY", registry)
    handle = sampling_agent(_app(), "items")
    assert handle.metrics.registry is registry
    with pytest.raises(ValueError, match="pass metrics=Metrics"):
        sampling_agent(_app(), "items", name="second")


def test_without_faust_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faust", None)  # import faust raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'streamer\[faust\]'"):
        sampling_agent(object(), "items")  # type: ignore[arg-type]


def test_a_faust_message_becomes_the_record_the_service_reads() -> None:
    record = as_record(_message(headers={"content-type": b"application/msgpack"}))
    assert record.timestamp == 1_700_000_000_123  # milliseconds, as aiokafka's
    assert record.headers == [("content-type", b"application/msgpack")]
    assert (record.topic, record.partition, record.offset, record.key) == ("items", 2, 7, b"cam3-7")
    assert record.value == b'{"id": "cam3-7", "features": [1.0]}'


def test_held_messages_are_never_finally_acknowledged() -> None:
    message = _message()
    hold([SimpleNamespace(message=message)])
    assert message.ack(None) is False  # take_events' acknowledgement is not the last one
    assert message.acked is False


async def test_a_delivered_batch_is_acknowledged_as_usual() -> None:
    app, message = _App(), _message()

    async def delivered() -> None:
        return None

    await run_batch(app, [SimpleNamespace(message=message)], delivered())
    assert message.ack(None) is True and app.crashed == []


async def test_a_failed_batch_is_held_and_crashes_the_app() -> None:
    app, messages = _App(), [_message(offset) for offset in (7, 8)]
    failure = ConnectionError("the broker did not acknowledge the label requests")

    async def undelivered() -> None:
        raise failure

    with pytest.raises(ConnectionError):
        await run_batch(app, [SimpleNamespace(message=m) for m in messages], undelivered())
    assert app.crashed == [failure]
    assert [m.ack(None) for m in messages] == [False, False]  # Faust commits nothing past them


async def test_a_batch_cancelled_midway_is_held_without_crashing_the_app() -> None:
    app, message = _App(), _message()

    async def stopped() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_batch(app, [SimpleNamespace(message=message)], stopped())
    assert message.ack(None) is False and app.crashed == []


class _Sensors:
    def __init__(self) -> None:
        self.out: list[int] = []

    def on_message_out(self, tp: Any, offset: int, message: Message) -> None:
        self.out.append(offset)


class _Service:
    """``process_items`` whose outputs the broker acknowledges when the test says so."""

    def __init__(self) -> None:
        self.outputs: list[asyncio.Future[Any]] = []

    async def process_items(self, records: list[Any]) -> list[asyncio.Future[Any]]:
        self.outputs.append(asyncio.get_running_loop().create_future())
        return [self.outputs[-1]]


def _events(*offsets: int) -> list[SimpleNamespace]:
    """Events as a stream hands them over: ``ack`` is the stream's (not final while held)."""
    messages = [_message(offset) for offset in offsets]
    return [SimpleNamespace(message=m, ack=functools.partial(m.ack, None)) for m in messages]


async def _callbacks_run() -> None:
    """A few loop turns: the ack future's callbacks, then what they scheduled."""
    for _ in range(5):
        await asyncio.sleep(0)


def _sampling() -> tuple[Any, _App, _Service]:
    handle = sampling_agent(_app(), "items", metrics=Metrics())
    app, service = _App(), _Service()
    app.sensors = _Sensors()  # type: ignore[attr-defined]
    handle.app, handle.service = app, service
    return handle, app, service


async def test_a_batch_is_acknowledged_to_faust_only_once_its_outputs_are_delivered() -> None:
    handle, app, service = _sampling()
    events = _events(7, 8)
    await handle.decide(events)
    assert [e.ack() for e in events] == [False, False]  # take_events' ack, outputs in flight
    service.outputs[0].set_result(None)  # the broker acknowledged the batch's outputs
    await _callbacks_run()
    assert all(e.message.acked for e in events) and app.sensors.out == [7, 8]


async def test_the_next_batch_is_decided_while_the_broker_acknowledges_the_last() -> None:
    handle, _, service = _sampling()
    for offset in range(3):
        await handle.decide(_events(offset))
    assert len(service.outputs) == 3 and not any(f.done() for f in service.outputs)


async def test_a_batch_whose_outputs_fail_stays_held_and_crashes_the_app() -> None:
    handle, app, service = _sampling()
    events = _events(7)
    await handle.decide(events)
    failure = ConnectionError("the broker did not acknowledge the label requests")
    service.outputs[0].set_exception(failure)
    await _callbacks_run()
    assert app.crashed == [failure]
    assert events[0].ack() is False and app.sensors.out == []
