"""The daily stop time: parse "HH:MM[:SS]" in a time zone, and find the stop instants around now."""

from __future__ import annotations

import re
import time as time_module
from datetime import datetime, time, timedelta, timezone, tzinfo


class ScheduleError(ValueError):
    """A stop time or time zone that cannot be used; the message is safe to show to the user."""

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def parse_stop_time(value: str) -> time | None:
    """A local time of day from "HH:MM" or "HH:MM:SS"; None for "" (no daily stop)."""
    value = value.strip()
    if not value:
        return None
    match = _TIME.match(value)
    if not match:
        raise ScheduleError(f"daily_stop_time must look like 22:00 or 22:00:30, got {value!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return time(hours, minutes, seconds)


class MachineLocalTime(tzinfo):
    """The machine's own time zone with its rules (TZ, /etc/localtime), asked of the C library at
    each instant: a daily stop in local time stays right across a DST change, however long the
    server runs. (``datetime.now().astimezone().tzinfo`` is a fixed offset: an hour off after
    the change.)"""

    _EPOCH = datetime(1970, 1, 1)

    def _local(self, dt: datetime | None) -> time_module.struct_time:
        if dt is None:
            return time_module.localtime()
        # dt's wall time in this zone; mktime resolves it by the rules in force on that day.
        fields = (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.weekday(), 0, -1)
        return time_module.localtime(time_module.mktime(fields))

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(seconds=self._local(dt).tm_gmtoff)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1) if self._local(dt).tm_isdst > 0 else timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return self._local(dt).tm_zone

    def fromutc(self, dt: datetime) -> datetime:
        seconds = (dt.replace(tzinfo=None) - self._EPOCH).total_seconds()
        offset = timedelta(seconds=time_module.localtime(seconds).tm_gmtoff)
        return (dt + offset).replace(tzinfo=self)

    def __repr__(self) -> str:
        return "MachineLocalTime()"


#: The one instance: tzinfo compares by identity, and the rules are the process's.
MACHINE_LOCAL_TIME = MachineLocalTime()


def parse_zone(name: str) -> tzinfo:
    """An IANA time zone ("Europe/Berlin"); "" is the machine's local time zone, with its rules."""
    if not name:
        return MACHINE_LOCAL_TIME
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception as error:  # ZoneInfoNotFoundError, ValueError for malformed keys
        raise ScheduleError(f"unknown time zone {name!r}: {error}") from None


def stops_around(stop: time, zone: tzinfo, now: datetime) -> tuple[datetime, datetime]:
    """(the latest stop instant at or before `now`, the first one after it), both in UTC.

    Computed on local calendar days, so a stop at 22:00 stays at 22:00 across DST changes.
    """
    local_now = now.astimezone(zone)
    candidates = []
    for day_offset in (-1, 0, 1):
        day = local_now.date() + timedelta(days=day_offset)
        candidates.append(datetime.combine(day, stop, tzinfo=zone).astimezone(timezone.utc))
    last = max(instant for instant in candidates if instant <= now)
    following = min(instant for instant in candidates if instant > now)
    return last, following
