"""Settings: flags > env > config file > defaults, validated with errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.config import ConfigError, load_settings, mask_url


def test_defaults_match_the_documented_contract() -> None:
    s = load_settings()
    assert s.budget == 0.05
    assert (s.items_topic, s.label_requests_topic, s.labels_topic, s.predictions_topic,
            s.dead_letters_topic) == ("items", "label-requests", "labels", "predictions", "dead-letters")
    assert s.redis_url is None  # in-process store


def test_env_vars_override_the_config_file_and_flags_override_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "streamer.toml"
    config.write_text('budget = 0.2\ngroup-id = "from-file"\nitems_topic = "file-items"\n')
    monkeypatch.setenv("STREAMER_BUDGET", "0.1")
    monkeypatch.setenv("STREAMER_GROUP_ID", "from-env")
    s = load_settings(config, group_id="from-flag")
    assert s.budget == 0.1
    assert s.group_id == "from-flag"
    assert s.items_topic == "file-items"


def test_a_json_config_file_with_a_streamer_table_is_read(tmp_path: Path) -> None:
    config = tmp_path / "streamer.json"
    config.write_text('{"streamer": {"budget": 0.01, "metrics_port": 0}}')
    s = load_settings(config)
    assert (s.budget, s.metrics_port) == (0.01, 0)


def test_every_invalid_setting_is_reported_with_its_flag_and_env_var() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(budget=0, bootstrap_servers="localhost", metrics_port=70000)
    message = str(info.value)
    for name in ("--budget / STREAMER_BUDGET", "--bootstrap-servers", "--metrics-port"):
        assert name in message


def test_unknown_keys_in_a_config_file_are_errors(tmp_path: Path) -> None:
    config = tmp_path / "streamer.toml"
    config.write_text("budjet = 0.1\n")
    with pytest.raises(ConfigError, match="budjet"):
        load_settings(config)


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_sasl_needs_its_credentials() -> None:
    with pytest.raises(ConfigError, match="sasl_username"):
        load_settings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN")


def test_topic_names_must_differ() -> None:
    with pytest.raises(ConfigError, match="must all differ"):
        load_settings(labels_topic="items")


def test_secrets_never_appear_in_public_settings_or_errors() -> None:
    s = load_settings(redis_url="redis://app:hunter2@redis:6379/0", security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="SCRAM-SHA-256", sasl_username="app", sasl_password="swordfish",
                      checkpoint_key="correct-horse-battery")
    shown = str(s.public())
    assert "hunter2" not in shown and "swordfish" not in shown and "correct-horse" not in shown
    assert "redis://app:***@redis:6379/0" in shown
    with pytest.raises(ConfigError) as info:
        load_settings(redis_url="http://app:hunter2@redis")
    assert "hunter2" not in str(info.value)


def test_mask_url_leaves_urls_without_a_password_alone() -> None:
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert mask_url("rediss://:pw@host:6380") == "rediss://:***@host:6380"


def test_policy_settings_are_validated_and_reach_the_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from streamer.app import build_service

    monkeypatch.setenv("STREAMER_POLICY", "margin or novelty")
    s = load_settings(class_balance=1.0, drift_boost=True, labels_per_second=5.0, budget_window=2000)
    service = asyncio.run(build_service(s))
    snapshot = service.sampler.snapshot()
    assert snapshot["policy"] == "margin or novelty"
    assert snapshot["labels_per_second"] == 5.0
    assert snapshot["promise"]["window"] == 2000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "margin or"}, "--policy / STREAMER_POLICY"),
        ({"policy": "smallest"}, "unknown term 'smallest'"),
        ({"strategy": "entropy"}, "--strategy / STREAMER_STRATEGY: Extra inputs"),
        ({"labels_per_second": 0}, "--labels-per-second"),
        ({"budget_tolerance": 0}, "--budget-tolerance"),
    ],
)
def test_bad_policy_settings_say_what_to_fix(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**kwargs)


def test_run_flags_cover_the_policy_settings() -> None:
    from streamer.cli import _settings_from_args, build_parser

    args = build_parser().parse_args(
        ["run", "--policy", "entropy * density", "--class-balance", "0.5", "--drift-boost",
         "--labels-per-second", "2", "--budget-window", "5000", "--budget-tolerance", "0.05"]
    )
    s = _settings_from_args(args)
    assert (s.policy, s.class_balance, s.drift_boost, s.labels_per_second, s.budget_window,
            s.budget_tolerance) == ("entropy * density", 0.5, True, 2.0, 5000, 0.05)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("NoSuchModel", "unknown river estimator 'NoSuchModel'"),
        ("StandardScaler | LogisticRegresion", "did you mean LogisticRegression"),
        ("StandardScaler | LogisticRegression(l3=1)", "unexpected keyword argument 'l3'"),
        ("StandardScaler |", "empty step"),
        ("torch:mlp(hiden=3)", "did you mean hidden"),
        ("torch:cnn", "--model / STREAMER_MODEL"),
    ],
)
def test_a_bad_model_spec_is_reported_with_the_other_settings(model: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(model=model, budget=2)
    assert "--budget / STREAMER_BUDGET" in str(caught.value)  # every problem at once


def test_good_model_specs_pass_the_settings_check() -> None:
    for spec in ("StandardScaler | LogisticRegression(l2=0.001)", "tree.HoeffdingTreeClassifier"):
        assert load_settings(model=spec).model == spec


def test_a_torch_spec_passes_with_torch_and_says_how_to_install_it_without() -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        assert load_settings(model="torch:linear(heads=2)").model == "torch:linear(heads=2)"
    else:
        with pytest.raises(ConfigError, match=r"pip install 'streamer\[torch\]'"):
            load_settings(model="torch:linear(heads=2)")


def test_streamer_run_with_an_unknown_model_exits_2_before_it_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streamer.cli import main

    assert main(["run", "--model", "NoSuchModel", "--bootstrap-servers", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "unknown river estimator 'NoSuchModel'" in err and "starting with" not in err


def test_the_default_promise_has_a_warm_up_and_the_window_promise_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamer.core.budget import DEFAULT_WARMUP_LABELS
    from streamer.models import DEFAULT_MODEL

    s = load_settings()
    assert DEFAULT_MODEL == "auto" and (s.model or DEFAULT_MODEL) == "auto"
    assert s.warmup == DEFAULT_WARMUP_LABELS > 0 and not s.window_promise
    assert s.public()["warmup_labels"] == DEFAULT_WARMUP_LABELS  # /status shows what runs
    assert load_settings(warmup_labels=0).warmup == 0
    windowed = load_settings(budget_window=5_000)  # asking for the window promise ...
    assert windowed.window_promise and windowed.warmup == 0  # ... turns the warm-up off
    monkeypatch.setenv("STREAMER_BUDGET_WINDOW", "2000")  # from the environment as well
    assert load_settings().warmup == 0


def test_a_warm_up_with_the_window_promise_says_why_they_conflict() -> None:
    with pytest.raises(ConfigError, match="do not go together: a warm-up spends ahead"):
        load_settings(budget_window=5_000, warmup_labels=20)
