"""The docs' generated parts match their sources: the results tables their JSON files, the
reference tables the code (Settings, the CLI parser, the metrics registries)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "tools"))

import reference  # noqa: E402
import render  # noqa: E402
import results_tables  # noqa: E402

from streamer.config import Settings  # noqa: E402
from streamer.metrics import Metrics  # noqa: E402


@pytest.mark.parametrize("page", render.pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_generated_block_matches_its_source(page: Path) -> None:
    assert render.stale_blocks(page) == []


def test_a_figure_edited_by_hand_is_caught() -> None:
    page = ROOT / "docs" / "results.md"
    text = page.read_text()
    body = "\n".join(results_tables.TABLES["throughput-rates"]())
    assert body in text
    edited = text.replace(body, body.replace("| 16 |", "| 16.0 |", 1))
    assert edited != text
    assert render.render_text(edited, "edited") == text


def test_an_unknown_block_is_an_error() -> None:
    with pytest.raises(SystemExit, match="unknown generated block 'no-such-table'"):
        render.render_text("<!-- begin: no-such-table -->\n<!-- end: no-such-table -->", "page.md")


def test_every_result_file_quoted_names_its_commit_or_says_it_is_missing() -> None:
    for key, generate in results_tables.TABLES.items():
        text = "\n".join(generate())
        assert "commit `" in text or "commit not recorded" in text, key


def test_every_setting_has_words_for_the_reference() -> None:
    assert reference.undocumented_settings() == []


def test_the_settings_table_has_a_row_per_setting_with_its_env_var() -> None:
    rows = reference.settings_reference()[2:]
    assert len(rows) == len(Settings.model_fields)
    for name, row in zip(Settings.model_fields, rows, strict=True):
        assert row.startswith(f"| `{name}` |") and f"`STREAMER_{name.upper()}`" in row


def test_the_metrics_table_lists_every_service_metric() -> None:
    text = "\n".join(reference.metrics_reference())
    exposed = {m.name for m in Metrics().registry.collect()}
    assert exposed
    for name in exposed:
        assert f"`{name}" in text, name


def test_the_cli_reference_has_every_flag_of_streamer_run() -> None:
    text = "\n".join(reference.cli_reference())
    for flag in ("--max-delay-ms", "--redis-url-file", "--no-predictions", "--drift-boost"):
        assert f"`{flag}`" in text
