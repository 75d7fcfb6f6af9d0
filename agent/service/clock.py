"""Where "now" comes from: the wall clock, or (test hook) a clock that jumps from slot to slot.

The daemon under :class:`SimulatedClock` runs exactly the production job, only faster than the calendar.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING, Any

from agent.service.slots import close_time, next_slot_after, tz

if TYPE_CHECKING:
    from agent.settings import Settings

__all__ = ["SimulatedClock", "SystemClock"]


class SystemClock:
    """Wall-clock time (UTC-aware)."""

    simulated = False

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def advance(self) -> bool:  # pragma: no cover - only the simulated clock moves by itself
        return True


class SimulatedClock:
    """TEST HOOK (`agent run --clock-start D --tick-seconds S`): a clock that stands just after the scheduled
    run time of one date and jumps, on each tick, to the next scheduled slot (or session) up to `end`.

    The daemon under this clock runs exactly the production job, only faster than the calendar.
    """

    simulated = True

    def __init__(
        self,
        settings: Settings,
        start: dt.date,
        end: dt.date | None = None,
        step: str = "slot",
        anchor_fn: Any = None,
    ) -> None:
        self.settings = settings
        self.day = start
        self.end = end
        self.step = step
        self.anchor_fn = anchor_fn or (lambda: None)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            t = (
                dt.datetime.combine(dt.date(2000, 1, 1), close_time(self.settings)) + dt.timedelta(minutes=1)
            ).time()
            return dt.datetime.combine(self.day, t, tzinfo=tz(self.settings))

    def advance(self) -> bool:
        """Move to the next slot/session; False (and stay) past `end`."""
        from agent.data.calendar import next_session

        with self._lock:
            if self.step == "session":
                nxt: dt.date | None = next_session(self.day, calendar=self.settings.schedule.calendar).date()
            else:
                nxt = next_slot_after(self.settings, self.day, self.anchor_fn())
            if nxt is None or (self.end is not None and nxt > self.end):
                return False
            self.day = nxt
            return True
