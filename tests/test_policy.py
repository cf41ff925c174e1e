"""Unit and property-based tests of the pure policy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from jupyter_autoshutdown.core.records import KernelInfo, Snapshot, TerminalInfo
from jupyter_autoshutdown.core.settings import Settings
from jupyter_autoshutdown.decide.policy import AppState, decide, explain, kernel_verdict

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
STATES = ["idle", "busy", "starting", "dead", "unknown"]

offsets = st.floats(min_value=-7200, max_value=7200, allow_nan=False)
kernels = st.builds(
    KernelInfo,
    id=st.uuids().map(str),
    name=st.just("python3"),
    execution_state=st.sampled_from(STATES),
    last_activity=st.one_of(st.none(), offsets.map(lambda s: NOW - timedelta(seconds=s))),
    connections=st.integers(min_value=0, max_value=3),
)
terminals = st.builds(
    TerminalInfo,
    name=st.integers(min_value=1, max_value=999).map(str),
    last_activity=st.one_of(st.none(), offsets.map(lambda s: NOW - timedelta(seconds=s))),
)
settings_strategy = st.builds(
    Settings,
    idle_timeout_minutes=st.sampled_from([0.0, 0.05, 1.0, 30.0, 120.0]),
    keep_terminals=st.booleans(),
    cull_busy=st.booleans(),
    cull_connected=st.booleans(),
    starting_timeout_minutes=st.sampled_from([0.0, 0.05, 30.0]),
    idle_type=st.sampled_from(["kernels_or_terminals", "kernel_connections", "activity"]),
    warning_minutes=st.sampled_from([0.0, 0.5, 5.0]),
)
past = offsets.map(lambda s: NOW - timedelta(seconds=abs(s)))


@st.composite
def snapshots(draw):
    """Snapshots with every signal: CPU/GPU activity, exemptions, a daily stop, a keep-alive."""
    kernel_list = draw(st.lists(kernels, max_size=6, unique_by=lambda k: k.id).map(tuple))
    terminal_list = draw(st.lists(terminals, max_size=4, unique_by=lambda t: t.name).map(tuple))
    keys = [k.id for k in kernel_list] + ["t:" + t.name for t in terminal_list]
    active_at = {key: draw(past) for key in keys if draw(st.booleans())} if draw(st.booleans()) else {}
    exempt = {k.id: "exempt: test" for k in kernel_list if draw(st.booleans())} if draw(
        st.booleans()) else {}
    stop_last = stop_next = None
    if draw(st.booleans()):
        stop_last = NOW - timedelta(seconds=draw(st.floats(min_value=0, max_value=86399)))
        stop_next = stop_last + timedelta(days=1)
    keep_alive = draw(st.one_of(st.none(), offsets.map(lambda s: NOW + timedelta(seconds=s))))
    return Snapshot(
        kernels=kernel_list, terminals=terminal_list, server_last_activity=draw(past),
        active_at=active_at, exempt=exempt, stop_last=stop_last, stop_next=stop_next,
        stop_label="22:00 UTC" if stop_next else "", keep_alive_until=keep_alive,
        requests_in_flight=draw(st.sampled_from([(), ("POST api/kernels",)])),
    )


snapshots = snapshots()
app_states = st.builds(
    AppState,
    action=st.sampled_from(["none", "server"]),
    empty_since=st.one_of(st.none(), offsets.map(lambda s: NOW - timedelta(seconds=abs(s)))),
    fired_at=st.one_of(st.none(), offsets.map(lambda s: NOW - timedelta(seconds=abs(s)))),
    own_schedule=st.sampled_from([None, None, "Studio Classic: apps follow their kernels"]),
    own_run_at=st.one_of(st.none(), offsets.map(lambda s: NOW + timedelta(seconds=s))),
    not_before=st.one_of(st.none(), offsets.map(lambda s: NOW + timedelta(seconds=s))),
)


@given(snapshots, settings_strategy, app_states)
def test_invariants_of_every_plan(snapshot, settings, app):
    plan = decide(snapshot, settings, NOW, app)
    explanation = explain(snapshot, settings, NOW, app)
    by_id = {k.id: k for k in snapshot.kernels}
    if not settings.enabled:
        assert not plan.kernels_to_cull and not plan.terminals_to_cull and not plan.app.due
        assert plan.next_deadline is None
    shortest = timedelta(seconds=min(
        settings.idle_timeout_seconds, settings.starting_timeout_seconds or settings.idle_timeout_seconds
    ))
    keep_alive = snapshot.keep_alive_until
    for verdict in (*plan.kernels_to_cull, *plan.terminals_to_cull):
        # A keep-alive holds everything until it ends.
        assert keep_alive is None or keep_alive <= NOW
        key = verdict.id if verdict.kind == "kernel" else "t:" + verdict.id
        record = by_id[verdict.id] if verdict.kind == "kernel" else next(
            t for t in snapshot.terminals if t.name == verdict.id)
        latest = max(
            [record.last_activity, snapshot.active_at.get(key, record.last_activity)]
            + ([snapshot.server_last_activity] if settings.idle_type == "activity" else [])
        )
        # Idle for the timeout since its latest activity of any kind, or a daily stop came since.
        assert NOW - latest >= shortest or (
            snapshot.stop_last is not None and latest < snapshot.stop_last
        ), (verdict, latest)
    for verdict in plan.kernels_to_cull:
        kernel = by_id[verdict.id]
        # Never lose work: a busy kernel is culled only when cull_busy says so.
        assert kernel.execution_state != "busy" or settings.cull_busy
        assert kernel.connections == 0 or (
            settings.cull_connected and settings.idle_type != "kernel_connections"
        )
        assert kernel.last_activity is not None
        assert verdict.id not in snapshot.exempt
    warning = timedelta(seconds=settings.warning_seconds)
    for verdict in plan.warnings:
        assert not verdict.due and NOW < verdict.deadline <= NOW + warning
    if plan.next_warning is not None:
        assert plan.next_warning > NOW
    if plan.terminals_to_cull:
        assert not snapshot.kernels and not settings.keep_terminals
    if plan.app.due:
        # Never under a kernel, session or terminal start still in flight, whatever the schedule.
        assert not snapshot.requests_in_flight and not snapshot.errors and app.action != "none"
        if app.own_schedule is None:
            assert not snapshot.kernels and not snapshot.terminals
            assert app.fired_at is None or app.fired_at < snapshot.server_last_activity or (
                app.empty_since is not None and app.fired_at < app.empty_since
            )
        else:
            # Its own schedule: at the time it asked for, and never during a keep-alive.
            assert app.own_run_at is not None and app.own_run_at <= NOW
            assert keep_alive is None or keep_alive <= NOW
    if app.own_schedule is not None:
        assert not any(v.kind == "app" for v in plan.warnings)
    # decide (what the monitor acts on) and explain (what status shows) always agree.
    assert plan.kernels_to_cull == tuple(v for v in explanation.kernels if v.due)
    assert plan.terminals_to_cull == tuple(v for v in explanation.terminals if v.due)
    assert plan.next_deadline == explanation.next_deadline
    assert plan.app == explanation.app
    # The next wake-up is the earliest deadline still ahead; due items are not in it.
    future = [v.deadline for v in (*explanation.kernels, *explanation.terminals)
              if v.deadline and v.deadline > NOW]
    if plan.app.deadline and plan.app.deadline > NOW:
        future.append(plan.app.deadline)
    assert plan.next_deadline == (min(future) if future else None)
    for verdict in (*explanation.kernels, *explanation.terminals):
        assert verdict.due == (verdict.deadline is not None and verdict.deadline <= NOW)
        assert verdict.reason


@given(offsets, st.sampled_from(["idle", "dead", "unknown"]))
def test_an_idle_kernel_is_due_exactly_at_its_deadline(offset, state):
    settings = Settings(idle_timeout_minutes=1.0)
    kernel = KernelInfo("k", "python3", state, NOW - timedelta(seconds=offset), 0)
    verdict = kernel_verdict(kernel, settings, NOW)
    assert verdict.deadline == kernel.last_activity + timedelta(seconds=60)
    assert verdict.due == (offset >= 60)


def test_busy_kernel_is_never_scheduled_unless_cull_busy():
    kernel = KernelInfo("k", "python3", "busy", NOW - timedelta(days=3), 0)
    spared = kernel_verdict(kernel, Settings(idle_timeout_minutes=1.0), NOW)
    assert not spared.due and spared.deadline is None and "busy" in spared.reason
    culled = kernel_verdict(kernel, Settings(idle_timeout_minutes=1.0, cull_busy=True), NOW)
    assert culled.due


def test_connected_kernel_is_kept_only_when_cull_connected_is_off():
    kernel = KernelInfo("k", "python3", "idle", NOW - timedelta(hours=3), 2)
    assert kernel_verdict(kernel, Settings(), NOW).due
    kept = kernel_verdict(kernel, Settings(cull_connected=False), NOW)
    assert not kept.due and "2 open connection" in kept.reason


def test_starting_kernel_uses_the_shorter_starting_timeout():
    kernel = KernelInfo("k", "python3", "starting", NOW - timedelta(minutes=31), 0)
    assert kernel_verdict(kernel, Settings(idle_timeout_minutes=120, starting_timeout_minutes=30), NOW).due
    assert not kernel_verdict(kernel, Settings(idle_timeout_minutes=120, starting_timeout_minutes=0), NOW).due


def test_app_idle_period_starts_when_the_last_resource_went_away():
    snapshot = Snapshot((), (), server_last_activity=NOW - timedelta(hours=5))
    settings = Settings(idle_timeout_minutes=60)
    gone_recently = AppState("server", empty_since=NOW - timedelta(minutes=10))
    plan = decide(snapshot, settings, NOW, gone_recently)
    assert not plan.app.due
    assert plan.app.deadline == NOW + timedelta(minutes=50)
    assert plan.next_deadline == plan.app.deadline
    long_gone = AppState("server", empty_since=NOW - timedelta(minutes=61))
    assert decide(snapshot, settings, NOW, long_gone).app.due


def test_app_action_runs_once_per_idle_period():
    snapshot = Snapshot((), (), server_last_activity=NOW - timedelta(hours=5))
    settings = Settings(idle_timeout_minutes=60)
    fired = AppState("server", empty_since=NOW - timedelta(hours=4), fired_at=NOW - timedelta(hours=3))
    assert not decide(snapshot, settings, NOW, fired).app.due
    # New activity after it ran starts a new idle period.
    active_again = Snapshot((), (), server_last_activity=NOW - timedelta(hours=2))
    assert decide(active_again, settings, NOW, fired).app.due


def test_terminals_wait_for_kernels_and_respect_keep_terminals():
    old = NOW - timedelta(hours=3)
    terminal = TerminalInfo("1", old)
    kernel = KernelInfo("k", "python3", "busy", old, 0)
    settings = Settings(idle_timeout_minutes=60)
    with_kernel = decide(Snapshot((kernel,), (terminal,), old), settings, NOW, AppState("none"))
    assert not with_kernel.terminals_to_cull
    alone = decide(Snapshot((), (terminal,), old), settings, NOW, AppState("none"))
    assert [v.id for v in alone.terminals_to_cull] == ["1"]
    kept = decide(Snapshot((), (terminal,), old), Settings(idle_timeout_minutes=60, keep_terminals=True),
                  NOW, AppState("server"))
    assert not kept.terminals_to_cull and not kept.app.due


@given(snapshots, settings_strategy, app_states)
def test_an_incomplete_reading_never_empties_the_server(snapshot, settings, app):
    """When a manager could not be read, kernels may be hidden: keep terminals, hold the app."""
    unreadable = Snapshot(snapshot.kernels, snapshot.terminals, snapshot.server_last_activity,
                          errors=("reading the kernel list failed",))
    plan = decide(unreadable, settings, NOW, app)
    assert not plan.terminals_to_cull
    assert not plan.app.due


def test_kernel_gateway_apps_follow_their_own_kernels():
    """Studio Classic's rule, pure: an app is deleted once it has had no kernel for the timeout,
    never this server's own app, never one in use, never twice while nothing changed."""
    from jupyter_autoshutdown.decide.policy import GatewayApps, gateway_app_deleted, kernel_gateway_apps

    t0 = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    apps = [("gw-idle", "KernelGateway", "InService", t0 - timedelta(hours=1)),
            ("gw-busy", "KernelGateway", "InService", t0 - timedelta(hours=1)),
            ("gw-pending", "KernelGateway", "Pending", t0 - timedelta(hours=1)),
            ("default", "KernelGateway", "InService", t0 - timedelta(hours=1)),
            ("js", "JupyterServer", "InService", t0 - timedelta(hours=1))]
    first = kernel_gateway_apps(apps, {"gw-busy"}, "default", GatewayApps(), t0, 600)
    # Idle since this server's first look (not its creation an hour ago): kept for the timeout.
    assert first.delete == () and first.waits == (600.0,)
    assert "gw-busy (in use)" in first.kept
    later = kernel_gateway_apps(apps, {"gw-busy"}, "default", first.state, t0 + timedelta(seconds=600), 600)
    assert later.delete == ("gw-idle",)
    state = gateway_app_deleted(later.state, "gw-idle")
    again = kernel_gateway_apps(apps, set(), "default", state, t0 + timedelta(seconds=700), 600)
    assert "gw-idle" not in again.delete
    # gw-busy was seen in use: its idle time starts now that its kernels are gone.
    assert again.delete == () and "gw-busy" in again.kept[0]


def test_each_verdict_carries_its_cause():
    """Metrics and events use the cause on the verdict, not the reason's words."""
    from jupyter_autoshutdown.decide.policy import Cause

    settings = Settings(idle_timeout_minutes=1.0, starting_timeout_minutes=0.5, cull_busy=True)
    old = NOW - timedelta(hours=1)
    snapshot = Snapshot(
        kernels=(KernelInfo("s", "python3", "starting", old, 0), KernelInfo("i", "python3", "idle", old, 0),
                 KernelInfo("b", "python3", "busy", old, 0)),
        terminals=(), server_last_activity=old,
    )
    plan = decide(snapshot, settings, NOW, AppState("none"))
    causes = {verdict.id: verdict.cause for verdict in plan.kernels_to_cull}
    assert causes == {"s": Cause.STARTING, "i": Cause.IDLE, "b": Cause.BUSY}
    recent = NOW - timedelta(seconds=10)  # active before the stop time, which came first
    stopped = Snapshot(kernels=(KernelInfo("i", "python3", "idle", recent, 0),), terminals=(),
                       server_last_activity=old, stop_last=NOW - timedelta(seconds=1),
                       stop_next=NOW + timedelta(days=1), stop_label="12:00 UTC")
    (verdict,) = decide(stopped, settings, NOW, AppState("none")).kernels_to_cull
    assert verdict.cause is Cause.DAILY_STOP
    assert kernel_verdict(stopped.kernels[0], settings, NOW, stopped).cause is Cause.DAILY_STOP


# ---- app_activity: what Studio's activity file is given (act/studio_signal.py) -------------------


def test_app_activity_is_the_latest_activity_or_now_while_something_holds_the_app():
    from jupyter_autoshutdown.decide.policy import app_activity

    start = NOW - timedelta(hours=2)
    idle = KernelInfo("k-idle", "python3", "idle", NOW - timedelta(minutes=30), 0)
    terminal = TerminalInfo("1", NOW - timedelta(minutes=10))
    base = Snapshot((idle,), (terminal,), server_last_activity=start)
    settings = Settings()
    # Nothing holds: the latest of people, kernels and terminals (and CPU/GPU use).
    assert app_activity(base, settings, NOW) == (NOW - timedelta(minutes=10), "")
    used = Snapshot((idle,), (terminal,), server_last_activity=start,
                    active_at={"k-idle": NOW - timedelta(minutes=1)})
    assert app_activity(used, settings, NOW).last_active == NOW - timedelta(minutes=1)
    # A running request (a silent cell), an exemption, a keep-alive, a write in flight: now.
    busy = KernelInfo("k-busy", "python3", "busy", NOW - timedelta(hours=1), 0)
    held = app_activity(Snapshot((idle, busy), (), server_last_activity=start), settings, NOW)
    assert held == (NOW, "kernel k-busy is running code")
    assert app_activity(Snapshot((idle, busy), (), server_last_activity=start),
                        Settings(cull_busy=True), NOW).held_by == ""  # culled anyway: not held
    exempt = Snapshot((idle,), (), server_last_activity=start, exempt={"k-idle": "exempt by name"})
    assert app_activity(exempt, settings, NOW).held_by.startswith("kernel k-idle is exempt")
    kept = Snapshot((), (), server_last_activity=start, keep_alive_until=NOW + timedelta(minutes=5))
    assert app_activity(kept, settings, NOW).last_active == NOW
    expired = Snapshot((), (), server_last_activity=start, keep_alive_until=NOW - timedelta(minutes=5))
    assert app_activity(expired, settings, NOW) == (start, "")
    one_kept = Snapshot((), (terminal,), server_last_activity=start,
                        kept_until={"t:1": NOW + timedelta(minutes=5)})
    assert "t:1 kept alive" in app_activity(one_kept, settings, NOW).held_by
    writing = Snapshot((), (), server_last_activity=start, requests_in_flight=("POST api/kernels",))
    assert app_activity(writing, settings, NOW).held_by == "waiting for POST api/kernels to be answered"
    # Never later than now (a clock a little ahead in a record).
    ahead = Snapshot((), (TerminalInfo("2", NOW + timedelta(seconds=3)),), server_last_activity=start)
    assert app_activity(ahead, settings, NOW).last_active == NOW


@given(snapshots, settings_strategy)
def test_app_activity_is_never_after_now_and_now_exactly_when_held(snapshot, settings):
    from jupyter_autoshutdown.decide.policy import app_activity

    activity = app_activity(snapshot, settings, NOW)
    assert activity.last_active <= NOW
    if activity.held_by:
        assert activity.last_active == NOW
