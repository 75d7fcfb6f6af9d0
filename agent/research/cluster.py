"""Connect to Dask: an explicit scheduler address, Dask's configured `scheduler-address`
(DASK_SCHEDULER_ADDRESS), or a LocalCluster of single-threaded worker processes sized to the machine.

Why single-threaded processes: every task (a replay, a model build) is CPU-bound Python + BLAS; one process per
core avoids the GIL and oversubscription (Dask's nanny also sets OMP/MKL threads to 1 in workers).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["dask_client", "n_workers"]


def n_workers(client: Any) -> int:
    return len(client.scheduler_info(n_workers=-1).get("workers", {}))


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A `distributed.Client`, closed (with its LocalCluster, if one was started) on exit."""
    import dask
    from distributed import Client, LocalCluster

    # the agent's log handler would otherwise print every scheduler/nanny lifecycle line
    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = None
    if scheduler:
        client = Client(scheduler, set_as_default=False)
    elif dask.config.get("scheduler-address", None):
        client = Client(set_as_default=False)
    else:
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: several clusters may run on one machine
            silence_logs=logging.ERROR,
        )
        client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
