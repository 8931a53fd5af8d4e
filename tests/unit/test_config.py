"""Settings: bad values are a ConfigError naming the variable, never a pydantic traceback."""

import pytest

from vectorticks.cli import main
from vectorticks.config import Settings
from vectorticks.errors import ConfigError


def test_a_bad_environment_variable_is_named_with_its_value(monkeypatch):
    monkeypatch.setenv("VECTORTICKS_TICK_BATCH_WINDOW_MS", "abc")
    with pytest.raises(ConfigError) as caught:
        Settings()
    message = str(caught.value)
    assert "tick_batch_window_ms (VECTORTICKS_TICK_BATCH_WINDOW_MS)" in message
    assert "valid integer" in message and "(got 'abc')" in message


def test_every_problem_is_reported_in_one_error():
    with pytest.raises(ConfigError) as caught:
        Settings(tick_batch_max_size=0, stream_maxlen=-1)
    message = str(caught.value)
    assert "VECTORTICKS_TICK_BATCH_MAX_SIZE" in message and "(got 0)" in message
    assert "VECTORTICKS_STREAM_MAXLEN" in message and "(got -1)" in message


def test_a_redis_url_is_never_echoed():
    with pytest.raises(ConfigError) as caught:
        Settings(redis_url=["redis://user:s3cret@host:6379/0"])
    assert "VECTORTICKS_REDIS_URL" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_inconsistent_settings_explain_themselves():
    with pytest.raises(ConfigError, match=r"sink 'stream' needs redis_url"):
        Settings(sink="stream")
    assert Settings(sink="memory").sink_kind == "memory"


def test_the_cli_prints_the_error_and_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("VECTORTICKS_SINK", "bogus")
    assert main(["demo", "--seconds", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("demo: invalid settings: sink (VECTORTICKS_SINK)")
    assert "Traceback" not in err
