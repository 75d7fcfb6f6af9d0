"""The paper-trading service (`agent run`), one module per job.

- :mod:`agent.service.paths` — the files in the state directory.
- :mod:`agent.service.lock` — one agent per state directory (``flock`` + pid).
- :mod:`agent.service.notify` — systemd notify and watchdog.
- :mod:`agent.service.slots` — schedule arithmetic (which slot is due, when the next run is).
- :mod:`agent.service.clock` — the system clock and the simulated test clock.
- :mod:`agent.service.hooks` — crash/pause test hooks from the environment.
- :mod:`agent.service.job` — :class:`AgentRunner` (one slot: prices → run_slot → targets) and ``run_once``.
- :mod:`agent.service.scheduler` — :class:`Daemon` (APScheduler, signals, catch-up).

This ``__init__`` imports nothing on purpose: ``agent status`` imports ``agent.service.paths`` and friends
without loading the job runner or the scheduler. ``agent.daemon`` re-exports the old names.
"""

from __future__ import annotations

__all__: list[str] = []
