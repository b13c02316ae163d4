"""The scikit-learn estimators pass scikit-learn's own estimator checks, and fit in."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits, make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nnxp  # noqa: E402
from nnxp.sklearn import NNXPClassifier, NNXPRegressor  # noqa: E402

# No check is xfailed: every scikit-learn estimator check passes as it is.
EXPECTED_FAILED_CHECKS: dict = {}


@parametrize_with_checks(
    [NNXPClassifier(epochs=50, random_state=0), NNXPRegressor(epochs=50, random_state=0)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_classifier_learns_digits_with_any_labels():
    data = load_digits()
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    X, y = data.data / 16.0, names[data.target]
    clf = NNXPClassifier(hidden_layer_sizes=(64,), epochs=15, learning_rate=3e-3, random_state=0)
    clf.fit(X[:1400], y[:1400])
    assert set(clf.classes_) == set(names) and clf.n_features_in_ == 64
    assert clf.score(X[1400:], y[1400:]) > 0.9
    proba = clf.predict_proba(X[1400:])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert len(clf.loss_curve_) == 15 and clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_partial_fit_needs_classes_first_then_continues():
    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 3
    clf = NNXPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes must be given"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2


def test_inside_pipeline_and_grid_search():
    X, y = make_regression(n_samples=120, n_features=5, noise=0.1, random_state=0)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), NNXPRegressor(epochs=30, random_state=0)),
        {"nnxpregressor__learning_rate": [1e-3, 1e-2]},
        cv=3,
    )
    search.fit(X, y / y.std())
    assert search.best_params_["nnxpregressor__learning_rate"] in (1e-3, 1e-2)
    assert search.score(X, y / y.std()) > 0.5


def test_early_stopping_and_pickling(tmp_path):
    data = load_digits()
    clf = NNXPClassifier(hidden_layer_sizes=(32,), epochs=200, early_stopping=True, random_state=0)
    clf.fit(data.data / 16.0, data.target)
    assert clf.n_iter_ < 200
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(
        again.predict_proba(data.data / 16.0), clf.predict_proba(data.data / 16.0)
    )


def test_backend_arrays_and_other_backends():
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    clf = NNXPClassifier(epochs=20, random_state=0, backend="array_api_strict").fit(X, y)
    assert clf.network_.backend.name == "array_api_strict"
    with nnxp.use_backend("array_api_strict"):
        X_strict = nnxp.asarray(X)
    np.testing.assert_array_equal(clf.predict(X_strict), clf.predict(X))
