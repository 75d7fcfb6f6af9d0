"""The systemd notify protocol (sd_notify(3)): READY, WATCHDOG, STOPPING, STATUS as plain datagrams.

Why no dependency: the protocol is one ``AF_UNIX`` datagram per message; without ``NOTIFY_SOCKET`` every call is
a no-op returning False.

Why a send timeout: a datagram socket whose reader has fallen behind (its queue holds only ~10 datagrams on
Linux) blocks the sender. The watchdog pings every half interval, and ``STOPPING=1`` is sent from the signal
handler on the main thread, so a blocking send could hang the daemon's shutdown forever. A send that cannot
complete within :data:`SEND_TIMEOUT_S` is dropped (False), never waited on.
"""

from __future__ import annotations

import os
import socket

__all__ = ["SEND_TIMEOUT_S", "sd_notify", "watchdog_interval"]

SEND_TIMEOUT_S = 0.5


def sd_notify(message: str) -> bool:
    """Send `message` (e.g. "READY=1") to $NOTIFY_SOCKET. False when not under systemd or on any socket error."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr[0] == "@":  # abstract namespace
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.settimeout(SEND_TIMEOUT_S)
            s.connect(addr)
            s.sendall(message.encode("utf-8"))
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Half of $WATCHDOG_USEC in seconds (systemd's advice), if the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1e6 / 2.0
