"""Where independent tasks run: a process pool here (``local``) or Ray tasks (``ray``).

``eiec sweep`` (one task per compile and per design point) and ``eiec run --workers`` (one task
per shard of the samples) submit their tasks to an engine from :func:`open_engine`; both
engines run the same pure functions on the same arguments, so their results are identical.
Ray is optional (``eiec[distributed]``) and imported only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any, Literal

from eiec.errors import EiecError

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = ("local", "ray")


class LocalEngine:
    """A process pool (spawned workers: safe whatever the parent has loaded)."""

    def __init__(self, workers: int) -> None:
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self.pool.submit(fn, *args)

    def put(self, value: Any) -> Any:
        return value

    def wait(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        done, rest = wait(pending, return_when=FIRST_COMPLETED)
        return set(done), set(rest)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def close(self, abort: bool = False) -> None:
        """Shut the pool down; with ``abort`` (an error, Ctrl-C, SIGTERM), first end its
        workers, so none is left computing (nor the resource tracker they keep alive)."""
        if abort:
            # ProcessPoolExecutor has no public way to stop running tasks: end its processes.
            for process in list((self.pool._processes or {}).values()):
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayEngine:
    """Ray tasks on the cluster at ``address`` (or ``RAY_ADDRESS``), else on a local Ray with
    ``workers`` CPUs started for this run (and shut down after it)."""

    def __init__(self, workers: int, address: str | None, task: str = "sweep") -> None:
        try:
            import ray  # lazy: Ray, an optional extra
        except ImportError:
            raise EiecError(
                "--engine ray needs Ray, which is not installed",
                fix='pip install "eiec[distributed]"',
            ) from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            address = address or os.environ.get("RAY_ADDRESS")
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kwargs["num_cpus"] = workers
            else:
                check_reachable(address, task=task)
            ray.init(address=address, **kwargs)
        self.remote: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        remote = self.remote.setdefault(fn, self.ray.remote(fn))
        return remote.remote(*args)

    def put(self, value: Any) -> Any:
        return self.ray.put(value)

    def wait(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        done, rest = self.ray.wait(list(pending), num_returns=1)
        return set(done), set(rest)

    def result(self, handle: Any) -> Any:
        return self.ray.get(handle)

    def close(self, abort: bool = False) -> None:
        if self.started:
            self.ray.shutdown()


#: Seconds to wait for a Ray cluster's address to accept a connection.
CONNECT_TIMEOUT_S = 10.0


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S, task: str = "sweep") -> None:
    """EiecError unless ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts a TCP connection within
    ``timeout`` seconds: ``ray.init`` would otherwise keep retrying an address with no cluster.
    ``auto`` and ``local`` are Ray's own and not checked."""
    import socket  # lazy: only with --address

    if address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise EiecError(
            f"the Ray address {address!r} is not HOST:PORT",
            where="--address",
            fix="give the address `ray start --head` printed, e.g. 10.0.0.5:6379",
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else error.strerror or error
        raise EiecError(
            f"cannot reach a Ray cluster at {address}: {reason}",
            where="--address",
            fix="start one there with `ray start --head`, check the address, or leave out "
            f"--engine ray to {task} on this machine",
        ) from None


def open_engine(
    engine: str, workers: int, address: str | None = None, task: str = "sweep"
) -> LocalEngine | RayEngine:
    """The engine named ``engine`` with ``workers`` processes (local) or local Ray CPUs;
    ``address``: a Ray cluster (``ray`` only); ``task``: what the command does, for its
    messages (``sweep``, ``run``). Close it with ``close(abort=...)``."""
    if engine not in ENGINES:
        raise EiecError(f"unknown engine {engine!r}", fix="use --engine local or --engine ray")
    return RayEngine(workers, address, task) if engine == "ray" else LocalEngine(workers)
