"""A pytest plugin: scikit-learn's MLP tests, run in place, test nnxp's estimators.

Loaded with ``-p tests.sklearn_peer.nnxp_swap`` it replaces
``sklearn.neural_network.MLPClassifier``/``MLPRegressor`` by ``nnxp.sklearn``'s before any
test module is imported, so the installed ``sklearn/neural_network/tests/test_mlp.py`` (not a
copy) imports nnxp's classes::

    python -m pytest --pyargs sklearn.neural_network.tests.test_mlp \\
        -p tests.sklearn_peer.nnxp_swap -p no:cacheprovider -q

``NNXP_PEER_BACKEND=torch`` (or ``array_api_strict``) makes the estimators train there by
default. Tests listed in :data:`DESELECTED` (none today) would exercise scikit-learn's private
internals rather than the estimator's behaviour; deselected tests are listed with their
reason at the end of the run.
"""

from __future__ import annotations

import os

import sklearn.neural_network

import nnxp.sklearn as nnxp_sklearn

# test name -> why it cannot apply to another implementation of the estimator (tests of
# scikit-learn's private functions). None: the one private method a test calls,
# ``_loss_grad_lbfgs`` (test_gradient), is provided with scikit-learn's signature.
DESELECTED: dict[str, str] = {}


def _swap() -> None:
    backend = os.environ.get("NNXP_PEER_BACKEND", "numpy")
    classifier, regressor = nnxp_sklearn.MLPClassifier, nnxp_sklearn.MLPRegressor
    for cls in (classifier, regressor):
        # the default of the keyword-only ``backend`` (this process only): instances stay
        # of the real class, so they pickle
        cls.__init__.__kwdefaults__["backend"] = backend
    sklearn.neural_network.MLPClassifier = classifier
    sklearn.neural_network.MLPRegressor = regressor


_swap()


def _banner() -> str:
    backend = os.environ.get("NNXP_PEER_BACKEND", "numpy")
    swapped = sklearn.neural_network.MLPClassifier
    return (
        f"nnxp peer suite: sklearn.neural_network.MLPClassifier is {swapped.__module__}."
        f"{swapped.__name__} (backend {backend})"
    )


def pytest_report_header(config):
    return _banner()


def pytest_collection_modifyitems(config, items):
    names = DESELECTED
    keep, drop = [], []
    for item in items:
        (drop if item.name in names or item.originalname in names else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(_banner())
    names = DESELECTED
    if names:
        terminalreporter.section("deselected scikit-learn tests (reason)")
        for name, reason in names.items():
            terminalreporter.write_line(f"{name}: {reason}")
