"""``MLPClassifier``: scikit-learn's multi-layer perceptron classifier, trained by nnxp."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._base import BaseMLP


class NNXPClassifier(ClassifierMixin, BaseMLP):
    """A drop-in for ``sklearn.neural_network.MLPClassifier`` that trains an nnxp network
    on any backend (``backend="torch"``, ``"cupy"``, ...).

    Every parameter, default and fitted attribute is scikit-learn 1.9's (see its
    documentation); the output is a softmax for multiclass targets and a logistic for
    binary and multilabel (2-D indicator) ones, the loss the log-loss, plus an L2 penalty
    ``alpha * ||W||^2 / (2 n)``.

    Parameters
    ----------
    hidden_layer_sizes : int or array-like of int, default (100,)
        An int ``k`` means ``(k,)``.
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
    solver : {"lbfgs", "sgd", "adam"}, default "adam"
    alpha : float, default 1e-4
    batch_size : int or "auto", default "auto" (``min(200, n_samples)``)
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
    learning_rate_init : float, default 1e-3
    power_t : float, default 0.5
    max_iter : int, default 200
    shuffle : bool, default True
    random_state : int, RandomState or None
    tol : float, default 1e-4
    verbose : bool, default False
        Prints ``Iteration N, loss = ...`` to stdout after each epoch.
    warm_start : bool, default False
    momentum : float in [0, 1), default 0.9
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
    validation_fraction : float, default 0.1
    beta_1, beta_2, epsilon : float, defaults 0.9, 0.999, 1e-8
    n_iter_no_change : int or np.inf, default 10
    max_fun : int, default 15000
    backend : {"numpy", "array_api_strict", "torch", "cupy", "jax"}, default "numpy"
        nnxp's: the array library the network lives and trains on.
    device : optional
        nnxp's: the backend's device (``"cuda:1"`` for torch, ...); its default if None.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    loss_ : float
    best_loss_ : float or None
    loss_curve_ : list of float
    validation_scores_ : list of float or None
    best_validation_score_ : float or None
    t_ : int
    coefs_ : list of ndarray of shape (n_in, n_out)
        Read-only host copies; assign new arrays to change the model.
    intercepts_ : list of ndarray of shape (n_out,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    n_iter_ : int
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
    network_ : nnxp.Sequential
        The fitted network (nnxp's ``(n_out, n_in)`` weight layout), on ``backend``.
    """

    _score_function = staticmethod(accuracy_score)

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        backend="numpy",
        device=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.device = device

    loss = "log_loss"  # scikit-learn's MLPClassifier has it as a fixed attribute

    def _output_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _stratify_early_stopping(self) -> bool:
        return self.n_outputs_ == 1

    def _validation_targets(self, y_val: np.ndarray) -> np.ndarray:
        return self._label_binarizer.inverse_transform(y_val)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        return X, self._label_binarizer.transform(y).astype(bool)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NNXPClassifier:
        """Fit the model to ``X`` and ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Labels, or a 2-D indicator matrix for multilabel classification.
        sample_weight : array-like of shape (n_samples,), default None

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None) -> NNXPClassifier:
        """One epoch over ``(X, y)``; ``classes`` (every label) on the first call.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default None
        classes : array of shape (n_classes,), default None

        Returns
        -------
        self
        """
        self._refuse_early_stopping()
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _predict_from_output(self, out: np.ndarray) -> np.ndarray:
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted classes, shape (n_samples,) or (n_samples, n_classes) (multilabel)."""
        check_is_fitted(self)
        return self._predict_from_output(self._forward_host(self._validate_predict_input(X)))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class, shape (n_samples, n_classes): rows sum to one
        except for multilabel targets, whose labels are independent."""
        check_is_fitted(self)
        out = self._forward_host(self._validate_predict_input(X))
        if self.n_outputs_ == 1:
            p = out.ravel()
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``, shape (n_samples, n_classes)."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


MLPClassifier = NNXPClassifier
