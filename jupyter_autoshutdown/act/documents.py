"""Documents with unsaved changes in open pages, as the pages report them, and the save barrier
the app action passes before it stops the server those pages talk to.

A page of this project's front end reports what it holds unsaved (``POST
autoshutdown/api/documents``) when that changes, and at least once a minute while it holds any.
When the app action is due and a live page holds unsaved documents, the runner asks every page to
save (a ``save_request`` event on the server's event stream, which hidden tabs receive too) and
waits: for each such page's answer, at most ``ANSWER_SECONDS``, and for documents that cannot be
saved (read-only, a conflict, an error) at most ``unsaved_grace_minutes`` from when the action
was due. Then it runs: the bill is stopped either way. Pages also save when the app action's
warning comes, so the barrier rarely has anything left to wait for.

Saves made on auto-shutdown's behalf are announced first (``saving``) and do not count as a
person's activity (activity.PeopleActivity.excuse_saves): they never postpone the action.

Reading never changes anything here: a page that stopped reporting is left out of readings once
its report is older than ``PAGE_TTL_SECONDS``, and removed at the next report of any page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..core.telemetry import Events

#: A page holding unsaved documents reports at least every 60 s (hidden tabs' timers run about
#: once a minute); a report older than this is a page that has gone.
PAGE_TTL_SECONDS = 180.0
#: How long the app action waits for a page to answer a save request (saving takes a second).
ANSWER_SECONDS = 20.0
#: Limits on one report, so that a page cannot make the server hold much.
MAX_PATHS = 500
MAX_TEXT = 1024


@dataclass(frozen=True)
class Unsavable:
    path: str
    reason: str


@dataclass(frozen=True)
class PageReport:
    page: str
    at: datetime
    unsaved: tuple[str, ...]
    unsavable: tuple[Unsavable, ...]

    @property
    def holds_unsaved(self) -> bool:
        return bool(self.unsaved or self.unsavable)


@dataclass(frozen=True)
class SaveRecord:
    """Documents a page saved on auto-shutdown's behalf, and those it could not save."""

    at: datetime
    page: str
    saved: tuple[str, ...]
    failed: tuple[Unsavable, ...]


@dataclass(frozen=True)
class Barrier:
    """What the save barrier says now: run, or wait until `until`, and for what."""

    run: bool
    until: datetime | None = None
    waiting_for: tuple[str, ...] = ()
    not_saved: tuple[str, ...] = ()


class OpenDocuments:
    def __init__(self, *, clock: Callable[[], datetime], log: logging.Logger,
                 events: Events | None = None) -> None:
        self.clock = clock
        self.log = log
        self.events = events
        self.pages: dict[str, PageReport] = {}
        self.save_requested_at: datetime | None = None
        self.last_save: SaveRecord | None = None
        #: Grows with every report: a barrier waiting since an older version looks again.
        self.version = 0
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each report (a barrier waiting for it may now pass)."""
        self._listeners.append(listener)

    def report(self, page: str, unsaved: Sequence[str], unsavable: Sequence[Unsavable],
               saved: Sequence[str] | None = None, closing: bool = False) -> None:
        """A page's documents now: unsaved, unsavable, and (after a round of saving on our behalf,
        else None) what it saved."""
        now = self.clock()
        cutoff = now - timedelta(seconds=PAGE_TTL_SECONDS)
        for gone in [key for key, held in self.pages.items() if held.at < cutoff]:
            del self.pages[gone]
        if closing:
            self.pages.pop(page, None)
        else:
            self.pages[page] = PageReport(page, now, tuple(unsaved), tuple(unsavable))
        if saved is not None and (saved or unsavable):
            self.last_save = SaveRecord(now, page, tuple(saved), tuple(unsavable))
        if saved:
            self.log.info("auto-shutdown: a page saved %s before the app action", ", ".join(saved))
        self.version += 1
        for listener in self._listeners:
            listener()

    def live(self, now: datetime) -> list[PageReport]:
        """The pages heard from lately that hold unsaved documents."""
        cutoff = now - timedelta(seconds=PAGE_TTL_SECONDS)
        return [held for held in self.pages.values() if held.at >= cutoff and held.holds_unsaved]

    def unsaved(self, now: datetime) -> tuple[list[str], list[Unsavable]]:
        live = self.live(now)
        return ([path for held in live for path in held.unsaved],
                [item for held in live for item in held.unsavable])

    def request_save(self, now: datetime, action: str) -> None:
        """Ask every open page to save now (an event on the server's event stream)."""
        self.save_requested_at = now
        if self.events is not None:
            self.events.emit("save_request", "app", action,
                             "open pages save their unsaved documents before the app action runs")

    def barrier(self, now: datetime, due_since: datetime, grace_seconds: float) -> Barrier:
        """Whether the app action, due since `due_since`, may run now (after request_save)."""
        requested = self.save_requested_at
        live = self.live(now)
        if not live or requested is None or grace_seconds <= 0:
            return Barrier(run=True, not_saved=tuple(_paths(live)))
        answer_by = requested + timedelta(seconds=ANSWER_SECONDS)
        grace_ends = due_since + timedelta(seconds=grace_seconds)
        unanswered = [held for held in live if held.at < requested]
        answered = [held for held in live if held.at >= requested]
        waits: list[tuple[datetime, list[PageReport]]] = []
        if unanswered and now < min(answer_by, grace_ends):
            waits.append((min(answer_by, grace_ends), unanswered))
        if answered and now < grace_ends:
            waits.append((grace_ends, answered))
        if not waits:
            return Barrier(run=True, not_saved=tuple(_paths(live)))
        until = min(when for when, _ in waits)
        return Barrier(run=False, until=until, waiting_for=tuple(_paths(
            [held for _, pages in waits for held in pages])))


def _paths(pages: Sequence[PageReport]) -> list[str]:
    return [*(path for held in pages for path in held.unsaved),
            *(item.path for held in pages for item in held.unsavable)]
