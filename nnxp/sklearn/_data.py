"""Host data on its way to the network's device: dense arrays go over once, sparse matrices
are densified a block of rows at a time (never whole)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..backend import Backend, asarray, to_numpy

Array = Any

# rows per densified block of a sparse matrix: about 16 MiB of float64 at a time
_BLOCK_BYTES = 1 << 24


def block_rows(X: Any) -> int:
    """How many rows of ``X`` to densify at once."""
    return max(1, _BLOCK_BYTES // (8 * max(1, X.shape[1])))


class DeviceRows:
    """Rows of a host matrix (dense or SciPy sparse) served as dense arrays on ``backend``.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
    backend : Backend
    dtype : backend dtype
    """

    def __init__(self, X: Any, backend: Backend, dtype: Any) -> None:
        self.sparse = sp.issparse(X)
        self.backend, self.dtype, self.xp = backend, dtype, backend.xp
        self.n = X.shape[0]
        self.host: Any = X.tocsr() if self.sparse else None
        self.device: Any = None
        if not self.sparse:
            self.device = asarray(np.ascontiguousarray(X), dtype, backend)

    def rows(self, start: int, stop: int, order: Array = None, host_order: Any = None) -> Array:
        """Rows ``start:stop`` (of ``order`` if given: a device index array; ``host_order`` is
        the same permutation on the host, used for sparse data)."""
        if self.sparse:
            index = slice(start, stop) if host_order is None else host_order[start:stop]
            return asarray(self.host[index].toarray(), self.dtype, self.backend)
        if order is None:
            return self.device[start:stop, ...]
        return self.xp.take(self.device, order[start:stop], axis=0)

    def blocks(self, size: int | None = None):
        """``(start, stop, rows)`` over the whole matrix in blocks (one block when dense)."""
        if not self.sparse:
            yield 0, self.n, self.device
            return
        size = size or block_rows(self.host)
        for start in range(0, self.n, size):
            stop = min(start + size, self.n)
            yield start, stop, self.rows(start, stop)


def device_index(order: np.ndarray, backend: Backend) -> Array:
    """A host permutation as an index array on the device (one small transfer per epoch)."""
    return asarray(np.asarray(order, dtype=np.int64), backend=backend)


def host(x: Any) -> np.ndarray:
    """A backend array as NumPy (one transfer)."""
    return to_numpy(x)
