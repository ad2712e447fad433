"""A learner restarted on the same host takes the lease of its dead predecessor at once."""

from __future__ import annotations

import socket
import subprocess
import sys

from streamer.runtime.lease import holder_died_here, replica_token


def _token_of(pid: int) -> str:
    host, namespace, _, tail = replica_token().split("/")
    return f"{host}/{namespace}/{pid}/{tail}"


def test_a_holder_that_died_on_this_host_is_known_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not holder_died_here(_token_of(child.pid)), "it runs"
    finally:
        child.kill()
        child.wait()
    assert holder_died_here(_token_of(child.pid))


def test_what_cannot_be_known_is_never_called_dead() -> None:
    assert not holder_died_here(replica_token()), "this very process"
    _, namespace, pid, tail = _token_of(2 ** 22 + 7).split("/")
    assert not holder_died_here(f"another-{socket.gethostname()}/{namespace}/{pid}/{tail}")
    assert not holder_died_here(f"{socket.gethostname()}/0/{pid}/{tail}"), "another PID namespace"
    assert not holder_died_here("pod-7"), "a --group-instance-id token"
    assert not holder_died_here("")
