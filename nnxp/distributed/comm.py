"""The communicator under a watchdog, the one flat-buffer allreduce, and failure propagation.

Every collective of :func:`nnxp.distributed.fit` goes through :class:`_Guarded` (the
lower-case and broadcast collectives) or :class:`_Reducer` (the per-step ``Allreduce``);
each arms the :class:`_Watchdog`, which aborts the MPI job when one waits longer than
``timeout`` seconds (a dead or hung rank). A rank that fails sets a flag in the next
reduction and :func:`_raise_if_failed` raises on every rank at the same point.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from ..backend import to_numpy

Array = Any
COLLECTIVES = ("allgather", "allreduce", "bcast", "Bcast")


class DistributedError(RuntimeError):
    """Another rank failed; this rank stopped at the same step (its weights are consistent)."""


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "nnxp.distributed needs mpi4py and an MPI library: pip install 'nnxp[mpi]'"
        ) from exc
    return MPI


def _check_comm(comm: Any) -> Any:
    MPI = _mpi()
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(
            f"comm must be an MPI intracommunicator (mpi4py.MPI.COMM_WORLD or a split of it), "
            f"got {type(comm).__name__}"
        )
    return comm


class _Watchdog:
    """Aborts the MPI job when one collective waits longer than ``timeout`` seconds."""

    def __init__(self, timeout: float | None, rank: int) -> None:
        self.timeout, self.rank = timeout, rank
        self.deadline: float | None = None
        self.what = ""
        self._stop = threading.Event()
        if timeout is not None:
            threading.Thread(target=self._watch, daemon=True, name="nnxp-watchdog").start()

    def arm(self, what: str) -> None:
        if self.timeout is not None:
            self.what, self.deadline = what, time.monotonic() + self.timeout

    def disarm(self) -> None:
        self.deadline = None

    def close(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        assert self.timeout is not None
        while not self._stop.wait(min(0.2, self.timeout / 4)):
            deadline = self.deadline
            if deadline is not None and time.monotonic() > deadline:
                os.write(
                    2,
                    f"nnxp.distributed: rank {self.rank} waited more than {self.timeout} s in "
                    f"{self.what}: another rank died or hangs; aborting the MPI job\n".encode(),
                )
                time.sleep(0.5)  # let mpiexec forward the line before the abort kills the job
                _mpi().COMM_WORLD.Abort(70)


class _Guarded:
    """The communicator with each (lower-case and broadcast) collective under the watchdog."""

    def __init__(self, comm: Any, watchdog: _Watchdog) -> None:
        self.comm, self.watchdog = comm, watchdog

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.comm, name)
        if name not in COLLECTIVES:
            return method

        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.watchdog.arm(f"comm.{name}")
            try:
                return method(*args, **kwargs)
            finally:
                self.watchdog.disarm()

        return guarded


class _Reducer:
    """In-place Allreduce (sum) of one flat buffer, staged through the host unless CUDA-aware;
    counts the seconds spent in it (waiting for slower ranks included)."""

    def __init__(self, comm: _Guarded, backend: Any, cuda_aware: bool | None) -> None:
        self.comm, self.watchdog = comm, comm.watchdog
        self.on_device = backend.name == "cupy" and bool(cuda_aware)
        self.seconds = 0.0

    def __call__(self, flat: Array, what: str) -> Any:
        """The sum of ``flat`` over the ranks: a host array (a device one when CUDA-aware).

        Parameters
        ----------
        flat : array of shape (n,)
            This rank's buffer (any backend; a NumPy array for the validation sums).
        what : str
            Names the collective in the watchdog's message.

        Returns
        -------
        array of shape (n,)
            The element-wise sum over the ranks.
        """
        MPI = _mpi()
        if self.on_device:
            import cupy

            cupy.cuda.get_current_stream().synchronize()
            buffer = flat
        else:
            buffer = np.require(to_numpy(flat), requirements=["C", "W"])
        start = time.perf_counter()
        self.watchdog.arm(what)
        self.comm.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        self.watchdog.disarm()
        self.seconds += time.perf_counter() - start
        return buffer


def _raise_if_failed(comm: Any, failed: float, error: BaseException | None, where: str) -> None:
    """After a collective whose flag said some rank failed: raise on every rank."""
    if not failed:
        return
    messages = comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    rank = next(r for r, m in enumerate(messages) if m is not None)
    raise DistributedError(
        f"nnxp.distributed.fit stopped at {where}: rank {rank} failed ({messages[rank]}); "
        f"every rank stopped with the weights of the last completed step"
    )
