"""Cron schedules as Pachyderm reads them (robfig/cron's standard parser with descriptors): five
fields (minute hour day month weekday) or six (seconds first), `@every <duration>` (a fixed period
counted from the previous tick), the descriptors `@yearly` ... `@hourly`, and `@never`.

Used by cron inputs (`dataver.pipelines.cron`) and by branch triggers' `cron_spec`. The field
syntax itself is cronsim's (imported only when a field schedule is read).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
SPANS = (1, 60, 3600, 86400, 32 * 86400, 366 * 86400, 8 * 366 * 86400)
"""Seconds back from now that `latest_due` looks for the newest tick, nearest first: a schedule
that ticked within a span has few ticks in it to step over."""
MAX_PERIOD = 100 * 366 * 86400.0
"""The longest @every period taken (a century): longer ones are not a schedule anyone means."""


@dataclass(frozen=True)
class Schedule:
    """One parsed cron spec. `fields` is a cron expression, `every` a period in seconds; neither
    means @never."""

    text: str
    fields: str = ""
    every: float = 0.0

    def next_after(self, moment: datetime) -> datetime | None:
        """The first tick strictly after `moment` (timezone-aware), or None if there is none (or
        it would fall past the year 9999)."""
        if not (self.every or self.fields):
            return None
        try:
            if self.every:
                return moment.replace(microsecond=0) + timedelta(seconds=self.every)
            from cronsim import CronSim

            return next(CronSim(self.fields, moment))
        except (StopIteration, OverflowError, ValueError):
            return None

    def latest_due(self, after: datetime, now: datetime) -> datetime | None:
        """The newest tick in (after, now], or None if none is due yet. Ticks missed while nobody
        watched (the daemon was off) are not made one by one: the newest stands for them, found
        by looking back from now (never by stepping through years of missed ticks)."""
        due = self.next_after(after)
        if due is None or due > now:
            return None
        if self.every:  # jump straight to the newest period boundary
            periods = int((now - due).total_seconds() // self.every)
            return due + timedelta(seconds=periods * self.every)
        for span in SPANS:
            start = max(after, now - timedelta(seconds=span))
            found = self.next_after(start)
            if found is not None and found <= now:
                while (following := self.next_after(found)) is not None and following <= now:
                    found = following
                return found
        return due


def _period(text: str) -> float:
    """A Go duration as @every takes it ('10s', '1h30m', '500ms'): seconds, at least one."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"@every {text!r}: give a duration such as 10s, 5m or 1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 1:
        raise ValueError(f"@every {text}: the period must be at least 1s")
    if seconds > MAX_PERIOD:
        raise ValueError(f"@every {text}: the period must be at most a century")
    return seconds


def parse_schedule(text: str) -> Schedule:
    """A cron spec, or a ValueError saying what is wrong with it and what forms are taken."""
    spec = text.strip()
    if spec == "@never":
        return Schedule(spec)
    if spec.startswith("@every"):
        return Schedule(spec, every=_period(spec.removeprefix("@every").strip()))
    fields = DESCRIPTORS.get(spec, spec)
    if spec.startswith("@") and spec not in DESCRIPTORS:
        raise ValueError(
            f"{spec!r} is not a cron descriptor: use @every <duration>, {', '.join(DESCRIPTORS)} or @never"
        )
    if len(fields.split()) not in (5, 6):
        raise ValueError(
            f"{spec!r} is not a cron spec: give 5 fields (minute hour day month weekday, e.g. */10 * * * *), "
            "6 with seconds first, or @every 10s"
        )
    from cronsim import CronSim, CronSimError

    try:
        CronSim(fields, datetime.now().astimezone())
    except CronSimError as exc:
        raise ValueError(f"{spec!r} is not a cron spec: {exc}") from None
    return Schedule(spec, fields=fields)
