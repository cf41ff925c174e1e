"""The JSON models the handlers send: settings, keep-alives, the compat GET, and `status`.

Built from the service: settings, keep-alives, the monitor's latest published result and a fresh
reading of the managers (in memory: no I/O). Building a model changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .._version import __version__
from ..core.records import TERMINAL_PREFIX, KernelInfo, terminal_key
from ..core.settings import DAILY_STOP_FIELDS, Settings, SettingsStore
from ..decide.policy import Verdict
from ..observe.exemptions import OPT_OUT_REFUSED
from .service import Service


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds_until(deadline: datetime | None, now: datetime) -> float | None:
    if deadline is None:
        return None
    return round(max(0.0, (deadline - now).total_seconds()), 3)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def settings_model(service: Service, settings: Settings | None = None) -> dict[str, Any]:
    """The settings in force (`settings`: the value a caller already read) and the operator's."""
    store, monitor = service.store, service.monitor
    settings = settings or store.current
    return {
        **settings.runtime_values(),
        "idle_timeout_seconds": settings.idle_timeout_seconds,
        "starting_timeout_minutes": settings.starting_timeout_minutes,
        "max_check_interval_seconds": monitor.options.max_check_interval_seconds,
        "app_action": monitor.app.name,
        "state_file": str(store.state_file.path) if store.state_file else None,
        "idle_type": settings.idle_type,
        "warning_minutes": settings.warning_minutes,
        "warning_seconds": settings.warning_seconds,
        "dry_run": monitor.options.dry_run,
        "utilization_aware": service.utilization_aware,
        "daily_stop_time": settings.daily_stop_time or None,
        "daily_stop_timezone": settings.daily_stop_timezone or None,
        "daily_stop": daily_stop_model(store, settings),
        "unsaved_grace_minutes": settings.unsaved_grace_minutes,
        "max_keep_alive_minutes": service.keep_alives.max_minutes,
        **store.limits.as_model(),
        "server_activity": service.server_activity,
        "activity_paths": list(service.activity_paths),
    }


def daily_stop_model(store: SettingsStore, settings: Settings) -> dict[str, Any]:
    """The daily stop in force, who set it, and the operator's, to go back to."""
    operator = store.configured
    user = any(store.set_by(field) == "user" for field in DAILY_STOP_FIELDS)
    return {
        "time": settings.daily_stop_time or None,
        "timezone": settings.daily_stop_timezone or None,
        "label": settings.daily_stop.label if settings.daily_stop else None,
        "set_by": "user" if user else "operator",
        "operator_time": operator.daily_stop_time or None,
        "operator_timezone": operator.daily_stop_timezone or None,
        "user_may_change": store.limits.allow_user_daily_stop,
    }


def documents_model(service: Service, settings: Settings | None = None) -> dict[str, Any]:
    """What open pages hold unsaved, and the save barrier before the app action (act/documents.py)."""
    documents = service.documents
    now = service.now()
    waiting_until, waiting_for = service.save_wait(now)
    unsaved, unsavable = documents.unsaved(now)
    last = documents.last_save
    return {
        "unsaved": unsaved,
        "unsavable": [{"path": item.path, "reason": item.reason} for item in unsavable],
        "save_requested_at": iso(documents.save_requested_at),
        "waiting_until": iso(waiting_until),
        "waiting_for": list(waiting_for),
        "grace_minutes": (settings or service.store.current).unsaved_grace_minutes,
        "last_save": None if last is None else {
            "at": iso(last.at), "saved": list(last.saved),
            "failed": [{"path": item.path, "reason": item.reason} for item in last.failed],
        },
    }


def keep_alive_model(service: Service) -> dict[str, Any]:
    keep_alives = service.keep_alives
    now = service.now()
    kept = keep_alives.in_force(now)
    return {
        "keep_alive_until": iso(keep_alives.global_until(now)),
        "max_minutes": keep_alives.max_minutes,
        "kernels": {key: iso(at) for key, at in kept.items() if not key.startswith(TERMINAL_PREFIX)},
        "terminals": {key[len(TERMINAL_PREFIX):]: iso(at) for key, at in kept.items()
                      if key.startswith(TERMINAL_PREFIX)},
    }


def compat_model(service: Service) -> dict[str, Any]:
    """The original extension's GET fields (idle_time in seconds), and a few more."""
    settings, monitor = service.store.current, service.monitor
    return {
        "idle_time": round(settings.idle_timeout_seconds),
        "keep_terminals": settings.keep_terminals,
        "count": monitor.count,
        "idle_timeout_minutes": settings.idle_timeout_minutes,
        "last_check": iso(monitor.last_check),
        "running": monitor.running,
        **({"message": service.refusal} if service.refusal else {}),
    }


def status_model(service: Service) -> dict[str, Any]:
    """The check loop's state (its last published pass) and every resource's verdict now, from a
    fresh read-only reading decided by the pure policy: a pass runs only at deadlines, so the
    last pass's countdowns would not show a kernel used since. Building it changes nothing."""
    monitor = service.monitor
    now = service.now()
    settings = service.store.current
    snapshot, plan = service.explain(now, settings)
    by_id = {kernel.id: kernel for kernel in map(KernelInfo._make, snapshot.kernels)}
    warning = timedelta(seconds=settings.warning_seconds)
    usage_by_key = service.usage()

    def timing(verdict: Verdict, key: str) -> dict[str, Any]:
        failure = monitor.failure_of(verdict.kind, verdict.id)
        usage = usage_by_key.get(key)
        return {
            "idle_seconds": _round(verdict.idle_seconds),
            "seconds_until_shutdown": _seconds_until(verdict.deadline, now),
            "shutdown_at": iso(verdict.deadline),
            "warning_at": iso(verdict.deadline - warning)
            if verdict.deadline is not None and warning else None,
            "reason": verdict.reason,
            "failed_attempts": failure.attempts if failure else 0,
            "retry_at": iso(failure.retry_at) if failure else None,
            "usage": None if usage is None else {
                "cpu_percent": round(usage.cpu_percent, 1),
                "gpu_percent": None if usage.gpu_percent is None else round(usage.gpu_percent, 1),
                "processes": usage.processes,
                "summary": usage.describe(),
            },
        }

    refused = service.opt_outs_refused
    kept = snapshot.kept_until
    kernels = []
    for verdict in plan.kernels:
        kernel = by_id[verdict.id]
        row = {
            "id": kernel.id,
            "name": kernel.name,
            "execution_state": kernel.execution_state,
            "connections": kernel.connections,
            "last_activity": iso(kernel.last_activity),
            "exempt": verdict.id in snapshot.exempt,
            "keep_alive_until": iso(kept.get(verdict.id)),
            **timing(verdict, verdict.id),
        }
        if verdict.id in refused:
            row["reason"] = f"{verdict.reason}; {OPT_OUT_REFUSED}"
            row["opt_out_refused"] = True
        kernels.append(row)
    terminals = [{"name": verdict.id, "keep_alive_until": iso(kept.get(terminal_key(verdict.id))),
                  **timing(verdict, terminal_key(verdict.id))} for verdict in plan.terminals]
    last_check = monitor.last_check
    app, app_failure = monitor.app, monitor.failure_of("app", "")
    return {
        "count": monitor.count,
        "version": __version__,
        "running": monitor.running,
        **({"message": service.refusal} if service.refusal else {}),
        "now": now.isoformat(),
        "started_at": monitor.started_at.isoformat(),
        "last_check": iso(last_check),
        "last_check_seconds_ago": _round((now - last_check).total_seconds()) if last_check else None,
        "next_check": iso(monitor.next_check),
        "errors": list(monitor.errors),
        "persist_error": service.store.last_persist_error,
        "settings": settings_model(service, settings),
        "dry_run": monitor.options.dry_run,
        "dry_run_reports": service.dry_run_reports,
        "keep_alive_until": iso(snapshot.keep_alive_until),
        "next_daily_stop": iso(snapshot.stop_next),
        "kernels": kernels,
        "terminals": terminals,
        "activity_sources": _activity_sources(service),
        "activity_file": _activity_file(service),
        "hub_activity": _hub_activity(service),
        "documents": documents_model(service, settings),
        "app": {
            "action": app.name,
            "own_schedule": app.own_schedule(),
            "description": app.description(),
            "last_activity": snapshot.last_activity()[0].isoformat(),
            "last_activity_source": snapshot.last_activity()[1],
            "requests_in_flight": list(snapshot.requests_in_flight),
            "idle_seconds": _round(plan.app.idle_seconds),
            "seconds_until_action": _seconds_until(plan.app.deadline, now),
            "action_at": iso(plan.app.deadline),
            "reason": plan.app.reason,
            "last_run_at": iso(app.fired_at),
            "last_result": app.last_result,
            "last_error": app.last_error,
            "failed_attempts": app_failure.attempts if app_failure else 0,
            "retry_at": iso(app_failure.retry_at) if app_failure else None,
        },
    }


def _activity_sources(service: Service) -> list[dict[str, Any]]:
    """Each activity source and the latest activity it reports (observe/sources.py)."""
    sources = service.activity_sources
    return [{"name": name, "last_activity": iso(activity.when) if activity else None,
             "label": activity.label if activity else None, "error": sources.failing.get(name)}
            for name, activity in sources.each()]


def _activity_file(service: Service) -> dict[str, Any] | None:
    """What the platform's activity file (act/studio_signal.py) was last given, if one is kept."""
    writer = service.activity_file
    if writer is None:
        return None
    last = writer.last
    return {
        "path": str(writer.path),
        "written_at": iso(last.at) if last else None,
        "value": iso(last.value) if last else None,
        "held_by": last.held_by if last else None,
        "error": last.error if last else None,
    }


def _hub_activity(service: Service) -> dict[str, Any] | None:
    """What the hub (act/hub_signal.py) was last told, if this server reports to one."""
    reporter = service.hub_activity
    if reporter is None:
        return None
    last = reporter.last
    return {
        "url": reporter.url,
        "refresh_seconds": reporter.refresh_seconds,
        "posted_at": iso(last.at) if last else None,
        "value": iso(reporter.accepted),
        "held_by": last.held_by if last else None,
        "error": last.error if last else None,
        "requests": reporter.posts,
    }
