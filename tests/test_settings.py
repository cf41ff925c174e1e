"""Unit tests of settings validation, the state file and the precedence rules."""

from __future__ import annotations

import json
import logging
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_autoshutdown.core.settings import (
    MAX_MINUTES,
    Settings,
    SettingsError,
    SettingsStore,
    StateFile,
    parse_minutes,
)

log = logging.getLogger("test")


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_parse_minutes_accepts_exactly_finite_values_in_range(value):
    if math.isfinite(value) and 0 <= value <= MAX_MINUTES:
        assert parse_minutes("x", value) == value
    else:
        with pytest.raises(SettingsError):
            parse_minutes("x", value)


@given(st.one_of(st.booleans(), st.none(), st.text(), st.lists(st.integers()),
                 st.dictionaries(st.text(), st.integers())))
def test_parse_minutes_rejects_non_numbers(value):
    with pytest.raises(SettingsError):
        parse_minutes("x", value)


def test_numeric_strings_only_when_allowed():
    assert parse_minutes("x", " 60 ", allow_numeric_string=True) == 60
    for bad in ("nan", "inf", "-1", "soon", ""):
        with pytest.raises(SettingsError):
            parse_minutes("x", bad, allow_numeric_string=True)
    with pytest.raises(SettingsError):
        parse_minutes("x", "60")


def test_huge_integer_is_rejected_not_overflowing():
    with pytest.raises(SettingsError):
        parse_minutes("x", 10**400)


def test_with_changes_is_all_or_nothing():
    settings = Settings()
    with pytest.raises(SettingsError, match="unknown"):
        settings.with_changes({"idle_timeout_minutes": 5, "bogus": 1})
    with pytest.raises(SettingsError, match="keep_terminals"):
        settings.with_changes({"idle_timeout_minutes": 5, "keep_terminals": "no"})
    assert settings.with_changes({"keep_terminals": True}).keep_terminals is True


def test_state_file_round_trip_and_atomic_replace(tmp_path):
    state = StateFile(tmp_path / "sub" / "state.json", log)
    assert state.read() == {}
    state.write({"settings": {"idle_timeout_minutes": 5}})
    assert state.read()["settings"]["idle_timeout_minutes"] == 5
    assert [p.name for p in state.path.parent.iterdir()] == ["state.json"], "no temp files left"


@pytest.mark.parametrize("content", ["{ not json", "[1, 2]", '"text"', ""])
def test_corrupt_state_file_is_ignored(tmp_path, content, caplog):
    path = tmp_path / "state.json"
    path.write_text(content)
    store = SettingsStore(Settings(idle_timeout_minutes=9), StateFile(path, log), log)
    assert store.current.idle_timeout_minutes == 9


def test_invalid_value_in_state_file_is_ignored(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"settings": {"idle_timeout_minutes": -3}}))
    store = SettingsStore(Settings(idle_timeout_minutes=9), StateFile(path, log), log)
    assert store.current.idle_timeout_minutes == 9


def test_runtime_change_wins_until_the_static_config_changes(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({
        "settings": {"idle_timeout_minutes": 42, "keep_terminals": True},
        "config": {"idle_timeout_minutes": 120, "keep_terminals": False},
    }))
    same_config = SettingsStore(Settings(), StateFile(path, log), log)
    assert same_config.current.idle_timeout_minutes == 42
    assert same_config.current.keep_terminals is True
    new_config = SettingsStore(Settings(idle_timeout_minutes=15), StateFile(path, log), log)
    assert new_config.current.idle_timeout_minutes == 15  # the operator's newer decision
    assert new_config.current.keep_terminals is True  # untouched by the config change


async def test_persist_failure_keeps_the_change_and_reports_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = SettingsStore(Settings(), StateFile(blocker / "state.json", log), log)
    store.apply({"idle_timeout_minutes": 5})
    assert await store.persist() is False
    assert store.current.idle_timeout_minutes == 5
    assert store.last_persist_error


async def test_concurrent_changes_leave_the_newest_value_on_disk(tmp_path):
    import asyncio

    store = SettingsStore(Settings(), StateFile(tmp_path / "state.json", log), log)

    async def change(minutes):
        store.apply({"idle_timeout_minutes": minutes})
        return await store.persist()

    assert all(await asyncio.gather(*(change(m) for m in range(1, 51))))
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["settings"]["idle_timeout_minutes"] == store.current.idle_timeout_minutes == 50
