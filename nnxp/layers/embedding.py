"""The embedding layer: integer tokens ``(N, T)`` -> vectors ``(N, T, dim)``."""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from ..backend import asarray, get_backend
from ..functional.embedding import METHODS, embedding_backward, embedding_forward
from ._sequence import SequenceLayer
from .core import BuildContext
from .registry import register

Array = Any


@register
class Embedding(SequenceLayer):
    """A lookup table of ``n_tokens`` vectors (PyTorch's ``nn.Embedding``: ``params["W"]`` is
    its ``weight``, initialised ``N(0, 1)`` as there).

    Parameters
    ----------
    n_tokens : int
        ``V``, the vocabulary size: tokens are integers in ``[0, V)``.
    dim : int
        ``D``, the size of each vector.
    mask_zero : bool, default False
        Token 0 is padding: :meth:`compute_mask` gives ``tokens != 0`` as the sequence mask
        for the layers after this one (as Keras).
    grad_method : {"sorted", "onehot"}, default "sorted"
        How the weight gradient's scatter-add is computed (see
        :mod:`nnxp.functional.embedding`).

    Notes
    -----
    The input is integer data, so :meth:`backward` returns None (there is no ``dE/dX``). The
    range of the ids is checked on the host outside training (``forward(training=False)``,
    :meth:`check_input`); in training a network checks the whole data set once with
    :meth:`check_input` rather than reading the device back every step.
    """

    integer_input = True  # a network must not cast its input to the float dtype

    def __init__(
        self, n_tokens: int, dim: int, mask_zero: bool = False, grad_method: str = "sorted"
    ) -> None:
        for what, value in (("n_tokens", n_tokens), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Embedding {what} must be a positive integer, got {value!r}")
        if not isinstance(mask_zero, bool):
            raise TypeError(f"Embedding mask_zero must be True or False, got {mask_zero!r}")
        if grad_method not in METHODS:
            raise ValueError(f"Embedding grad_method must be one of {METHODS}, got {grad_method!r}")
        super().__init__()
        self.n_tokens = n_tokens
        self.dim = dim
        self.mask_zero = mask_zero
        self.grad_method = grad_method
        self._ids: Array = None

    def describe(self) -> str:
        return f"Embedding({self.n_tokens} tokens -> {self.dim})"

    def _settings(self) -> dict:
        return {
            "n_tokens": self.n_tokens,
            "dim": self.dim,
            "mask_zero": self.mask_zero,
            "grad_method": self.grad_method,
        }

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        shape = (self.n_tokens, self.dim)
        if ctx.host_rng is None:
            W = ctx.backend.xp.zeros(shape, dtype=ctx.dtype, device=ctx.backend.device)
        else:
            W = asarray(ctx.host_rng.standard_normal(shape), dtype=ctx.dtype, backend=ctx.backend)
        self.params = {"W": W}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W": (self.n_tokens, self.dim)}

    def forget(self) -> None:
        self._ids = None

    def output_width(self, n_inputs: int | None) -> int:
        return self.dim

    def output_shape(self, input_shape: tuple) -> tuple:
        return (*tuple(input_shape), self.dim)

    def _check_tokens(self, X: Array, xp: Any) -> None:
        if not hasattr(X, "dtype") or not xp.isdtype(X.dtype, "integral"):
            raise TypeError(
                f"{self.label} expects integer token ids, got dtype {getattr(X, 'dtype', None)} "
                f"(convert with nnxp.asarray(tokens, dtype='int64') or xp.astype)"
            )
        if X.ndim < 1:
            raise ValueError(f"{self.label} expects token ids of shape (n_samples, n_steps)")

    def check_input(self, X: Array) -> None:
        """Raise naming this layer unless ``X`` holds integer ids in ``[0, n_tokens)``.

        Reads two numbers back to the host (the smallest and largest id)."""
        xp = self.xp if getattr(self, "backend", None) is not None else get_backend().xp
        self._check_tokens(X, xp)
        if X.size == 0:
            return
        low, high = int(xp.min(X)), int(xp.max(X))
        if low < 0 or high >= self.n_tokens:
            raise ValueError(
                f"{self.label}: token ids must be in [0, {self.n_tokens}), got ids from {low} "
                f"to {high}"
            )

    def compute_mask(self, X: Array) -> Array | None:
        """The sequence mask ``X != 0`` with ``mask_zero``, else None."""
        return (X != 0) if self.mask_zero else None

    def forward(self, X: Array, *, training: bool = False) -> Array:
        """Rows of ``W`` for each token.

        Parameters
        ----------
        X : integer array of shape (N, T) (any shape works)
        training : bool
            In training the id range is not read back (see the class notes).

        Returns
        -------
        array of shape (N, T, dim)
        """
        if getattr(self, "backend", None) is None:
            backend = get_backend()
            self._ensure_built(backend.xp.zeros((), dtype=backend.xp.float32))
        if training:
            self._check_tokens(X, self.xp)
        else:
            self.check_input(X)
        self._ids = X
        return embedding_forward(X, self.params["W"], xp=self.xp)

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> None:
        """Stores ``grads = {"W": dE/dW}`` (a scatter-add of ``dEdY`` rows); returns None."""
        if self._ids is None:
            raise RuntimeError(f"{self.label}: backward called before forward")
        self.grads = {
            "W": embedding_backward(
                self._ids, dEdY, self.n_tokens, method=self.grad_method, xp=self.xp
            )
        }
        return None


@register
class PositionEmbedding(SequenceLayer):
    """Learned positions added to a sequence: ``Y[:, t] = X[:, t] + P[t]`` (BERT/GPT-2 style).

    Parameters
    ----------
    max_steps : int
        The longest sequence it takes.
    dim : int
        Features per step.

    Attributes
    ----------
    params : {"P": (max_steps, dim)}, initialised ``N(0, 0.02^2)`` as GPT-2
    """

    def __init__(self, max_steps: int, dim: int) -> None:
        for what, value in (("max_steps", max_steps), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"PositionEmbedding {what} must be a positive integer, got {value!r}"
                )
        super().__init__()
        self.max_steps, self.dim = max_steps, dim
        self._T: int | None = None

    def describe(self) -> str:
        return f"PositionEmbedding({self.max_steps} steps, {self.dim})"

    def _settings(self) -> dict:
        return {"max_steps": self.max_steps, "dim": self.dim}

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        shape = (self.max_steps, self.dim)
        if ctx.host_rng is None:
            P = ctx.backend.xp.zeros(shape, dtype=ctx.dtype, device=ctx.backend.device)
        else:
            P = asarray(
                0.02 * ctx.host_rng.standard_normal(shape), dtype=ctx.dtype, backend=ctx.backend
            )
        self.params = {"P": P}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"P": (self.max_steps, self.dim)}

    def forget(self) -> None:
        self._T = None

    def output_width(self, n_inputs: int | None) -> int:
        self._check_width(n_inputs, self.dim)
        return self.dim

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 3 or (input_shape[1] or 0) > self.max_steps:
            raise ValueError(
                f"{self.label} expects input of shape (n_samples, n_steps <= {self.max_steps}, "
                f"{self.dim}), got shape {tuple(input_shape)}"
            )
        self.output_width(input_shape[-1])
        return tuple(input_shape)

    def forward(self, X: Array, *, training: bool = False) -> Array:
        """``X + P[:T]`` for ``X`` of shape (N, T, dim), ``T <= max_steps``."""
        self._ensure_built(X)
        what = f"(n_samples, n_steps <= {self.max_steps}, {self.dim})"
        self._check_float_input(X, 3, self.dim, what)
        if X.shape[1] > self.max_steps:
            raise ValueError(f"{self.label} expects input of shape {what}, got {tuple(X.shape)}")
        self._T = X.shape[1]
        return X + self.params["P"][: self._T, :]

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        if self._T is None:
            raise RuntimeError(f"{self.label}: backward called before forward")
        xp = self.xp
        dP = xp.sum(dEdY, axis=0)  # (T, dim)
        pad = self.max_steps - self._T
        if pad:
            dP = xp.concat([dP, xp.zeros((pad, self.dim), dtype=dP.dtype, device=device(dP))])
        self.grads = {"P": dP}
        return dEdY if need_dX else None
