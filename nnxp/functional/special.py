"""Special functions the Array API standard lacks: ``erf``/``erfc``, and an accurate sigmoid.

``erf`` uses Cephes' rational approximations (S. L. Moshier, public domain; the ones SciPy's
``ndtr`` compiles): ``x T(x^2) / U(x^2)`` for ``|x| <= 1``, ``exp(-x^2) P(|x|) / Q(|x|)``
for ``1 < |x| < 8`` and ``exp(-x^2) R(|x|) / S(|x|)`` beyond. ``exp(-x^2)`` is taken as
``exp(-m^2) exp(-f (|x| + m))`` with ``m`` the nearest multiple of 1/16, so the tails keep
their relative precision. Relative error against ``scipy.special.erf``/``erfc``: a few units
in the last place in float64 and float32.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

Array = Any

_T = (
    9.60497373987051638749e0,
    9.00260197203842689217e1,
    2.23200534594684319226e3,
    7.00332514112805075473e3,
    5.55923013010394962768e4,
)
_U = (  # leading 1.0 implied
    3.35617141647503099647e1,
    5.21357949780152679795e2,
    4.59432382970980127987e3,
    2.26290000613890934246e4,
    4.92673942608635921086e4,
)
_P = (
    2.46196981473530512524e-10,
    5.64189564831068821977e-1,
    7.46321056442269912687e0,
    4.86371970985681366614e1,
    1.96520832956077098242e2,
    5.26445194995477358631e2,
    9.34528527171957607540e2,
    1.02755188689515710272e3,
    5.57535335369399327526e2,
)
_Q = (  # leading 1.0 implied
    1.32281951154744992508e1,
    8.67072140885989742329e1,
    3.54937778887819891062e2,
    9.75708501743205489753e2,
    1.82390916687909736289e3,
    2.24633760818710981792e3,
    1.65666309194161350182e3,
    5.57535340817727675546e2,
)
_R = (
    5.64189583547755073984e-1,
    1.27536670759978104416e0,
    5.01905042251180477414e0,
    6.16021097993053585195e0,
    7.40974269950448939160e0,
    2.97886665372100240670e0,
)
_S = (  # leading 1.0 implied
    2.26052863220117276590e0,
    9.39603524938001434673e0,
    1.20489539808096656605e1,
    1.70814450747565897222e1,
    9.60896809063285878198e0,
    3.36907645100081516050e0,
)
#: erfc(x) underflows float64 beyond this; clipping here keeps x*x finite
_CLIP = 27.0


def _poly(x: Array, coefficients: tuple[float, ...], monic: bool = False) -> Array:
    """Horner: ``c0 x^n + ... + cn`` (with an implied leading 1 when ``monic``)."""
    if monic:
        y = x + coefficients[0]
        rest = coefficients[1:]
    else:
        y = coefficients[0] * x + coefficients[1]
        rest = coefficients[2:]
    for c in rest:
        y = y * x + c
    return y


def erf_and_erfc(x: Array, *, xp: Any = None) -> tuple[Array, Array]:
    """``(erf(x), erfc(x))`` element-wise, in the dtype of the real floating array ``x``.

    Both come from one evaluation; ``erfc`` keeps its relative precision for large ``x``
    (where ``1 - erf(x)`` would cancel), which GELU's tail uses.
    """
    xp = xp or array_namespace(x)
    ax = xp.minimum(xp.abs(x), _CLIP)
    z = xp.minimum(ax * ax, 1.0)  # the branch serves |x| <= 1; nothing overflows elsewhere
    small = x * _poly(z, _T) / _poly(z, _U, monic=True)
    m = xp.round(ax * 16.0) / 16.0  # exact square: a few significant bits
    tail = xp.exp(-(m * m)) * xp.exp(-(ax - m) * (ax + m))
    middle = _poly(ax, _P) / _poly(ax, _Q, monic=True)  # 1 < |x| < 8
    far = _poly(ax, _R) / _poly(ax, _S, monic=True)  # |x| >= 8
    erfc_ax = tail * xp.where(ax < 8.0, middle, far)  # erfc(|x|) for |x| > 1
    inside = ax <= 1.0
    positive = x >= 0.0
    erf = xp.where(inside, small, xp.where(positive, 1.0 - erfc_ax, erfc_ax - 1.0))
    erfc = xp.where(inside, 1.0 - small, xp.where(positive, erfc_ax, 2.0 - erfc_ax))
    return erf, erfc


def erf(x: Array, *, xp: Any = None) -> Array:
    """The error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``, element-wise."""
    return erf_and_erfc(x, xp=xp)[0]


def erfc(x: Array, *, xp: Any = None) -> Array:
    """``1 - erf(x)`` without cancellation for large ``x``."""
    return erf_and_erfc(x, xp=xp)[1]


def sigmoid(A: Array, *, xp: Any = None) -> Array:
    """``1 / (1 + exp(-A))`` with full relative precision in both tails.

    Computed as ``E / (1 + E)`` with ``E = exp(A)``, three roundings: the relative error
    stays within a few units in the last place everywhere the result is a normal number
    (float32: ``< 1e-6`` down to ``A = -87``), where ``(1 + tanh(A/2)) / 2`` cancels in
    the negative tail. ``A`` is first clipped from above where ``exp(A)`` would overflow
    (88 in float32, 709 in float64): the output there is 1 in any case, and nothing
    overflows or warns (``exp`` of a very negative ``A`` underflows quietly to a subnormal
    or zero, the true output's value). Four operations, as the textbook form.
    """
    xp = xp or array_namespace(A)
    E = xp.exp(xp.minimum(A, 88.0 if A.dtype == xp.float32 else 709.0))
    E /= E + 1.0  # in place on our own temporary
    return E
