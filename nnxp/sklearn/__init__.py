"""scikit-learn estimators trained by nnxp: drop-ins for scikit-learn's ``MLPClassifier``
and ``MLPRegressor`` (same parameters, defaults and fitted attributes) that also run on
nnxp's other backends (``backend="torch"``, ``"cupy"``, ...) and export to ONNX.

``NNXPClassifier``/``NNXPRegressor`` and ``MLPClassifier``/``MLPRegressor`` are the same
classes. Needs scikit-learn and SciPy (``pip install 'nnxp[examples]'``).
"""

from __future__ import annotations

try:
    import scipy  # noqa: F401
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without scikit-learn
    raise ImportError("nnxp.sklearn needs scikit-learn: pip install 'nnxp[examples]'") from exc

from ._classifier import MLPClassifier, NNXPClassifier
from ._regressor import MLPRegressor, NNXPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "NNXPClassifier", "NNXPRegressor"]
