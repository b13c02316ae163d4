"""scikit-learn estimators: ``NNXPClassifier`` and ``NNXPRegressor``.

They validate input the scikit-learn way, keep every hyperparameter as a constructor
argument (``get_params``/``set_params``, ``Pipeline``, ``GridSearchCV``) and train an nnxp
``Sequential`` on the backend they are given. Needs scikit-learn (``nnxp[examples]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.model_selection import train_test_split
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised without scikit-learn
    raise ImportError("nnxp.sklearn needs scikit-learn: pip install 'nnxp[examples]'") from exc

from .backend import array_library, asarray, to_numpy, use_backend
from .datasets import one_hot
from .layers import Dense
from .network import Sequential
from .optimizers import SGD, Adam, Optimizer
from .training import EarlyStopping


def _host(X: Any) -> Any:
    """Backend arrays (torch, cupy, array-api-strict) come to the host for validation."""
    return X if array_library(X) in (None, "numpy") else to_numpy(X)


class _NNXPEstimator(BaseEstimator):
    """What the classifier and the regressor share: the network, the training loop."""

    _loss = ""
    _output = ""

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "relu",
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        epochs: int = 200,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        random_state: int | None = None,
        backend: str = "numpy",
        dtype: str = "float32",
        verbose: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.backend = backend
        self.dtype = dtype
        self.verbose = verbose

    def _seed(self) -> int:
        if isinstance(self.random_state, np.random.RandomState):
            return int(self.random_state.randint(2**31 - 1))
        if self.random_state is None:
            return int(np.random.SeedSequence().generate_state(1)[0])
        return int(self.random_state)

    def _build(self, n_inputs: int, n_outputs: int, seed: int) -> None:
        sizes = [n_inputs, *self.hidden_layer_sizes, n_outputs]
        layers = [Dense(a, b, self.activation) for a, b in zip(sizes[:-2], sizes[1:-1])]
        layers.append(Dense(sizes[-2], sizes[-1], self._output))
        self.optimizer_: Optimizer
        with use_backend(self.backend):
            self.network_ = Sequential(layers, seed=seed, dtype=self.dtype)
            if self.optimizer == "adam":
                self.optimizer_ = Adam(self.learning_rate)
            elif self.optimizer == "sgd":
                self.optimizer_ = SGD(self.learning_rate)
            else:
                raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        self.loss_curve_: list[float] = []
        self.n_iter_ = 0

    def _train(self, X: np.ndarray, T: np.ndarray, epochs: int, seed: int) -> None:
        net = self.network_
        validation = None
        stopper = None
        if self.early_stopping and epochs > 1 and X.shape[0] >= 10:
            X, X_val, T, T_val = train_test_split(
                X, T, test_size=self.validation_fraction, random_state=seed
            )
            with use_backend(net.backend.name, net.backend.device) as backend:
                validation = (
                    asarray(X_val, self.dtype, backend),
                    asarray(T_val, self.dtype, backend),
                )
            stopper = EarlyStopping("val_loss", patience=10)
        with use_backend(net.backend.name, net.backend.device) as backend:
            Xb, Tb = asarray(X, self.dtype, backend), asarray(T, self.dtype, backend)
            history = net.fit(
                Xb,
                Tb,
                loss=self._loss,
                optimizer=self.optimizer_,
                epochs=epochs,
                batch_size=min(self.batch_size, X.shape[0]),
                seed=seed,
                validation_data=validation,
                early_stopping=stopper,
                progress=self.verbose,
            )
        self.loss_curve_ = [*self.loss_curve_, *history.history.get("loss", [])]
        self.n_iter_ += len(history.epoch)

    def _output_of(self, X: Any) -> np.ndarray:
        """The network's output, computed in float64 whatever the training dtype: a float32
        matrix product rounds a row differently with the rows around it, and a
        prediction must not depend on which other samples share the call."""
        check_is_fitted(self, "network_")
        X = validate_data(self, _host(X), reset=False, dtype=[np.float64, np.float32])
        net = self.network_.clone(dtype="float64")
        with use_backend(net.backend.name, net.backend.device) as backend:
            Y = net.predict(asarray(X, "float64", backend))
        return to_numpy(Y)

    def _check_params(self) -> None:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, int):
            sizes = (sizes,)
        if not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must hold positive integers, got {sizes!r}")
        if not (isinstance(self.epochs, (int, np.integer)) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


class NNXPClassifier(ClassifierMixin, _NNXPEstimator):
    """A multi-layer perceptron classifier trained by nnxp: hidden layers, a softmax output,
    cross-entropy.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "linear"}, default "relu"
    optimizer : {"adam", "sgd"}, default "adam"
    learning_rate : float, default 1e-3
    batch_size : int, default 32
    epochs : int, default 200
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data and stop when its loss has not improved
        for 10 epochs, keeping the best weights.
    validation_fraction : float, default 0.1
    random_state : int, RandomState or None
    backend : {"numpy", "array_api_strict", "torch", "cupy"}, default "numpy"
    dtype : {"float32", "float64"}, default "float32"
    verbose : bool, default False
        Show a progress bar per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    loss_curve_ : list of float
        Mean training loss of every epoch run so far.
    n_iter_ : int
        Epochs run so far.
    network_ : nnxp.Sequential
    """

    _loss = "cross_entropy"
    _output = "softmax"

    def fit(self, X: Any, y: Any) -> NNXPClassifier:
        """Train from scratch for ``epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels of any hashable type.
        """
        self._check_params()
        X, y = validate_data(self, _host(X), _host(y), dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"NNXPClassifier needs samples of at least 2 classes; got 1 class "
                f"({self.classes_[0]!r})"
            )
        seed = self._seed()
        self._build(X.shape[1], len(self.classes_), seed)
        self._train(X, self._one_hot(y), self.epochs, seed)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> NNXPClassifier:
        """One epoch over ``(X, y)``; ``classes`` (every label) is needed on the first call."""
        first = not hasattr(self, "network_")
        if first:
            self._check_params()
            if classes is None:
                raise ValueError("classes must be given on the first call to partial_fit")
        X, y = validate_data(self, _host(X), _host(y), reset=first, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        if first:
            self.classes_ = np.unique(np.asarray(classes))
            self._build(X.shape[1], len(self.classes_), self._seed())
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(
                f"y holds labels {unknown.tolist()} not in classes {self.classes_.tolist()}"
            )
        self._train(X, self._one_hot(y), 1, self._seed())
        return self

    def _one_hot(self, y: np.ndarray) -> np.ndarray:
        return one_hot(np.searchsorted(self.classes_, y), len(self.classes_))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), rows summing to one."""
        return self._output_of(X)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, shape (n_samples,)."""
        check_is_fitted(self, "network_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class NNXPRegressor(RegressorMixin, _NNXPEstimator):
    """A multi-layer perceptron regressor trained by nnxp: hidden layers, a linear output,
    mean squared error. Parameters and attributes as :class:`NNXPClassifier` (no
    ``classes_``); ``y`` may have several columns."""

    _loss = "mse"
    _output = "linear"

    def fit(self, X: Any, y: Any) -> NNXPRegressor:
        """Train from scratch for ``epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        """
        self._check_params()
        X, y = validate_data(
            self,
            _host(X),
            _host(y),
            multi_output=True,
            y_numeric=True,
            dtype=[np.float64, np.float32],
        )
        seed = self._seed()
        T = y.reshape(len(y), -1).astype(np.float64)
        self._single_target = y.ndim == 1
        self._build(X.shape[1], T.shape[1], seed)
        self._train(X, T, self.epochs, seed)
        return self

    def partial_fit(self, X: Any, y: Any) -> NNXPRegressor:
        """One epoch over ``(X, y)``, building the network on the first call."""
        first = not hasattr(self, "network_")
        X, y = validate_data(
            self,
            _host(X),
            _host(y),
            reset=first,
            multi_output=True,
            y_numeric=True,
            dtype=[np.float64, np.float32],
        )
        T = y.reshape(len(y), -1).astype(np.float64)
        if first:
            self._check_params()
            self._single_target = y.ndim == 1
            self._build(X.shape[1], T.shape[1], self._seed())
        self._train(X, T, 1, self._seed())
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, shape (n_samples,) or (n_samples, n_targets) as ``y`` was."""
        Y = self._output_of(X)
        return Y[:, 0] if self._single_target else Y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
