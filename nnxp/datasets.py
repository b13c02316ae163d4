"""Small classic data sets, returned as arrays of the current backend.

Data is made on the host with NumPy and copied to the backend once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import asarray


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Host one-hot rows of shape ``(n, n_classes)`` from integer labels of shape ``(n,)``."""
    return (labels[:, None] == np.arange(n_classes)).astype(np.float64)


def xor(dtype: Any = None) -> tuple[Any, Any]:
    """The XOR truth table.

    Returns
    -------
    X : array of shape (4, 2)
    T : array of shape (4, 1)
        1 where exactly one input is 1.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    T = np.array([[0], [1], [1], [0]], dtype=np.float64)
    return asarray(X, dtype=dtype or "float32"), asarray(T, dtype=dtype or "float32")


def digits(test_size: float = 0.25, seed: int = 0, dtype: Any = None) -> tuple[Any, Any, Any, Any]:
    """scikit-learn's bundled 8x8 digits (1797 images, no download), scaled to [0, 1].

    Parameters
    ----------
    test_size : float
        Fraction of images held out, stratified by class.
    seed : int
        Seeds the split.
    dtype : {"float32", "float64"}, optional

    Returns
    -------
    X_train : array of shape (n_train, 64)
    X_test : array of shape (n_test, 64)
    T_train : array of shape (n_train, 10)
        One-hot targets.
    T_test : array of shape (n_test, 10)

    Raises
    ------
    ImportError
        When scikit-learn is missing: ``pip install 'nnxp[examples]'``.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise ImportError(
            "nnxp.datasets.digits needs scikit-learn: pip install 'nnxp[examples]'"
        ) from exc
    data = load_digits()
    X = data.data / 16.0
    T = one_hot(data.target, 10)
    parts = train_test_split(X, T, test_size=test_size, random_state=seed, stratify=data.target)
    dtype = dtype or "float32"
    return tuple(asarray(part, dtype=dtype) for part in parts)


def spirals(
    n_classes: int = 3, n_per_class: int = 100, noise: float = 0.2, seed: int = 0, dtype: Any = None
) -> tuple[Any, Any]:
    """Interleaved spiral arms in the plane, one class per arm (cs231n's classic).

    Returns
    -------
    X : array of shape (n_classes * n_per_class, 2)
    T : array of shape (n_classes * n_per_class, n_classes)
        One-hot targets.
    """
    if n_classes < 2 or n_per_class < 1:
        raise ValueError("spirals needs n_classes >= 2 and n_per_class >= 1")
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.0, 1.0, n_per_class), n_classes)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    angle = (labels * 4.0 + radius * 4.0) + rng.normal(0.0, noise, radius.shape)
    X = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    dtype = dtype or "float32"
    return asarray(X, dtype=dtype), asarray(one_hot(labels, n_classes), dtype=dtype)
