"""deploy/Dockerfile: a multi-stage build whose runtime image is small, runs as non-root and
checks its own health; torch comes from the CPU wheel index unless a build argument says CUDA.

No Docker engine runs here, so the image is never built in these tests: they read the
Dockerfile's instructions (continuation lines joined, comments dropped) and check them against
the repository (the build context, the CLI, the Kubernetes manifests).
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined, comments dropped."""
    result, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return result


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults (before the first FROM) and the build stages in order."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede FROM, got {keyword}"
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def arg_defaults(stage: Stage) -> dict[str, str]:
    return {
        key: value.strip('"')
        for key, _, value in (arg.partition("=") for arg in stage.all("ARG"))
    }


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def stages(dockerfile: tuple[dict[str, str], list[Stage]]) -> dict[str | None, Stage]:
    return {stage.name: stage for stage in dockerfile[1]}


def test_the_parser_joins_continuations_and_names_stages() -> None:
    global_args, stages = parse(
        "ARG V=3.11\n# comment\nFROM python:${V}-slim AS a\nRUN one \\\n    two\n"
        "FROM python:${V}-slim AS b\nCOPY --from=a /x /x\n"
    )
    assert global_args == {"V": "3.11"}
    assert [(s.name, s.instructions) for s in stages] == [
        ("a", [("RUN", "one two")]),
        ("b", [("COPY", "--from=a /x /x")]),
    ]


def test_builder_and_runtime_are_two_stages_of_the_same_slim_python(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    global_args, stages = dockerfile
    assert [stage.name for stage in stages] == ["builder", "runtime"]
    assert {stage.base for stage in stages} == {"python:${PYTHON_VERSION}-slim"}
    # the image's Python is the oldest the project supports
    requires = re.search(r'requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text())
    assert requires and global_args["PYTHON_VERSION"] == requires.group(1)


def test_the_runtime_stage_is_the_default_target(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    # `docker build` without --target, and docker-compose.yml, build the last stage
    assert dockerfile[1][-1].name == "runtime"


def test_the_runtime_image_holds_only_the_built_virtualenv(stages: dict[str | None, Stage]) -> None:
    runtime = stages["runtime"]
    assert runtime.all("COPY") == ["--from=builder /opt/venv /opt/venv"]
    assert not any("pip" in run for run in runtime.all("RUN")), "nothing is installed at runtime"
    env = " ".join(runtime.all("ENV"))
    assert "PATH=/opt/venv/bin:$PATH" in env


def test_the_builder_installs_streamer_into_the_virtualenv(stages: dict[str | None, Stage]) -> None:
    builder = stages["builder"]
    assert "python -m venv /opt/venv" in builder.all("RUN")
    assert "PATH=/opt/venv/bin:$PATH" in builder.all("ENV")
    install = builder.all("RUN")[-1]
    assert 'pip install ".[torch]"' in install and "pip install ." in install
    assert "streamer --version" in install  # the entry point works before the image is kept


def test_torch_comes_from_the_cpu_wheel_index_by_default(stages: dict[str | None, Stage]) -> None:
    builder = stages["builder"]
    args = arg_defaults(builder)
    assert args["TORCH_VARIANT"] == "cpu"
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl"
    torch = next(run for run in builder.all("RUN") if "torch" in run and "--index-url" in run)
    assert '--index-url "$TORCH_INDEX/$TORCH_VARIANT"' in torch
    # a CUDA build is the same line with --build-arg TORCH_VARIANT=cu128 (or another cuXYZ)
    assert '[ "$TORCH_VARIANT" != "none" ]' in torch
    # torch is installed before the sources are copied: editing streamer keeps its layer cached
    position = {args: i for i, (_, args) in enumerate(builder.instructions)}
    assert position[torch] < position["streamer ./streamer"]


def test_a_river_only_image_skips_torch_altogether(stages: dict[str | None, Stage]) -> None:
    install = stages["builder"].all("RUN")[-1]
    assert 'if [ "$TORCH_VARIANT" != "none" ]; then pip install ".[torch]"; else pip install .; fi' in install


def test_the_torch_extra_exists_in_pyproject() -> None:
    assert re.search(r'^torch = \["torch>=', (ROOT / "pyproject.toml").read_text(), re.M)


def test_the_service_runs_as_the_non_root_user_kubernetes_expects(
    stages: dict[str | None, Stage], yaml: Any
) -> None:
    runtime = stages["runtime"]
    user = runtime.last("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, so runAsNonRoot can verify it"
    assert any(f"--uid {uid}" in run for run in runtime.all("RUN")), "the user exists"
    pod = yaml.safe_load((ROOT / "deploy" / "k8s" / "deployment.yaml").read_text())
    security = pod["spec"]["template"]["spec"]["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))
    # USER comes after every RUN of the stage: nothing after it would run as root by mistake
    keywords = [keyword for keyword, _ in runtime.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_the_healthcheck_asks_healthz_on_the_exposed_port_without_curl(
    stages: dict[str | None, Stage],
) -> None:
    runtime = stages["runtime"]
    healthcheck = runtime.last("HEALTHCHECK")
    assert "/healthz" in healthcheck and "urllib.request" in healthcheck
    assert "STREAMER_METRICS_PORT" in healthcheck
    assert "STREAMER_METRICS_PORT=9100" in runtime.all("ENV")
    assert runtime.all("EXPOSE") == ["9100"]
    assert "curl" not in DOCKERFILE.read_text()  # python:slim has none


def test_the_entrypoint_runs_the_service_command(
    stages: dict[str | None, Stage], cli_parser: Any
) -> None:
    runtime = stages["runtime"]
    assert runtime.last("ENTRYPOINT") == '["streamer"]'
    cmd = shlex.split(runtime.last("CMD").strip("[]").replace(",", " "))
    assert cli_parser.parse_args(cmd).command == "run"


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for the patterns used here: the last matching pattern wins."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!")
        if fnmatch.fnmatch(path, body) or fnmatch.fnmatch(path, body.removeprefix("**/")):
            ignored = not negated
    return ignored


def test_the_build_context_holds_every_file_the_builder_copies(
    stages: dict[str | None, Stage],
) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        source
        for copy in stages["builder"].all("COPY")
        for source in copy.split()[:-1]
        if not source.startswith("--")
    ]
    assert sources == ["pyproject.toml", "README.md", "streamer"]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not _ignored(source, patterns), f"COPY {source}: excluded by the .dockerignore"
    assert _ignored("tests", patterns) and _ignored(".venv", patterns)
    assert _ignored("streamer/__pycache__", patterns)


@pytest.fixture(scope="module")
def yaml() -> Any:
    return pytest.importorskip("yaml", reason="PyYAML not installed (pip install pyyaml)")


@pytest.fixture(scope="module")
def cli_parser() -> Any:
    cli = pytest.importorskip("streamer.cli", reason="streamer.cli not written yet")
    return cli.build_parser()
