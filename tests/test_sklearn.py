"""nnxp.sklearn: scikit-learn's estimator checks, and what a user of scikit-learn's
MLPClassifier/MLPRegressor relies on (the peer suite, tests/test_sklearn_peer_suite.py, runs
scikit-learn's own MLP tests)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
import scipy.sparse as sp  # noqa: E402
from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import load_digits, make_multilabel_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import LabelBinarizer, StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nnxp  # noqa: E402
import nnxp.sklearn._data as data_module  # noqa: E402
from nnxp.sklearn import MLPClassifier, MLPRegressor, NNXPClassifier, NNXPRegressor  # noqa: E402

# No check is xfailed: every scikit-learn estimator check passes as it is.
EXPECTED_FAILED_CHECKS: dict = {}

X_DIGITS, Y_DIGITS = load_digits(n_class=3, return_X_y=True)
X_DIGITS = X_DIGITS[:150] / 16.0
Y_DIGITS = Y_DIGITS[:150]


@parametrize_with_checks(
    [NNXPClassifier(max_iter=100, random_state=0), NNXPRegressor(max_iter=100, random_state=0)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_aliases_and_scikit_learn_signature():
    assert MLPClassifier is NNXPClassifier and MLPRegressor is NNXPRegressor
    for ours, theirs in ((NNXPClassifier, sk.MLPClassifier), (NNXPRegressor, sk.MLPRegressor)):
        mine, reference = ours().get_params(), theirs().get_params()
        assert mine.pop("backend") == "numpy" and mine.pop("device") is None
        assert mine == reference  # same names, same defaults


def _quiet_fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


# --------------------------------------------------------------------------- exact objective
@pytest.mark.parametrize(
    "kind", ["multiclass", "binary", "multilabel", "regression", "multi_output", "poisson"]
)
@pytest.mark.parametrize("weighted", [False, True])
def test_objective_and_gradient_equal_scikit_learn(kind, weighted):
    """Loss and gradient (L2 included, sample weights included) at the same weights equal
    scikit-learn's own ``_loss_grad_lbfgs``, to rounding."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    est_kwargs = dict(hidden_layer_sizes=(5, 3), alpha=0.3, max_iter=1, random_state=0)
    if kind in ("regression", "multi_output", "poisson"):
        y = rng.poisson(2.0, size=30).astype(float) if kind == "poisson" else rng.normal(size=30)
        if kind == "multi_output":
            y = rng.normal(size=(30, 2))
        loss = "poisson" if kind == "poisson" else "squared_error"
        ours, theirs = (
            MLPRegressor(loss=loss, **est_kwargs),
            sk.MLPRegressor(loss=loss, **est_kwargs),
        )
    else:
        y = {
            "multiclass": np.arange(30) % 3,
            "binary": np.arange(30) % 2,
            "multilabel": rng.integers(0, 2, size=(30, 3)),
        }[kind]
        ours, theirs = MLPClassifier(**est_kwargs), sk.MLPClassifier(**est_kwargs)
    w = rng.uniform(0.5, 2.0, size=30) if weighted else None
    _quiet_fit(ours, X, y, sample_weight=w)
    _quiet_fit(theirs, X, y, sample_weight=w)
    theirs.coefs_ = [c.copy() for c in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    theta = np.hstack([a.ravel() for a in ours.coefs_ + ours.intercepts_])
    Y = y if kind not in ("multiclass", "binary") else LabelBinarizer().fit_transform(y)
    Y = np.asarray(Y, dtype=float).reshape(len(X), -1)
    units = [4, 5, 3, Y.shape[1]]
    grads = [np.empty((a, b)) for a, b in zip(units[:-1], units[1:])]
    theirs._coef_indptr, theirs._intercept_indptr, start = [], [], 0
    for a, b in zip(units[:-1], units[1:]):
        theirs._coef_indptr.append((start, start + a * b, (a, b)))
        start += a * b
    for b in units[1:]:
        theirs._intercept_indptr.append((start, start + b))
        start += b
    expected = theirs._loss_grad_lbfgs(
        theta, X, Y, w, [X] + [None] * 3, [None] * 3, grads, [np.empty(b) for b in units[1:]]
    )
    got = ours._loss_grad_lbfgs(theta, X, Y, w)
    if kind == "multi_output":
        # scikit-learn reports the squared error averaged over the K outputs but returns the
        # gradient of their sum; nnxp's objective is that sum, so L-BFGS sees a consistent pair
        n = len(X) if w is None else w.sum()
        penalty = 0.5 * 0.3 * sum(np.sum(c**2) for c in ours.coefs_) / n
        expected = (Y.shape[1] * (expected[0] - penalty) + penalty, expected[1])
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-10)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-8, atol=1e-12)


def test_lbfgs_gradient_is_exact_on_every_backend(backend):
    """Central differences of the packed objective (L2 and weights included), float64."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(12, 3)), np.arange(12) % 3
    w = rng.uniform(0.5, 2.0, size=12)
    est = MLPClassifier(
        hidden_layer_sizes=4, activation="tanh", alpha=0.5, max_iter=1, random_state=0
    )
    est.set_params(backend=backend.name)
    _quiet_fit(est, X, y, sample_weight=w)
    assert est.network_.backend.name == backend.name
    Y = LabelBinarizer().fit_transform(y).astype(float)
    theta = np.hstack([a.ravel() for a in est.coefs_ + est.intercepts_])
    _, grad = est._loss_grad_lbfgs(theta, X, Y, w)
    eps, numeric = 1e-6, np.empty_like(theta)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = eps
        numeric[i] = (
            est._loss_grad_lbfgs(theta + step, X, Y, w)[0]
            - est._loss_grad_lbfgs(theta - step, X, Y, w)[0]
        ) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- backends
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_every_backend_trains_the_same_model(backend, solver):
    """Same seed, same initial weights and batches: float64 training on any backend gives
    numpy's weights to rounding."""
    kwargs = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=5, random_state=0)
    reference = _quiet_fit(MLPClassifier(**kwargs), X_DIGITS, Y_DIGITS)
    est = _quiet_fit(MLPClassifier(backend=backend.name, **kwargs), X_DIGITS, Y_DIGITS)
    assert est.network_.backend.name == backend.name
    for a, b in zip(est.coefs_ + est.intercepts_, reference.coefs_ + reference.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    assert est.loss_ == pytest.approx(reference.loss_, rel=1e-8)
    np.testing.assert_allclose(est.predict_proba(X_DIGITS), reference.predict_proba(X_DIGITS))


def test_backend_arrays_are_accepted():
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    clf = MLPClassifier(max_iter=50, random_state=0, backend="array_api_strict")
    _quiet_fit(clf, X, y)
    with nnxp.use_backend("array_api_strict"):
        X_strict = nnxp.asarray(X)
    np.testing.assert_array_equal(clf.predict(X_strict), clf.predict(X))


def test_jax_without_64_bit_mode_refuses_float64_and_fits_float32():
    """scikit-learn's float64 default on jax needs JAX's x64 mode, which nnxp never
    switches on: the fit says how (and leaves the estimator unfitted); float32 data fits."""
    jax = pytest.importorskip("jax")
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    with jax.enable_x64(False):
        est = MLPClassifier(hidden_layer_sizes=4, max_iter=3, random_state=0, backend="jax")
        with pytest.raises(ValueError, match="64-bit mode.*jax_enable_x64"):
            _quiet_fit(est, X, y)
        assert not hasattr(est, "network_")
        _quiet_fit(est, X.astype(np.float32), y)
        assert est.network_.backend.name == "jax"
        proba = est.predict_proba(X.astype(np.float32))
        assert proba.dtype == np.float32 and proba.shape == (40, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


# --------------------------------------------------------------------------- targets
def test_multilabel_uses_independent_sigmoids():
    X, Y = make_multilabel_classification(n_samples=60, random_state=0, return_indicator=True)
    clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=30, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == Y.shape[1]
    assert clf.network_.layers[-1].activation.name == "sigmoid"
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and not np.allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), (proba > 0.5).astype(int))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.score(X, Y) > 0.9


def test_binary_has_one_logistic_output_and_two_probability_columns():
    y = np.where(Y_DIGITS == 0, "no", "yes")
    clf = _quiet_fit(MLPClassifier(hidden_layer_sizes=5, random_state=0), X_DIGITS, y)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    proba = clf.predict_proba(X_DIGITS)
    assert proba.shape == (150, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X_DIGITS), clf.classes_[proba.argmax(axis=1)])


def test_multi_output_regression_and_predict_shapes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 1] - X[:, 2]])
    reg = MLPRegressor(solver="lbfgs", hidden_layer_sizes=20, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (80, 2) and reg.score(X, Y) > 0.95
    single = MLPRegressor(solver="lbfgs", hidden_layer_sizes=20, random_state=0).fit(X, Y[:, 0])
    assert single.predict(X).shape == (80,)


# --------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_numpy_scalars_and_int_hidden_layer_sizes(Estimator):
    est = Estimator(
        hidden_layer_sizes=np.int64(7),
        alpha=np.float32(1e-3),
        learning_rate_init=np.float32(0.01),
        max_iter=np.int64(3),
        batch_size=np.int32(16),
        momentum=np.float64(0.5),
        solver="sgd",
        random_state=np.int64(0),
    )
    _quiet_fit(est, X_DIGITS, Y_DIGITS)
    assert [c.shape for c in est.coefs_][0] == (64, 7) and est.n_iter_ == 3
    again = _quiet_fit(
        Estimator(hidden_layer_sizes=7, max_iter=3, random_state=0), X_DIGITS, Y_DIGITS
    )
    assert again.coefs_[0].shape == (64, 7)


@pytest.mark.parametrize("bad", [0, (4, 0), (4, -1), (2.5,)])
def test_bad_hidden_layer_sizes_are_refused_before_training(bad):
    est = MLPClassifier(hidden_layer_sizes=bad)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        est.fit(X_DIGITS, Y_DIGITS)
    assert not hasattr(est, "coefs_")


def test_grid_search_over_numpy_ranges():
    search = GridSearchCV(
        make_pipeline(StandardScaler(), MLPClassifier(max_iter=30, random_state=0)),
        {
            "nnxpclassifier__hidden_layer_sizes": np.arange(4, 13, 8),
            "nnxpclassifier__learning_rate_init": np.linspace(1e-3, 1e-2, 2),
        },
        cv=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X_DIGITS, Y_DIGITS)
    assert search.best_params_["nnxpclassifier__hidden_layer_sizes"] in (4, 12)
    assert search.score(X_DIGITS, Y_DIGITS) > 0.9


def test_sparse_input_is_densified_a_block_at_a_time(monkeypatch):
    X = sp.csr_matrix(np.where(X_DIGITS > 0.5, X_DIGITS, 0.0))
    dense = X.toarray()
    monkeypatch.setattr(data_module, "_BLOCK_BYTES", 8 * 64 * 40)  # 40 rows a block
    shapes = []
    original = sp.csr_matrix.toarray

    def spy(self, *args, **kwargs):
        shapes.append(self.shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", spy)
    for solver in ("lbfgs", "sgd"):
        kwargs = dict(
            solver=solver, hidden_layer_sizes=10, max_iter=20, batch_size=32, random_state=0
        )
        a = _quiet_fit(MLPClassifier(**kwargs), X, Y_DIGITS)
        b = _quiet_fit(MLPClassifier(**kwargs), dense, Y_DIGITS)
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(dense), rtol=1e-9)
        for ca, cb in zip(a.coefs_, b.coefs_):
            np.testing.assert_allclose(ca, cb, rtol=1e-8, atol=1e-12)
    assert shapes and max(shapes) <= 40 < X.shape[0]


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_follows_the_input(Estimator, dtype):
    est = Estimator(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    _quiet_fit(est, X_DIGITS.astype(dtype), Y_DIGITS)
    assert est.network_.dtype == est.network_.xp.asarray(np.zeros(1, dtype)).dtype
    assert all(c.dtype == dtype for c in est.coefs_ + est.intercepts_)
    out = est.predict_proba if Estimator is MLPClassifier else est.predict
    assert out(X_DIGITS.astype(dtype)).dtype == dtype


# --------------------------------------------------------------------------- training control
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_verbose_prints_iterations_to_stdout(capsys, solver):
    _quiet_fit(MLPClassifier(solver=solver, max_iter=3, verbose=True), X_DIGITS, Y_DIGITS)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out


def test_sample_weight_two_equals_a_duplicated_row():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    w = np.ones(40)
    w[:10] = 2.0
    kwargs = dict(solver="lbfgs", hidden_layer_sizes=6, random_state=0, max_iter=50)
    weighted = _quiet_fit(MLPClassifier(**kwargs), X, y, sample_weight=w)
    repeated = _quiet_fit(
        MLPClassifier(**kwargs), np.vstack([X, X[:10]]), np.concatenate([y, y[:10]])
    )
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-5)
    plain = _quiet_fit(MLPClassifier(**kwargs), X, y)
    assert not np.allclose(weighted.predict_proba(X), plain.predict_proba(X), rtol=1e-5)


def test_l2_penalty_shrinks_weights():
    norms = []
    for alpha in (0.0, 1.0, 10.0):
        est = _quiet_fit(
            MLPClassifier(hidden_layer_sizes=10, alpha=alpha, random_state=1), X_DIGITS, Y_DIGITS
        )
        norms.append(sum(np.abs(c).sum() for c in est.coefs_))
    assert norms[0] > norms[1] > norms[2]


def test_learning_rate_schedules_set_the_optimizer_rate():
    kwargs = dict(solver="sgd", max_iter=1, warm_start=True, learning_rate_init=0.1)
    est = _quiet_fit(
        MLPClassifier(learning_rate="invscaling", power_t=0.5, **kwargs), X_DIGITS, Y_DIGITS
    )
    assert est._optimizer.optimizer.lr == pytest.approx(0.1 / (150 + 1) ** 0.5, rel=1e-12)
    est = _quiet_fit(MLPClassifier(learning_rate="constant", **kwargs), X_DIGITS, Y_DIGITS)
    assert est._optimizer.optimizer.lr == 0.1
    adaptive = MLPClassifier(solver="sgd", learning_rate="adaptive", tol=1e9, max_iter=500)
    adaptive.fit(X_DIGITS[:20], Y_DIGITS[:20])
    assert adaptive._optimizer.optimizer.lr <= 1e-6 and adaptive.n_iter_ < 500


def test_early_stopping_keeps_the_best_weights_and_scores():
    clf = MLPClassifier(early_stopping=True, random_state=0, max_iter=300, n_iter_no_change=3)
    clf.fit(X_DIGITS, Y_DIGITS)
    assert clf.n_iter_ < 300 and clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_errors_as_scikit_learn():
    clf = MLPClassifier(solver="sgd")
    clf.partial_fit(X_DIGITS, Y_DIGITS, classes=[0, 1, 2])
    with pytest.raises(ValueError):
        clf.partial_fit(X_DIGITS, Y_DIGITS, classes=[0, 1, 5])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X_DIGITS, Y_DIGITS)
    fitted = _quiet_fit(MLPClassifier(early_stopping=True, max_iter=5), X_DIGITS, Y_DIGITS)
    state = dict(vars(fitted))
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        fitted.partial_fit(X_DIGITS, Y_DIGITS, classes=[0, 1, 2])
    assert vars(fitted).keys() == state.keys()
    assert all(vars(fitted)[k] is v for k, v in state.items())  # refused before any change
    with pytest.raises(ValueError, match="The validation set is too small"):
        MLPRegressor(early_stopping=True).fit(X_DIGITS[:3], Y_DIGITS[:3])
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="solver"):
        MLPClassifier(solver="newton").fit(X_DIGITS, Y_DIGITS)
    with pytest.raises(ValueError, match="backend"):
        MLPClassifier(backend="tensorflow").fit(X_DIGITS, Y_DIGITS)


# --------------------------------------------------------------------------- the network
def test_predict_on_one_row_reuses_the_network(monkeypatch):
    """Issue 10 bullet 22: no network is built (no initialisation drawn) per predict call."""
    clf = _quiet_fit(
        MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0), X_DIGITS, Y_DIGITS
    )
    builds = []
    original = nnxp.Sequential.__init__

    def counting(self, *args, **kwargs):
        builds.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(nnxp.Sequential, "__init__", counting)
    net = clf.network_
    for _ in range(20):
        clf.predict(X_DIGITS[:1])
        clf.predict_proba(X_DIGITS[:1])
    assert builds == [] and clf.network_ is net


def test_coefs_are_read_only_copies_and_assigning_them_rebuilds_once():
    clf = _quiet_fit(
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0), X_DIGITS, Y_DIGITS
    )
    with pytest.raises(ValueError, match="read-only"):
        clf.coefs_[0][0, 0] = 1.0
    before = clf.predict_proba(X_DIGITS)
    np.testing.assert_allclose(nnxp.to_numpy(clf.network_.layers[0].W), clf.coefs_[0].T)
    clf.coefs_ = [np.zeros_like(c) for c in clf.coefs_]
    clf.intercepts_ = [np.zeros_like(b) for b in clf.intercepts_]
    after = clf.predict_proba(X_DIGITS)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, 1.0 / 3.0)
    assert np.all(nnxp.to_numpy(clf.network_.layers[0].W) == 0)


def test_pickle_round_trip_and_continue_training(tmp_path):
    reg = MLPRegressor(hidden_layer_sizes=(8,), random_state=0, max_iter=20)
    _quiet_fit(reg, X_DIGITS, Y_DIGITS.astype(float))
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X_DIGITS), reg.predict(X_DIGITS))
    for est in (reg, again):
        est.partial_fit(X_DIGITS, Y_DIGITS.astype(float))
    np.testing.assert_allclose(again.predict(X_DIGITS), reg.predict(X_DIGITS), rtol=1e-12)


def test_export_onnx_delegates_to_nnxp_onnx(tmp_path, monkeypatch):
    onnx_module = pytest.importorskip("nnxp.onnx")
    calls = []
    monkeypatch.setattr(onnx_module, "export_onnx", lambda obj, path: calls.append((obj, path)))
    clf = _quiet_fit(
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0), X_DIGITS, Y_DIGITS
    )
    clf.export_onnx(tmp_path / "m.onnx")
    assert calls == [(clf, tmp_path / "m.onnx")]
    poisson = _quiet_fit(
        MLPRegressor(loss="poisson", max_iter=3, random_state=0), X_DIGITS, Y_DIGITS
    )
    with pytest.raises(ValueError, match="poisson"):
        poisson.export_onnx(tmp_path / "p.onnx")


@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression"])
def test_onnx_round_trip_gives_the_estimator_outputs(tmp_path, backend, kind):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    X = X_DIGITS.astype(np.float32)
    y = {"multiclass": Y_DIGITS, "binary": Y_DIGITS == 1, "regression": Y_DIGITS * 1.0}[kind]
    Estimator = MLPRegressor if kind == "regression" else MLPClassifier
    est = _quiet_fit(
        Estimator(hidden_layer_sizes=(16,), max_iter=20, random_state=0, backend=backend.name),
        X,
        y,
    )
    est.export_onnx(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (Y,) = session.run(None, {"X": X})
    if kind == "multiclass":
        expected = est.predict_proba(X)
    elif kind == "binary":
        expected = est.predict_proba(X)[:, 1:]
    else:
        expected = est.predict(X)[:, None]
    np.testing.assert_allclose(Y, expected, rtol=1e-5, atol=1e-6)


def test_set_params_backend_moves_the_fitted_network():
    kwargs = dict(hidden_layer_sizes=(6,), solver="sgd", max_iter=3, random_state=0)
    est = _quiet_fit(MLPClassifier(warm_start=True, **kwargs), X_DIGITS, Y_DIGITS)
    reference = _quiet_fit(MLPClassifier(warm_start=True, **kwargs), X_DIGITS, Y_DIGITS)
    est.set_params(backend="array_api_strict")
    np.testing.assert_allclose(est.predict_proba(X_DIGITS), reference.predict_proba(X_DIGITS))
    assert est.network_.backend.name == "array_api_strict"
    _quiet_fit(est, X_DIGITS, Y_DIGITS)  # warm start continues there, momentum included
    _quiet_fit(reference, X_DIGITS, Y_DIGITS)
    for a, b in zip(est.coefs_, reference.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
