"""The hub service's pure rules (hub/fleet.py): how it judges a server from its status and the
hub's record, and how it counts the hours idle shutdown saved. The service against a real hub is
tests/test_hub_service.py."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from jupyter_autoshutdown.core.hub_api import HubServer
from jupyter_autoshutdown.hub.fleet import (
    HELD,
    MANAGED,
    NO_EXTENSION,
    Entry,
    Fleet,
    Options,
    Reading,
    Sweep,
    early_stop,
    judge,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
OPTIONS = Options(timeout_seconds=3600.0)


def server(name: str = "alice", *, idle_seconds: float = 7200.0, age_seconds: float = 86400.0) -> HubServer:
    return HubServer(user=name, name="", url=f"/user/{name}/", ready=True, pending=None,
                     last_activity=NOW - timedelta(seconds=idle_seconds),
                     started=NOW - timedelta(seconds=age_seconds), admin=False)


def status(**app: object) -> dict:
    return {"version": "1.0", "running": True, "count": 5,
            "last_check": (NOW - timedelta(seconds=1)).isoformat(), "kernels": [], "terminals": [],
            "app": {"action_at": (NOW + timedelta(minutes=10)).isoformat(), "idle_seconds": 50.0,
                    "reason": "idle", **app}}


def test_a_server_without_the_extension_is_culled_by_the_hub_record_past_the_timeout():
    entry = judge(server(idle_seconds=3700), Reading(code=404, error="HTTP 404"), NOW, OPTIONS)
    assert entry.state == NO_EXTENSION and entry.version == "missing"
    assert entry.cull_reason and "inactive for 3700 s" in entry.cull_reason
    assert judge(server(idle_seconds=3500), Reading(code=404), NOW, OPTIONS).cull_reason is None


def test_a_held_server_is_never_culled_whatever_its_age_and_hub_record():
    busy = status()
    busy["kernels"] = [{"id": "k1", "execution_state": "busy", "shutdown_at": None}]
    entry = judge(server(idle_seconds=10**6, age_seconds=10**7), Reading(status=busy, code=200), NOW,
                  Options(timeout_seconds=60, max_age_seconds=60))
    assert entry.state == HELD and entry.held_by == "kernel k1 is running code"
    assert entry.cull_reason is None


def test_a_managed_server_is_left_to_its_extension_and_a_stale_one_falls_back():
    managed = judge(server(idle_seconds=10**6), Reading(status=status(), code=200), NOW, OPTIONS)
    assert managed.state == MANAGED and managed.cull_reason is None and managed.idle_seconds == 50.0
    stale = status()
    stale["last_check"] = (NOW - timedelta(hours=1)).isoformat()
    entry = judge(server(idle_seconds=10**6), Reading(status=stale, code=200), NOW, OPTIONS)
    assert entry.state == "stale" and entry.cull_reason


def managed_entry(user: str, *, stops_in: float, idle_seconds: float) -> Entry:
    return Entry(user=user, server="", url=f"/user/{user}/", state=MANAGED, version="1.0",
                 idle_seconds=idle_seconds, stops_at=(NOW + timedelta(seconds=stops_in)).isoformat(),
                 stop_reason="idle", held_by=None, hub_last_activity=None, started=None)


def test_an_idle_shutdown_counts_the_hours_before_the_reference_culler_would_have_stopped_it():
    # Idle 10 min at the sweep, stopped by its extension 5 min later (a 15 min timeout): a 60 min
    # culler would have stopped it 45 min later.
    previous = managed_entry("alice", stops_in=300, idle_seconds=600)
    stop = early_stop(previous, NOW, NOW + timedelta(seconds=320), 3600.0)
    assert stop is not None and stop.stopped_at == NOW + timedelta(seconds=300)
    assert stop.early_seconds == 3600 - 900
    # Gone before its deadline: someone else stopped it; nothing is claimed.
    assert early_stop(previous, NOW, NOW + timedelta(seconds=200), 3600.0) is None
    # A stop later than the reference culler's counts nothing.
    late = managed_entry("bob", stops_in=3000, idle_seconds=3000)
    assert early_stop(late, NOW, NOW + timedelta(seconds=3100), 3600.0).early_seconds == 0.0


def test_the_week_of_savings_is_counted_across_sweeps_and_ages_out():
    clock = [NOW]
    fleet = Fleet(api_url="http://hub/hub/api", proxy_url="http://hub", token="t", options=OPTIONS,
                  log=logging.getLogger("test"), clock=lambda: clock[0])
    first = Sweep(started_at=NOW, entries=[managed_entry("alice", stops_in=60, idle_seconds=600),
                                           managed_entry("bob", stops_in=600, idle_seconds=60)])
    fleet._note_stops(first)
    fleet.last = first
    second = Sweep(started_at=NOW + timedelta(seconds=90), entries=[first.entries[1]])
    fleet._note_stops(second)
    fleet.last = second
    clock[0] = NOW + timedelta(seconds=90)
    totals = fleet.summary()["totals"]
    assert totals["idle_stops_this_week"] == 1
    assert totals["server_hours_stopped_early_this_week"] == round((3600 - 660) / 3600, 2)
    assert totals["stopping_within_hour"] == 1  # bob
    # A week on, the next sweep ages it out; reading the summary never does.
    third = Sweep(started_at=NOW + timedelta(days=7, seconds=120), entries=[first.entries[1]])
    clock[0] = third.started_at
    assert fleet.summary()["totals"]["idle_stops_this_week"] == 0
    assert len(fleet.early_stops) == 1
    fleet._note_stops(third)
    assert not fleet.early_stops
