"""Implied volatility and Greeks of European options: Black-76 and Black–Scholes–Merton.

Kernels follow the numba-stats pattern: a scalar ``@jit`` function per quantity (usable
from a user's own ``numba.njit(parallel=True)`` code) plus an array loop, wrapped by thin
public functions that broadcast their arguments. The array loops run branch-free versions
of the kernels first, which LLVM vectorises, and the general ones on the rows those leave
(the scalar kernels decide the same way, so both give the same bits).

Conventions (see ``docs/greeks.md`` for the formulas and the accuracy evidence):

* ``model="black76"``: ``underlying`` is the forward ``F`` (futures price or synthetic
  forward); the premium is discounted at ``r``; ``q`` is ignored.
* ``model="bsm"``: ``underlying`` is the spot ``S`` with continuous dividend yield ``q``;
  the forward is ``F = S·exp((r - q)·t)``.
* ``t`` in years (ACT/365 to the minute by default), ``sigma``, ``r``, ``q`` continuously
  compounded annual rates as fractions (0.07 means 7 %).
* Desk units: theta per calendar day (``-∂V/∂t / 365``), vega per vol point
  (``∂V/∂σ · 0.01``), rho per 1 % rate (``∂V/∂r · 0.01``).

Implied volatility inverts the normalised Black function ``b(x, s)`` (``x = ln(F/K)``,
``s = σ√t``) in the manner of Jäckel's "Let's Be Rational": reflection to the
out-of-the-money side, four branches with rational-cubic initial guesses and Householder(3)
iterations on branch-specific objective functions, on top of a Cody-style ``erfcx``.
No function here raises for numeric input: degenerate rows give NaN and an
:class:`IVStatus` code.
"""

from __future__ import annotations

import enum
import math
from fractions import Fraction
from typing import Literal, NamedTuple, overload

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic
from numba.extending import overload as _numba_overload
from numpy.typing import ArrayLike

from ._jit import jit

__all__ = [
    "MODEL_BLACK76",
    "MODEL_BSM",
    "Greeks",
    "IVStatus",
    "black76_greeks_scalar",
    "black76_implied_vol_scalar",
    "black76_price_scalar",
    "bsm_greeks_scalar",
    "bsm_implied_vol_scalar",
    "bsm_price_scalar",
    "greeks",
    "greeks_scalar",
    "implied_vol",
    "implied_vol_scalar",
    "implied_vol_status",
    "normalised_black_scalar",
    "normalised_implied_vol_scalar",
    "price",
    "price_scalar",
]


class IVStatus(enum.IntEnum):
    """Outcome of an implied-volatility inversion, one ``int8`` per option.

    Every status other than ``OK`` and ``AT_INTRINSIC`` comes with a NaN volatility.
    """

    OK = 0
    """A volatility exists and was found to full precision."""
    BELOW_INTRINSIC = 1
    """Premium below the discounted intrinsic value: no volatility exists."""
    ABOVE_MAXIMUM = 2
    """Premium at or above the no-arbitrage maximum (``DF·F`` for a call, ``DF·K`` for a
    put): no finite volatility exists."""
    EXPIRED = 3
    """``t <= 0``."""
    BAD_INPUT = 4
    """A non-finite input, or a non-positive premium, underlying or strike."""
    NO_CONVERGENCE = 5
    """The iteration failed; never observed for valid input, kept as a safety net."""
    AT_INTRINSIC = 6
    """Premium equal to the discounted intrinsic value (within 2 ulp): the volatility is
    exactly 0 and is returned as ``0.0`` — flagged because a zero vol is usually a stale or
    floored quote rather than information."""


MODEL_BLACK76 = 0
"""Integer model code of Black-76 for :func:`implied_vol_scalar` and friends."""
MODEL_BSM = 1
"""Integer model code of Black–Scholes–Merton for :func:`implied_vol_scalar` and friends."""

_OK = 0
_BELOW_INTRINSIC = 1
_ABOVE_MAXIMUM = 2
_EXPIRED = 3
_BAD_INPUT = 4
_NO_CONVERGENCE = 5
_AT_INTRINSIC = 6

_NAN = math.nan
_INF = math.inf
_EPS = 2.220446049250313e-16  # 2**-52
_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_SQRT_PI_OVER_2 = 1.2533141373155003
_INV_SQRT_PI = 0.5641895835477563
_SQRT3 = 1.7320508075688772
_TWO_PI_OVER_3SQRT3 = 1.2091995761561452  # 2π / (3√3)
_DAYS_PER_YEAR = 365.0
_PER_DAY = 1.0 / _DAYS_PER_YEAR

# --------------------------------------------------------------------------------------
# Special functions
# --------------------------------------------------------------------------------------
# erfcx(x) = exp(x²)·erfc(x) by W. J. Cody's rational Chebyshev approximations
# ("Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969),
# 631–637; coefficients as in Netlib SPECFUN CALERF), evaluated without ever forming
# exp(-x²) on [0.46875, ∞), so the scaled function keeps full relative precision in the
# far tail where erfc itself underflows.

_CA0 = 3.16112374387056560e00
_CA1 = 1.13864154151050156e02
_CA2 = 3.77485237685302021e02
_CA3 = 3.20937758913846947e03
_CA4 = 1.85777706184603153e-1
_CB0 = 2.36012909523441209e01
_CB1 = 2.44024637934444173e02
_CB2 = 1.28261652607737228e03
_CB3 = 2.84423683343917062e03

_CC0 = 5.64188496988670089e-1
_CC1 = 8.88314979438837594e00
_CC2 = 6.61191906371416295e01
_CC3 = 2.98635138197400131e02
_CC4 = 8.81952221241769090e02
_CC5 = 1.71204761263407058e03
_CC6 = 2.05107837782607147e03
_CC7 = 1.23033935479799725e03
_CC8 = 2.15311535474403846e-8
_CD0 = 1.57449261107098347e01
_CD1 = 1.17693950891312499e02
_CD2 = 5.37181101862009858e02
_CD3 = 1.62138957456669019e03
_CD4 = 3.29079923573345963e03
_CD5 = 4.36261909014324716e03
_CD6 = 3.43936767414372164e03
_CD7 = 1.23033935480374942e03

_CP0 = 3.05326634961232344e-1
_CP1 = 3.60344899949804439e-1
_CP2 = 1.25781726111229246e-1
_CP3 = 1.60837851487422766e-2
_CP4 = 6.58749161529837803e-4
_CP5 = 1.63153871373020978e-2
_CQ0 = 2.56852019228982242e00
_CQ1 = 1.87295284992346047e00
_CQ2 = 5.27905102951428412e-1
_CQ3 = 6.05183413124413191e-2
_CQ4 = 2.33520497626869185e-3


@jit
def _erf_small(x):
    """erf(x) for |x| <= 0.46875."""
    y = x * x
    num = (((_CA4 * y + _CA0) * y + _CA1) * y + _CA2) * y + _CA3
    den = (((y + _CB0) * y + _CB1) * y + _CB2) * y + _CB3
    return x * num / den


@jit
def _erfcx_pos(x):
    """erfcx(x) = exp(x²)·erfc(x) for x > 0.46875 (no exponential evaluated).

    On (0.46875, 4] the degree-8 rational is evaluated in Estrin form (all coefficients
    positive, so the reordering costs no accuracy and halves the dependency chain).
    """
    if x <= 4.0:
        x2 = x * x
        x4 = x2 * x2
        num = ((_CC7 + _CC6 * x) + (_CC5 + _CC4 * x) * x2) \
            + ((_CC3 + _CC2 * x) + (_CC1 + _CC0 * x) * x2) * x4 + _CC8 * (x4 * x4)
        den = ((_CD7 + _CD6 * x) + (_CD5 + _CD4 * x) * x2) \
            + ((_CD3 + _CD2 * x) + (_CD1 + _CD0 * x) * x2) * x4 + x4 * x4
        return num / den
    if x >= 6.71e7:  # the 1/x² series correction is below rounding
        return _INV_SQRT_PI / x
    y = 1.0 / (x * x)
    num = ((((_CP5 * y + _CP0) * y + _CP1) * y + _CP2) * y + _CP3) * y + _CP4
    den = ((((y + _CQ0) * y + _CQ1) * y + _CQ2) * y + _CQ3) * y + _CQ4
    return (_INV_SQRT_PI - y * num / den) / x


@jit
def _erfcx_nn(x):
    """erfcx(x) = exp(x²)·erfc(x) for x >= 0 (every argument the kernels need)."""
    if x > 0.46875:
        return _erfcx_pos(x)
    return math.exp(x * x) * (1.0 - _erf_small(x))


@jit
def _exp_neg_sq(x):
    """exp(-x²) for x >= 0 with Cody's argument split (no loss from rounding x²)."""
    if x > 27.3:
        return 0.0
    xs = math.floor(16.0 * x) / 16.0
    return math.exp(-xs * xs) * math.exp(-(x - xs) * (x + xs))


@jit
def _erfc(x):
    """Complementary error function, any real x, full relative precision for x > 0."""
    if x > 0.46875:
        return _exp_neg_sq(x) * _erfcx_pos(x)
    if x >= -0.46875:
        return 1.0 - _erf_small(x)
    if x < -6.0:
        return 2.0
    return 2.0 - _exp_neg_sq(-x) * _erfcx_pos(-x)


@jit
def _norm_cdf(z):
    """Standard normal cumulative distribution Φ(z), full relative precision for z < 0.

    In the lower tail Φ(z) = ½·erfcx(-z/√2)·exp(-z²/2), with exp(-z²/2) split as in Cody's
    erfc so that the rounding of z² costs nothing.
    """
    if z != z:
        return _NAN
    if z < -0.6629126073623883:  # -z/√2 > 0.46875
        if z < -38.5:
            return 0.0
        zs = math.floor(16.0 * z) / 16.0
        e = math.exp(-0.5 * zs * zs) * math.exp(-0.5 * (z - zs) * (z + zs))
        return 0.5 * e * _erfcx_pos(-z * _INV_SQRT2)
    return 0.5 * _erfc(-z * _INV_SQRT2)


@jit
def _mills_y(z):
    """Y(z) = Φ(z)/φ(z) = √(π/2)·erfcx(-z/√2), for z <= 0 (finite, no cancellation)."""
    return _SQRT_PI_OVER_2 * _erfcx_nn(-z * _INV_SQRT2)


# Inverse normal distribution, M. J. Wichura, Algorithm AS 241 (PPND16),
# Appl. Statist. 37 (1988) 477–484: relative accuracy about 1e-16. Used only for the
# initial guesses of the implied-volatility iteration.
_PA = (3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3,
       1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
       3.3430575583588128105e4, 2.5090809287301226727e3)
_PB = (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
       2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
       5.2264952788528545610e3)
_PC = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
       3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
       2.27238449892691845833e-2, 7.74545014278341407640e-4)
_PD = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
       1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
       1.05075007164441684324e-9)
_PE = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
       2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
       2.71155556874348757815e-5, 2.01033439929228813265e-7)
_PF = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
       7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
       2.04426310338993978564e-15)


@jit
def _poly7(c, x):
    return (((((((c[7] * x + c[6]) * x + c[5]) * x + c[4]) * x + c[3]) * x + c[2]) * x
             + c[1]) * x + c[0])


@jit
def _norm_ppf(p):
    """Φ⁻¹(p) for 0 < p < 1 (±inf at the ends, NaN outside)."""
    if not (p > 0.0):
        return -_INF if p == 0.0 else _NAN
    if not (p < 1.0):
        return _INF if p == 1.0 else _NAN
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _poly7(_PA, r) / _poly7(_PB, r)
    v = _norm_ppf_tail(math.log(p if q < 0.0 else 1.0 - p))
    return v if q < 0.0 else -v


@jit
def _norm_ppf_tail(lnp):
    """Φ⁻¹(p) from ln p for p < 0.075 (AS 241's tail rationals in r = √(-ln p))."""
    r = math.sqrt(-lnp)
    if r <= 5.0:
        r -= 1.6
        return -_poly7(_PC, r) / _poly7(_PD, r)
    r -= 5.0
    return -_poly7(_PE, r) / _poly7(_PF, r)


@jit
def _norm_ppf_log(lnp):
    """Φ⁻¹(exp(lnp)) for lnp < ln ½, without forming p in the tail."""
    if lnp < -2.5902671654458267:  # p < 0.075
        return _norm_ppf_tail(lnp)
    q = math.exp(lnp) - 0.5
    r = 0.180625 - q * q
    return q * _poly7(_PA, r) / _poly7(_PB, r)


# --------------------------------------------------------------------------------------
# The normalised Black function b(x, s) on the out-of-the-money side (x <= 0)
# --------------------------------------------------------------------------------------
#   b(x, s) = exp(x/2)·Φ(h + t) - exp(-x/2)·Φ(h - t),   h = x/s, t = s/2,
#           = exp(-q)·D,   q = (h² + t²)/2,   D = [Y(h + t) - Y(h - t)]/√(2π),
# with Y = Φ/φ.  b'(s) = ∂b/∂s = exp(-q)/√(2π).  The complement
#   c = b_max - b = exp(x/2) - b = exp(-q)·C,  C = [Y(-h - t) + Y(h - t)]/√(2π),
# is a sum of positive terms.  Three ways to evaluate:
#   * h + t <= 0: D as the difference of two erfcx values (cancellation ≈ (|h| + t)/(2t));
#   * h + t > 0: C as the sum of two erfcx values and b = b_max - c (cancellation ≈ 1.25/t
#     for small s near the money);
#   * t < 0.21 and |x| < 1, where those cancellations would cost more than allowed: the
#     Taylor series of D in t, with Y⁽ⁿ⁾(h) by its recurrence (every term positive).
# The implied-vol iteration always takes the series where it applies for its final step
# (full precision in s); prices and Greeks accept up to 8 bits of cancellation (< 6e-14
# relative) before switching to it, the initial guesses up to 1e-10.

_SERIES_T = 0.21
_SERIES_X = 1.0
_H_UNDERFLOW = -40.0  # for h below this, b and b' underflow to 0 (q > 800)
_LOSS_GREEKS = 256.0  # prices and Greeks: erfcx forms unless they lose over 8 bits
_LOSS_GUESS = 1.0e6   # initial guess and first iteration: up to 1e-10 relative error


# 1/((n+1)(n+2)) for n = 1, 3, ..., 15: the ratios of consecutive t^(n)/n! at odd n
_SERIES_RATIOS = (1.0 / 6.0, 1.0 / 20.0, 1.0 / 42.0, 1.0 / 72.0, 1.0 / 110.0, 1.0 / 156.0,
                  1.0 / 210.0, 1.0 / 272.0)
# 1/(n+1) for n = 1, 3, ..., 15: from t^n/n! at odd n to t^(n+1)/(n+1)! (the even terms)
_EVEN_RATIOS = (1.0 / 2.0, 1.0 / 4.0, 1.0 / 6.0, 1.0 / 8.0, 1.0 / 10.0, 1.0 / 12.0, 1.0 / 14.0,
                1.0 / 16.0)


@jit
def _series_sum(h, t):
    """S = Σ_k Y⁽²ᵏ⁺¹⁾(h)·t²ᵏ⁺¹/(2k+1)!, so that D = √(2/π)·S (for t < 0.21).

    Y' = 1 + hY and Y⁽ⁿ⁺¹⁾ = h·Y⁽ⁿ⁾ + n·Y⁽ⁿ⁻¹⁾; every term is positive, so the sum is
    stopped as soon as a term drops below 1e-17 of it (2 to 9 terms).
    """
    y0 = _mills_y(h)
    y1 = 1.0 + h * y0
    w = t * t
    c = 1.0
    acc = y1
    ym = y1   # Y^(n)
    yp = y0   # Y^(n-1)
    n = 1.0
    for k in range(8):
        y2 = h * ym + n * yp
        y3 = h * y2 + (n + 1.0) * ym
        c *= w * _SERIES_RATIOS[k]
        term = y3 * c
        acc += term
        if term <= 1e-17 * acc:
            break
        yp = y2
        ym = y3
        n += 2.0
    return acc * t


@jit(inline="always")
def _series_sums(h, t):
    """(Σ_k Y⁽²ᵏ⁾(h)·t²ᵏ/(2k)!, Σ_k Y⁽²ᵏ⁺¹⁾(h)·t²ᵏ⁺¹/(2k+1)!): the even and odd parts of
    the Taylor series of Y(h ± t), so Y(h + t) = even + odd, Y(h - t) = even - odd and
    D = √(2/π)·odd; for the Greeks, which need Φ(h ± t) besides b (t < 0.21)."""
    y0 = _mills_y(h)
    y1 = 1.0 + h * y0
    w = t * t
    c = 1.0
    odd = y1
    even = y0
    ym = y1
    yp = y0
    n = 1.0
    for k in range(8):
        y2 = h * ym + n * yp
        y3 = h * y2 + (n + 1.0) * ym
        ce = c * w * (1.0 / (n + 1.0))
        c *= w * _SERIES_RATIOS[k]
        te = y2 * ce
        to = y3 * c
        even += te
        odd += to
        if to <= 1e-17 * odd and te <= 1e-17 * even:
            break
        yp = y2
        ym = y3
        n += 2.0
    return even, odd * t


@jit
def _use_series(h, t, x, loss):
    """Whether b(x, s) needs the series: t < 0.21, |x| < 1 and the cancellation of the
    erfcx forms, about (|h| + 2.5)/(2t), would exceed ``loss`` (1: always where allowed;
    inf: never)."""
    return t < _SERIES_T and x > -_SERIES_X and h > -60.0 and abs(h) + 2.5 > 2.0 * loss * t


@jit
def _black_otm(x, s, bmax, loss):
    """(b, b') = normalised OTM call price and its s-derivative.

    x <= 0, s > 0 finite, bmax = exp(x/2); ``loss`` as for :func:`_use_series`.
    """
    h = x / s
    if h < _H_UNDERFLOW:
        return 0.0, 0.0
    t = 0.5 * s
    q = 0.5 * (h * h + t * t)
    e = math.exp(-q) if q < 745.0 else 0.0
    vega = _INV_SQRT_2PI * e
    if _use_series(h, t, x, loss):
        return 2.0 * _INV_SQRT_2PI * _series_sum(h, t) * e, vega
    hpt = h + t
    if hpt <= 0.0:
        d = 0.5 * (_erfcx_nn(-hpt * _INV_SQRT2) - _erfcx_nn((t - h) * _INV_SQRT2))
        return d * e, vega
    c = 0.5 * (_erfcx_nn(hpt * _INV_SQRT2) + _erfcx_nn((t - h) * _INV_SQRT2))
    return bmax - c * e, vega


@jit
def _log_black_otm(x, s, bmax, loss):
    """(ln b, b'/b) without underflow, for the lowest branch; x < 0, s > 0."""
    h = x / s
    t = 0.5 * s
    hpt = h + t
    if hpt <= 0.0:
        q = 0.5 * (h * h + t * t)
        if _use_series(h, t, x, loss):
            d = 2.0 * _INV_SQRT_2PI * _series_sum(h, t)
        else:
            d = 0.5 * (_erfcx_nn(-hpt * _INV_SQRT2) - _erfcx_nn((t - h) * _INV_SQRT2))
        if not (d > 0.0):
            return -_INF, _INF
        return math.log(d) - q, _INV_SQRT_2PI / d
    b, bp = _black_otm(x, s, bmax, loss)
    if not (b > 0.0):
        return -_INF, _INF
    return math.log(b), bp / b


@jit
def _log_complement_otm(x, s, bmax, loss):
    """(ln c, b'/c) with c = exp(x/2) - b(x, s), for the upper branch; x <= 0, s > 0."""
    h = x / s
    t = 0.5 * s
    hpt = h + t
    if hpt > 0.0 and not _use_series(h, t, x, loss):
        q = 0.5 * (h * h + t * t)
        c = 0.5 * (_erfcx_nn(hpt * _INV_SQRT2) + _erfcx_nn((t - h) * _INV_SQRT2))
        return math.log(c) - q, _INV_SQRT_2PI / c
    b, bp = _black_otm(x, s, bmax, loss)
    c = bmax - b
    if not (c > 0.0):
        return -_INF, _INF
    return math.log(c), bp / c


@jit
def normalised_black_scalar(x, s, is_call):
    """Normalised Black price ``b(x, s) = B/√(F·K)`` (undiscounted), scalar ``@jit`` kernel.

    ``b = θ·[exp(x/2)·Φ(θ·(x/s + s/2)) - exp(-x/2)·Φ(θ·(x/s - s/2))]`` with
    ``x = ln(F/K)``, ``s = σ√t``, ``θ = +1`` for a call and ``-1`` for a put.
    In-the-money values are the normalised intrinsic plus the out-of-the-money value, so
    small time values keep full relative precision. ``s = 0`` gives the intrinsic value;
    NaN for NaN or negative ``s``.
    """
    if not (s >= 0.0) or x != x:
        return _NAN
    theta = 1.0 if is_call else -1.0
    if abs(x) > 1400.0:  # exp(|x|/2) overflows
        return _INF if theta * x > 0.0 else 0.0
    intrinsic = 0.0
    if theta * x > 0.0:
        intrinsic = theta * 2.0 * math.sinh(0.5 * x)
    if s == 0.0:
        return intrinsic
    if s == _INF:
        return math.exp(0.5 * theta * x)
    xo = -abs(x)
    b, _ = _black_otm(xo, s, math.exp(0.5 * xo), 1.0)
    return intrinsic + b


# --------------------------------------------------------------------------------------
# Rational cubic interpolation (Delbourgo & Gregory 1985) for the initial guesses
# --------------------------------------------------------------------------------------
_R_MIN = -(1.0 - 1.4901161193847656e-08)  # keeps the denominator positive
_R_MAX = 2.0 / (_EPS * _EPS)               # effectively linear interpolation


@jit
def _rational_cubic(xv, xl, xr, yl, yr, dl, dr, second, at_right):
    """Rational cubic through (xl, yl), (xr, yr) with slopes dl, dr, evaluated at xv.

    R = [yr z³ + (r yr - h dr) z² w + (r yl + h dl) z w² + yl w³] / [1 + (r - 3) z w],
    z = (xv - xl)/h, w = 1 - z (r = 3: cubic Hermite; r → ∞: straight line). The control
    r matches the second derivative ``second`` at the right end (``at_right``) or the left
    end — R''·h/2 = r(Δ - d_l) + d_l - d_r at the left, r(d_r - Δ) + d_l - d_r at the
    right, Δ the secant slope — and is then raised to the least value that keeps the data's
    monotonicity (r >= (d_l + d_r)/Δ) and convexity (r >= |d_r - d_l|/|Δ - d_l|,
    |d_r - d_l|/|d_r - Δ|).
    """
    h = xr - xl
    if not (h != 0.0):
        return 0.5 * (yl + yr)
    slope = (yr - yl) / h
    num = 0.5 * h * second + (dr - dl)
    den = (dr - slope) if at_right else (slope - dl)
    if num == 0.0:
        r = 0.0
    elif den == 0.0:
        r = _R_MAX
    else:
        r = num / den
    # shape preservation
    monotonic = dl * slope >= 0.0 and dr * slope >= 0.0
    convex = dl <= slope <= dr
    concave = dl >= slope >= dr
    r_min = _R_MIN
    if monotonic:
        r_min = max(r_min, (dr + dl) / slope if slope != 0.0 else _R_MAX)
    if convex or concave:
        a = slope - dl
        b = dr - slope
        if a != 0.0 and b != 0.0:
            r_min = max(r_min, abs((dr - dl) / b), abs((dr - dl) / a))
        else:
            r_min = _R_MAX
    r = max(r, r_min)
    z = (xv - xl) / h
    w = 1.0 - z
    if not (r < _R_MAX):
        return yr * z + yl * w
    zw = z * w
    num = yr * z * z * z + (r * yr - h * dr) * z * zw + (r * yl + h * dl) * zw * w \
        + yl * w * w * w
    return num / (1.0 + (r - 3.0) * zw)


# --------------------------------------------------------------------------------------
# Implied normalised volatility s = σ√t from β = b(x, s), x <= 0
# --------------------------------------------------------------------------------------
_BRANCH_LOWER = 0
_BRANCH_MIDDLE = 1
_BRANCH_UPPER = 2
_MAX_ITER = 12
_STOP = 5.0e-5  # stop after a relative step below this: the next error is < 1e-16


@jit
def _initial_guess(beta, x, bmax, cbeta):
    """Initial s and the branch whose objective function the iteration uses.

    The nodes: s_c = √(2|x|), the inflection point of s ↦ b(x, s), with
    b'(s_c) = b_max/√(2π); s_l and s_u where the tangent at s_c reaches 0 and b_max.
    """
    ax = -x
    vc = _INV_SQRT_2PI * bmax
    if ax == 0.0:
        sc = 0.0
        bc = 0.0
    else:
        sc = math.sqrt(2.0 * ax)
        # h + t = 0 at s_c:  b_c = b_max·[1 - erfcx(√|x|)]/2
        bc = 0.5 * bmax * (1.0 - _erfcx_nn(math.sqrt(ax)))
    if beta < bc:
        sl = sc - bc / vc
        if not (sl > 0.0):
            sl = 0.5 * sc
        bl, vl = _black_otm(x, sl, bmax, _LOSS_GUESS)
        if beta < bl and bl > 0.0:
            # lowest branch: interpolate f(β) for f(s) = k·Φ(z)³, z = -|x|/(√3 s), the
            # small-s asymptote of b, which is then inverted in closed form.
            k = _TWO_PI_OVER_3SQRT3 * ax
            z = -ax / (_SQRT3 * sl)
            yz = _mills_y(z)
            phiz = _INV_SQRT_2PI * math.exp(-0.5 * z * z)
            cdf = phiz * yz
            fl = k * cdf * cdf * cdf
            fs = 3.0 * k * cdf * cdf * phiz * (-z / sl)          # df/ds
            fss = fs * (z * z - 2.0 - 2.0 * z / yz) / sl          # d²f/ds²
            al = 3.0 * z * z / sl - 0.25 * sl                     # b''/b' = x²/s³ - s/4
            dfl = fs / vl
            d2fl = (fss - fs * al) / (vl * vl)
            f = _rational_cubic(beta, 0.0, bl, 0.0, fl, 1.0, dfl, d2fl, True)
            if not (0.0 < f < fl):
                u = beta / bl
                f = (fl * u + bl * (1.0 - u)) * u
            lnp = math.log(f / k) * (1.0 / 3.0)  # ln Φ(z) from f = k·Φ(z)³
            s = -ax / (_SQRT3 * _norm_ppf_log(lnp)) if lnp < -0.6931471805599453 else 0.5 * sl
            if not (0.0 < s < sl):
                s = 0.5 * sl
            return s, _BRANCH_LOWER
        dl = 1.0 / vl
        dc = 1.0 / vc
        s = _rational_cubic(beta, bl, bc, sl, sc, dl, dc, 0.0, True)
        return s, _BRANCH_MIDDLE
    su = sc + (bmax - bc) / vc
    bu, vu = _black_otm(x, su, bmax, _LOSS_GUESS)
    if beta <= bu:
        dc = 1.0 / vc
        du = 1.0 / vu
        s = _rational_cubic(beta, bc, bu, sc, su, dc, du, 0.0, False)
        return s, _BRANCH_MIDDLE
    # upper branch: interpolate f(β) for f(s) = Φ(-s/2) (b_max - b ≈ 2Φ(-s/2) for large
    # s), then s = -2Φ⁻¹(f).
    phiu = _INV_SQRT_2PI * math.exp(-0.125 * su * su)
    fu = phiu * _mills_y(-0.5 * su)
    fs = -0.5 * phiu
    fss = 0.125 * su * phiu
    au = x * x / (su * su * su) - 0.25 * su
    dfu = fs / vu
    d2fu = (fss - fs * au) / (vu * vu)
    f = _rational_cubic(beta, bu, bmax, fu, 0.0, dfu, -0.5, d2fu, False)
    if not (0.0 < f < fu):
        f = 0.5 * cbeta
    s = -2.0 * _norm_ppf(f)
    if not (s > su):
        s = su * 1.0000001
    return s, _BRANCH_UPPER


@jit
def _normalised_iv_otm(beta, x, bmax, cbeta):
    """s with b(x, s) = β for x <= 0 and 0 < β < b_max = exp(x/2); cbeta = b_max - β.

    Returns (s, status, iterations).
    """
    s, branch = _initial_guess(beta, x, bmax, cbeta)
    lo = 0.0
    hi = _INF
    lnbeta = math.log(beta) if branch == _BRANCH_LOWER else 0.0
    lncbeta = math.log(cbeta) if branch == _BRANCH_UPPER else 0.0
    for it in range(_MAX_ITER):
        # the first step may use the cheaper erfcx forms of b (up to 1e-10 relative
        # error); the last never does, and only exact evaluations narrow the bracket
        accurate = it > 0
        loss = 1.0 if accurate else _LOSS_GUESS
        if not (s > 0.0 and s < _INF):
            s = 0.5 * (lo + hi) if hi < _INF else 2.0 * lo + 1.0
        inv_s = 1.0 / s
        hh = x * inv_s
        a = hh * hh * inv_s - 0.25 * s                   # b''/b'
        b3 = a * a - 3.0 * (hh * inv_s) ** 2 - 0.25      # b'''/b'
        if branch == _BRANCH_MIDDLE:
            # g(s) = b(s) - β
            b, bp = _black_otm(x, s, bmax, loss)
            if accurate:
                if b < beta:
                    lo = s
                else:
                    hi = s
            nu = (beta - b) / bp
            h2 = a
            h3 = b3
        elif branch == _BRANCH_LOWER:
            # g(s) = 1/ln b(s) - 1/ln β
            u, up = _log_black_otm(x, s, bmax, loss)
            if accurate:
                if u < lnbeta:
                    lo = s
                else:
                    hi = s
            nu = (lnbeta - u) * u / (lnbeta * up)
            h2 = a - up - 2.0 * up / u
            h3 = b3 - 3.0 * up * a + 2.0 * up * up - 6.0 * up * (a - up) / u \
                + 6.0 * up * up / (u * u)
        else:
            # g(s) = ln(b_max - β) - ln(b_max - b(s))
            lc, qq = _log_complement_otm(x, s, bmax, loss)
            if accurate:
                if lc > lncbeta:
                    lo = s
                else:
                    hi = s
            nu = (lc - lncbeta) / qq
            h2 = a + qq
            h3 = b3 + 3.0 * qq * a + 2.0 * qq * qq
        if nu != nu:  # an evaluation failed: retry exactly, or bisect the bracket
            if not accurate:
                continue
            if hi < _INF:
                s = 0.5 * (lo + hi)
                continue
            return _NAN, _NO_CONVERGENCE, it + 1
        # Householder(3): ν(1 + h2·ν/2)/(1 + ν(h2 + h3·ν/6)), Newton if that misbehaves
        step = nu
        den = 1.0 + nu * (h2 + h3 * nu * (1.0 / 6.0))
        num = 1.0 + 0.5 * h2 * nu
        if den > 0.0 and num > 0.0 and abs(nu * num) <= 4.0 * abs(nu * den):
            step = nu * num / den
        if abs(step) <= _STOP * s:
            if it > 0:
                return s + step, _OK, it + 1
            s += step
            continue
        s_new = s + step
        if not (lo < s_new < hi):  # a step out of the bracket: bisect instead
            s_new = 0.5 * (lo + hi) if hi < _INF else 2.0 * max(s, lo)
        s = s_new
    if hi - lo <= 1e-12 * s:
        return s, _OK, _MAX_ITER
    return _NAN, _NO_CONVERGENCE, _MAX_ITER


@jit
def normalised_implied_vol_scalar(beta, x, is_call):
    """Normalised implied volatility ``s = σ√t`` with ``b(x, s) = β`` (scalar ``@jit``).

    ``β = B/√(F·K)`` is the undiscounted premium over the geometric mean of forward and
    strike, ``x = ln(F/K)``. Returns NaN where no volatility exists (β at or below the
    normalised intrinsic value, at or above ``exp(θ·x/2)``, or not finite); for
    in-the-money input prefer the price-level kernels, which subtract the intrinsic value
    without loss.
    """
    if not (math.isfinite(beta) and math.isfinite(x)) or abs(x) > 1400.0:
        return _NAN
    theta = 1.0 if is_call else -1.0
    if theta * x > 0.0:
        beta = beta - theta * 2.0 * math.sinh(0.5 * x)
    xo = -abs(x)
    bmax = math.exp(0.5 * xo)
    if not (beta > 0.0 and beta < bmax):
        return _NAN
    s, status, _ = _normalised_iv_otm(beta, xo, bmax, bmax - beta)
    return s if status == _OK else _NAN


# --------------------------------------------------------------------------------------
# Price-level implied volatility
# --------------------------------------------------------------------------------------
@jit
def _moneyness(underlying, k, t, r, q, bsm):
    """x = ln(F/K): ln(U/K) by log1p where U - K is exact, for BSM plus (r - q)·t, which
    avoids the rounding of F (a relative error ε in F moves a short-dated far wing by
    ε·|x|/s²)."""
    if 0.5 * k <= underlying <= 2.0 * k:
        x = math.log1p((underlying - k) / k)
    else:
        x = math.log(underlying) - math.log(k)
    return x + (r - q) * t if bsm else x


@jit
def _iv_forward(p, f, k, lx, t, is_call, bsm):
    """Volatility from an undiscounted premium p on forward f, lx = ln(f/k); returns
    (sigma, status)."""
    # time value p - intrinsic: on a given forward with p - f (or p - k) exact when it
    # matters (TwoSum); for BSM with the intrinsic of the pricing kernels
    if bsm:
        itm = (lx > 0.0) if is_call else (lx < 0.0)
        tv = p - (abs(k * math.expm1(lx)) if abs(lx) < 1.0 else abs(f - k)) if itm else p
    elif is_call and f > k:
        a = p - f
        bb = a - p
        ea = (p - (a - bb)) + (-f - bb)
        tv = (a + k) + ea
        itm = True
    elif (not is_call) and k > f:
        a = p - k
        bb = a - p
        ea = (p - (a - bb)) + (-k - bb)
        tv = (a + f) + ea
        itm = True
    else:
        tv = p
        itm = False
    if itm:
        tol = _EPS * p
        if tv < -tol:
            return _NAN, _BELOW_INTRINSIC
        if tv <= tol:
            return 0.0, _AT_INTRINSIC
    m = min(f, k)
    if not (tv < m):
        return _NAN, _ABOVE_MAXIMUM
    x = -abs(lx)
    sf = math.sqrt(f)
    sk = math.sqrt(k)
    sfk = sf * sk
    beta = tv / sfk
    if not (beta > 0.0):
        return 0.0, _AT_INTRINSIC
    cbeta = (m - tv) / sfk
    bmax = sf / sk if f < k else sk / sf  # exp(-|x|/2)
    if not (beta < bmax and cbeta > 0.0):
        return _NAN, _ABOVE_MAXIMUM
    s, status, _ = _normalised_iv_otm(beta, x, bmax, cbeta)
    if status != _OK:
        return _NAN, status
    return s / math.sqrt(t), _OK


@jit
def _discount(t, r, q, bsm):
    """(exp(-r t), exp((r - q) t) or 1 if not bsm), 1.0 where an exponent is out of range
    (such rows are rejected by the input checks)."""
    rt = r * t
    df = math.exp(-rt) if abs(rt) <= 700.0 else 1.0
    growth = 1.0
    if bsm:
        gt = (r - q) * t
        growth = math.exp(gt) if abs(gt) <= 700.0 else 1.0
    return df, growth


@jit
def _forward(underlying, growth, carry, bsm):
    """The forward (Black-76: the underlying; BSM: spot·exp((r-q)t) = spot·growth), +inf
    where that product would overflow — tested first, so that plain Python does not raise."""
    if not bsm:
        return underlying
    if math.log(underlying) + carry > 709.0:
        return _INF
    return underlying * growth


@jit
def _iv_impl(price, underlying, strike, t, r, q, is_call, bsm, df, growth):
    """Implied volatility given DF = exp(-r t) and growth = exp((r - q) t) (BSM)."""
    if not bsm:
        q = 0.0
    if not (math.isfinite(price) and math.isfinite(underlying) and math.isfinite(strike)
            and math.isfinite(r) and math.isfinite(q) and math.isfinite(t)):
        return _NAN, _BAD_INPUT
    if not (price > 0.0 and underlying > 0.0 and strike > 0.0):
        return _NAN, _BAD_INPUT
    if not (t > 0.0):
        return _NAN, _EXPIRED
    if abs(r * t) > 700.0 or abs((r - q) * t) > 700.0:
        return _NAN, _BAD_INPUT
    f = _forward(underlying, growth, (r - q) * t, bsm)
    if not (f < _INF and f > 0.0):  # the BSM forward over- or underflows
        return _NAN, _BAD_INPUT
    lx = _moneyness(underlying, strike, t, r, q, bsm)
    return _iv_forward(price / df, f, strike, lx, t, is_call, bsm)


# --------------------------------------------------------------------------------------
# Branch-free kernels
# --------------------------------------------------------------------------------------
# The array loops run a branch-free version of the implied-vol and Greeks kernels first,
# over blocks of rows, which LLVM vectorises (four rows per AVX2 instruction, no
# mispredicted branches, no per-row chain of dependent latencies); rows outside its domain
# are flagged and then take the general, branching kernels. These functions call no libm
# (exp and log are evaluated here, with fused multiply–adds), every choice is a select
# (both sides are computed), and divisions and square roots — each as costly as a dozen
# multiply–adds — are few. Compiled, a flagged row just computes meaningless values; as
# plain Python (NUMBA_DISABLE_JIT) its inputs are first replaced by harmless ones, so
# that nothing overflows or divides by zero with NumPy's error state set to raise.
_SANITIZE = numba.config.DISABLE_JIT


@intrinsic
def _fma_llvm(typingctx, a, b, c):
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, args)

    return sig, codegen


def _fma(a, b, c):
    """a·b + c rounded once (llvm.fma when compiled; exact rationals as plain Python)."""
    if math.isfinite(a) and math.isfinite(b) and math.isfinite(c):
        return float(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))
    return float(a) * float(b) + float(c)


@_numba_overload(_fma, jit_options={"cache": True})
def _fma_jit(a, b, c):
    return lambda a, b, c: _fma_llvm(a, b, c)


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k·_LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5·2^52: (x + _ROUND) - _ROUND rounds x to an integer
_ROUND_BITS = 0x4338000000000000  # the bits of _ROUND
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000
_TWO52_BITS = 0x4330000000000000
_SQRT2 = 1.4142135623730951
# 1/n!: Taylor coefficients of exp
_F2, _F3, _F4, _F5, _F6, _F7, _F8, _F9, _F10, _F11, _F12, _F13 = (
    1.0 / math.factorial(n) for n in range(2, 14))
# fdlibm's e_log.c: ln((1+s)/(1-s)) = 2s + s·R(s²) for |s| <= 0.1716
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


@jit
def _f64(bits):
    return np.int64(bits).view(np.float64)


@jit
def _bits(x):
    return np.float64(x).view(np.int64)


@jit
def _pow2(k):
    """2^k for an integer-valued float |k| <= 1022."""
    return _f64((_bits(k + _ROUND) - _ROUND_BITS + 1023) << 52)


@jit
def _expm1_reduced(x):
    """(e^r - 1, 2^k) with x = k·ln2 + r, |r| <= ln2/2, for |x| <= 709; e^r - 1 from the
    Taylor polynomial of degree 13 (truncation error < 4e-18), in Estrin's form (a short
    dependency chain)."""
    k = _fma(x, _LOG2E, _ROUND) - _ROUND
    r = _fma(-k, _LN2_LO, _fma(-k, _LN2_HI, x))
    r2 = r * r
    r4 = r2 * r2
    p = _fma(_fma(_fma(_F13, r, _F12), r2, _fma(_F11, r, _F10)), r4 * r4,
             _fma(_fma(_fma(_F9, r, _F8), r2, _fma(_F7, r, _F6)), r4,
                  _fma(_fma(_F5, r, _F4), r2, _fma(_F3, r, _F2))))
    return _fma(r2, p, r), _pow2(k)


@jit
def _vexp(x):
    """exp(x) to 1 ulp for -708 <= x <= 709 (clamped to that range)."""
    em1, scale = _expm1_reduced(min(max(x, -708.0), 709.0))
    return _fma(scale, em1, scale)


@jit
def _vgrowth(carry):
    """(e^c, e^c - 1) for the carry c = (r - q)t, |c| <= 30, from one reduction: the BSM
    forward's growth, and F - K = (S - K) + S·(e^c - 1) free of the forward's rounding."""
    em1, scale = _expm1_reduced(min(max(carry, -708.0), 709.0))
    return _fma(scale, em1, scale), _fma(scale, em1, scale - 1.0)


@jit
def _vexp_pair(x):
    """(e^x, e^-x) to 2 ulp for |x| <= 700, sharing one reduction: e^±r = C(r²) ± r·S(r²)
    with the even and odd parts of the Taylor series."""
    k = _fma(x, _LOG2E, _ROUND) - _ROUND
    r = _fma(-k, _LN2_LO, _fma(-k, _LN2_HI, x))
    z = r * r
    c = _fma(_fma(_fma(_fma(_fma(_fma(_F12, z, _F10), z, _F8), z, _F6), z, _F4), z, _F2), z, 1.0)
    rs = r * _fma(_fma(_fma(_fma(_fma(_fma(_F13, z, _F11), z, _F9), z, _F7), z, _F5), z, _F3), z,
                  1.0)
    return (c + rs) * _pow2(k), (c - rs) * _pow2(-k)


@jit
def _vlog_ratio(a, b):
    """ln(a/b) to 2 ulp (also near a = b) for positive normal a, b with a/b within
    2^±1000: with c = b·2^j, j chosen from the exponents and mantissas so that
    a/c is within √2^±1, a - c is exact and ln(a/c) = 2s + s·R(s²), s = (a - c)/(a + c)
    (one division, no rounding of a/b)."""
    ia = _bits(a)
    ib = _bits(b)
    ma = _f64((ia & _MANTISSA) | _ONE_BITS)
    mb = _f64((ib & _MANTISSA) | _ONE_BITS)
    j = (_f64((ia >> 52) | _TWO52_BITS) - _f64((ib >> 52) | _TWO52_BITS))
    j = j + 1.0 if ma > _SQRT2 * mb else (j - 1.0 if _SQRT2 * ma < mb else j)
    c = b * _pow2(j)
    s = (a - c) / (a + c)
    z = s * s
    rz = z * _fma(_fma(_fma(_fma(_fma(_fma(_LG7, z, _LG6), z, _LG5), z, _LG4), z, _LG3), z, _LG2),
                  z, _LG1)
    return _fma(j, _LN2_HI, _fma(s, rz, _fma(j, _LN2_LO, 2.0 * s)))


@jit
def _vlog_ratio_near(a, b):
    """(ln(a/b), ok) without the exponent reduction of :func:`_vlog_ratio`: ok where a/b is
    within √2^±1 (|ln| <= 0.3466), where a - b is exact and ln(a/b) = 2s + s·R(s²),
    s = (a - b)/(a + b), to 2 ulp."""
    s = (a - b) / (a + b)
    z = s * s
    rz = z * _fma(_fma(_fma(_fma(_fma(_fma(_LG7, z, _LG6), z, _LG5), z, _LG4), z, _LG3), z, _LG2),
                  z, _LG1)
    return _fma(s, rz, 2.0 * s), abs(s) <= 0.1715728752538097  # (√2 - 1)/(√2 + 1)


# erfcx on [0, 4] as one rational of degree (8, 9), all coefficients positive: a
# least-squares fit in relative error at 60 digits (weighted by 1/(f·Q) and iterated, on
# 112 Chebyshev nodes; docs/greeks.md §5 has the recipe), 4e-19 before rounding — one
# rational where Cody's needs two (and an exp) below 0.47.
_XP = (1.0, 1.8114811237707928, 1.644941126437295, 0.9375462315043923, 0.36152603535168315,
       0.09590896586480509, 0.01706367585492387, 0.0018652218899744355,
       9.649262049097651e-05)
_XQ = (1.0, 2.9398602908663056, 3.9622182328221807, 3.220823228104474, 1.7451357049412304,
       0.6558211497118388, 0.17164755980670685, 0.030330071165347257,
       0.0033060205912355226, 0.00017102869941687006)


@jit
def _verfcx_nd(x):
    """(num, den) with erfcx(x) = num/den for 0 <= x <= 1e4, to 3 ulp: the rational above
    on [0, 4], Cody's asymptotic one (times x¹², so that nothing is divided) beyond."""
    xm = min(x, 4.0)
    nm = _fma(_fma(_fma(_fma(_fma(_fma(_fma(_fma(_XP[8], xm, _XP[7]), xm, _XP[6]), xm, _XP[5]),
                                   xm, _XP[4]), xm, _XP[3]), xm, _XP[2]), xm, _XP[1]), xm, _XP[0])
    dm = _fma(_fma(_fma(_fma(_fma(_fma(_fma(_fma(_fma(_XQ[9], xm, _XQ[8]), xm, _XQ[7]), xm,
                                             _XQ[6]), xm, _XQ[5]), xm, _XQ[4]), xm, _XQ[3]),
                        xm, _XQ[2]), xm, _XQ[1]), xm, _XQ[0])
    # x > 4: (1/√π - y·P(y)/Q(y))/x with y = 1/x², numerator and denominator times X⁶
    xl = min(max(x, 4.0), 1e4)
    xx = xl * xl
    nl = _fma(_fma(_fma(_fma(_fma(_CP4, xx, _CP3), xx, _CP2), xx, _CP1), xx, _CP0), xx, _CP5)
    dl = xx * _fma(_fma(_fma(_fma(_fma(_CQ4, xx, _CQ3), xx, _CQ2), xx, _CQ1), xx, _CQ0), xx, 1.0)
    large = x > 4.0
    return (_fma(dl, _INV_SQRT_PI, -nl) if large else nm), (xl * dl if large else dm)


@jit
def _vlog(x):
    """ln x to 2 ulp for positive normal x."""
    return _vlog_ratio(x, 1.0)


@jit
def _verfcx(x):
    """erfcx(x) for 0 <= x <= 1e4 (< 3 ulp)."""
    num, den = _verfcx_nd(x)
    return num / den


@jit
def _vpoly7(c, x):
    return _fma(_fma(_fma(_fma(_fma(_fma(_fma(c[7], x, c[6]), x, c[5]), x, c[4]), x, c[3]), x,
                          c[2]), x, c[1]), x, c[0])


@jit(inline="always")
def _vnorm_ppf_log(lnp):
    """:func:`_norm_ppf_log` (Φ⁻¹(exp(lnp)), lnp < ln ½) with AS 241's three rationals
    all evaluated, one division."""
    qc = _vexp(max(lnp, -2.5902671654458267)) - 0.5
    rc = 0.180625 - qc * qc
    r = math.sqrt(max(-lnp, 2.5902671654458267))
    r1 = r - 1.6
    r2 = r - 5.0
    tail = lnp < -2.5902671654458267
    far = r > 5.0
    num = -(_vpoly7(_PE, r2) if far else _vpoly7(_PC, r1)) if tail else qc * _vpoly7(_PA, rc)
    den = (_vpoly7(_PF, r2) if far else _vpoly7(_PD, r1)) if tail else _vpoly7(_PB, rc)
    return num / den


@jit
def _vseries_step(h, w, k, c, yp, ym, even, odd):
    """Step k of :func:`_series_sums` (n = 2k + 1: Y⁽ⁿ⁺¹⁾ into the even sum, Y⁽ⁿ⁺²⁾ into
    the odd one)."""
    n = 2.0 * k + 1.0
    y2 = _fma(h, ym, n * yp)
    y3 = _fma(h, y2, (n + 1.0) * ym)
    cw = c * w
    even = _fma(y2, cw * _EVEN_RATIOS[k], even)
    c = cw * _SERIES_RATIOS[k]
    return c, y2, y3, even, _fma(y3, c, odd)


@jit
def _vseries_scaled(h, t, ey0, e, steps):
    """e times the sums of :func:`_series_sums`, from ey0 = e·Y(h), e = exp(-q) (or both
    unscaled: e = 1), with a fixed number of steps (every term is positive, so extra ones
    change nothing): eight reach 1e-17 of the sums for t < 0.21 where |x| < 1, and of the
    odd sum for t <= 0.25 where |x| <= 0.125; six reach 1e-16 for t < 0.1. -60 <= h <= 0.
    Written out (``steps`` is a constant), so that LLVM can vectorise the loops around it."""
    ey1 = _fma(h, ey0, e)
    w = t * t
    c, yp, ym, even, odd = _vseries_step(h, w, 0, 1.0, ey0, ey1, ey0, ey1)
    if steps > 1:
        c, yp, ym, even, odd = _vseries_step(h, w, 1, c, yp, ym, even, odd)
    if steps > 2:
        c, yp, ym, even, odd = _vseries_step(h, w, 2, c, yp, ym, even, odd)
    if steps > 3:
        c, yp, ym, even, odd = _vseries_step(h, w, 3, c, yp, ym, even, odd)
    if steps > 4:
        c, yp, ym, even, odd = _vseries_step(h, w, 4, c, yp, ym, even, odd)
    if steps > 5:
        c, yp, ym, even, odd = _vseries_step(h, w, 5, c, yp, ym, even, odd)
    if steps > 6:
        c, yp, ym, even, odd = _vseries_step(h, w, 6, c, yp, ym, even, odd)
    if steps > 7:
        c, yp, ym, even, odd = _vseries_step(h, w, 7, c, yp, ym, even, odd)
    return even, odd * t


@jit(inline="always")
def _vrational_cubic(xv, xl, xr, yl, yr, dl, dr, second, at_right):
    """:func:`_rational_cubic` with selects (and no division by zero)."""
    h = xr - xl
    degenerate = not (h != 0.0)
    if degenerate:
        h = 1.0
    inv_h = 1.0 / h
    slope = (yr - yl) * inv_h
    num = _fma(0.5 * h, second, dr - dl)
    den = (dr - slope) if at_right else (slope - dl)
    r = num / (den if den != 0.0 else 1.0)
    r = 0.0 if num == 0.0 else (_R_MAX if den == 0.0 else r)
    monotonic = dl * slope >= 0.0 and dr * slope >= 0.0
    r_mono = (dr + dl) / (slope if slope != 0.0 else 1.0) if slope != 0.0 else _R_MAX
    r_min = max(_R_MIN, r_mono) if monotonic else _R_MIN
    a = slope - dl
    b = dr - slope
    shaped = (dl <= slope <= dr) or (dl >= slope >= dr)
    both = a != 0.0 and b != 0.0
    r_shape = abs(dr - dl) / (min(abs(a), abs(b)) if both else 1.0)
    r_min = max(r_min, r_shape if both else _R_MAX) if shaped else r_min
    r = min(max(r, r_min), _R_MAX)
    z = (xv - xl) * inv_h
    w = 1.0 - z
    zw = z * w
    cubic = (yr * z * z * z + (r * yr - h * dr) * z * zw + (r * yl + h * dl) * zw * w
             + yl * w * w * w) / (1.0 + (r - 3.0) * zw)
    linear = _fma(yr, z, yl * w)
    return 0.5 * (yl + yr) if degenerate else (linear if not (r < _R_MAX) else cubic)


# Domain of the branch-free kernels in (t, r, q) and the inputs' magnitudes, so that no
# intermediate can overflow (each kernel adds bounds of its own); every other row —
# expiry, invalid input, extreme values — takes the general kernels.
_FAST_MIN = 1e-60
_FAST_MAX = 1e60
_FAST_RATE = 30.0


@jit
def _in_range(v):
    return (v >= _FAST_MIN) & (v <= _FAST_MAX)


@jit
def _fast_rates_ok(t, r, q):
    """1e-30 <= t <= 1e4, |r|, |q| <= 1e4 and |r t|, |(r - q) t| <= 30: the branch-free
    kernels' domain in (t, r, q) (the products of clamped values, which cannot overflow)."""
    tc = min(max(t, 0.0), 1e4)
    rc = min(max(r, -1e4), 1e4)
    qc = min(max(q, -1e4), 1e4)
    return ((t >= 1e-30) & (t <= 1e4) & (abs(r) <= 1e4) & (abs(q) <= 1e4)
            & (abs(rc * tc) <= _FAST_RATE) & (abs((rc - qc) * tc) <= _FAST_RATE))


# --------------------------------------------------------------------------------------
# Branch-free implied volatility
# --------------------------------------------------------------------------------------
# The array loops first run the algorithm of _normalised_iv_otm without branches, on
# rows with |x| <= 0.125 whose s stays <= 0.5 (t <= 0.25) — short-dated index options.
# There every b can come from the series (one erfcx, no cancellation), the guess needs
# no upper branch (above s_c the middle branch interpolates towards s = 0.5 rather than
# s_u), and both objective functions need ln b only (1/ln b below b_l, ln b above, so no
# exp). Two Householder steps as in the general iteration: the first on three terms
# of the series (b to ~1e-7, which the quartic convergence wipes out), the second
# exact. A row whose last step is not below _STOP·s, or that leaves the domain, takes
# the general kernels.
_IV_FAST_X = 0.125
_IV_FAST_S = 0.5
_SQRT_2PI = 2.5066282746310002


@jit(inline="always")
def _vlog_black(x, inv_s, s, steps):
    """(ln b, √(2π)·D) of the normalised OTM call, b = exp(-q)·D, D = 2·odd/√(2π) from the
    series with ``steps`` steps, for x <= 0, x/s >= -40, s <= 0.5; b/b' = √(2π)·D."""
    h = max(x * inv_s, _H_UNDERFLOW)
    t = 0.5 * s
    y0 = _SQRT_PI_OVER_2 * _verfcx(-h * _INV_SQRT2)
    _, odd = _vseries_scaled(h, t, y0, 1.0, steps)
    return _vlog(2.0 * _INV_SQRT_2PI * odd) - 0.5 * _fma(h, h, t * t), 2.0 * odd


@jit(inline="always")
def _vhouseholder(s, x, lnbeta, inv_lnbeta, lower, steps):
    """One Householder(3) step of :func:`_normalised_iv_otm` on 1/ln b - 1/ln β (lower)
    or ln b - ln β; returns the step."""
    inv_s = 1.0 / s
    u, sd = _vlog_black(x, inv_s, s, steps)
    u = min(u, -1e-300)                                  # ln b < 0 (b < b_max <= 1)
    hh = x * inv_s
    a = _fma(hh * hh, inv_s, -0.25 * s)                 # b''/b'
    hs = hh * inv_s
    b3 = _fma(a, a, _fma(-3.0 * hs, hs, -0.25))          # b'''/b'
    rr = 1.0 / (sd * u)
    up = u * rr                                          # b'/b
    inv_u = sd * rr
    if lower:
        nu = (lnbeta - u) * u * sd * inv_lnbeta
        h2 = a - up - 2.0 * up * inv_u
        h3 = (b3 - 3.0 * up * a + 2.0 * up * up - 6.0 * up * (a - up) * inv_u
              + 6.0 * up * up * inv_u * inv_u)
    else:
        nu = (lnbeta - u) * sd
        h2 = a - up
        h3 = b3 - 3.0 * a * up + 2.0 * up * up
    den = 1.0 + nu * (h2 + h3 * nu * (1.0 / 6.0))
    num = 1.0 + 0.5 * h2 * nu
    householder = den > 0.0 and num > 0.0 and abs(nu * num) <= 4.0 * abs(nu * den)
    return nu * num / (den if householder else 1.0) if householder else nu


@jit(inline="always")
def _iv_fast(price, underlying, strike, t, r, q, is_call, bsm):
    """Branch-free implied volatility: (ok, sigma); ``ok`` is False for rows outside the
    domain above or without a plain OK result (their sigma is meaningless)."""
    if not bsm:
        q = 0.0
    ok = (_in_range(price) & _in_range(underlying) & _in_range(strike)
          & _fast_rates_ok(t, r, q))
    if _SANITIZE and not ok:
        price = 0.1
        underlying = 1.0
        strike = 1.0
        t = 1.0
        r = 0.0
        q = 0.0
    p = price / _vexp(-r * t)                            # undiscounted premium
    growth, growth_m1 = _vgrowth((r - q) * t) if bsm else (1.0, 0.0)
    f = underlying * growth
    lx, near = _vlog_ratio_near(underlying, strike)
    if bsm:
        lx += (r - q) * t
    ok &= near & (abs(lx) <= _IV_FAST_X)
    lx = min(max(lx, -_IV_FAST_X), _IV_FAST_X)
    # time value, as _iv_forward: out of the money the premium; in it, p - (F - K) by
    # TwoSum (Black-76) or p - |(S - K) + S·(e^{(r-q)t} - 1)| (BSM: = K·|expm1(x)|)
    itm = (lx > 0.0) if is_call else (lx < 0.0)
    if bsm:
        tv = p - abs(_fma(underlying, growth_m1, underlying - strike))
    else:
        hi = f if is_call else strike
        a2 = p - hi
        bb = a2 - p
        tv = (a2 + (strike if is_call else f)) + ((p - (a2 - bb)) + (-hi - bb))
    tv = tv if itm else p
    # a time value within 16 ulp of the premium is left to the general kernels, which
    # tell AT_INTRINSIC (1 ulp) from OK on their own rounding of the intrinsic value
    ok &= (tv > 16.0 * _EPS * p) & (tv < min(f, strike))
    x = -abs(lx)
    lo = min(f, strike)
    hi = max(f, strike)
    bmax = math.sqrt(lo / hi)                          # exp(-|x|/2), as _iv_forward
    ibmax = bmax * (hi / lo)
    beta = tv / (hi * bmax)                            # tv/√(FK)
    if _SANITIZE and not ok:
        beta = 0.01
    # initial guess (_initial_guess): b_c = b(s_c) = ½(b_max - erfc(√|x|)/b_max) with
    # √|x| <= 0.36, in erf's range
    ax = -x
    w = math.sqrt(ax)
    wy = w * w
    erf_w = w * _fma(_fma(_fma(_fma(_CA4, wy, _CA0), wy, _CA1), wy, _CA2), wy, _CA3) \
        / _fma(_fma(_fma(wy + _CB0, wy, _CB1), wy, _CB2), wy, _CB3)
    bc = 0.5 * _fma(-ibmax, 1.0 - erf_w, bmax)
    sc = _SQRT2 * w
    below = beta < bc
    sl = _fma(-_SQRT_2PI * ibmax, bc, sc)              # s_c - b_c/v_c
    sl = max(sl if sl > 0.0 else 0.5 * sc, 1e-12)
    inv_sl = 1.0 / sl
    s_side = sl if below else _IV_FAST_S
    ok &= x >= _H_UNDERFLOW * s_side
    u_side, sd_side = _vlog_black(x, inv_sl if below else 1.0 / _IV_FAST_S, s_side, 3)
    b_side, ib_side = _vexp_pair(max(u_side, -700.0))  # b_l (or b at s = 0.5), 1/b_l
    d_side = sd_side * ib_side                         # 1/b'
    ok &= (below | (beta <= b_side)) & (u_side > -700.0)
    lower = below and beta < b_side
    # lowest branch: f(s) = k·Φ(z)³, z = -|x|/(√3 s), interpolated in β, then inverted
    kk = _TWO_PI_OVER_3SQRT3 * ax
    z = -ax * inv_sl * (1.0 / _SQRT3)
    yz = _SQRT_PI_OVER_2 * _verfcx(min(-z * _INV_SQRT2, 1e4))
    phiz = _INV_SQRT_2PI * _vexp(-0.5 * z * z)
    cdf = phiz * yz
    fl = kk * cdf * cdf * cdf
    fs = 3.0 * kk * cdf * cdf * phiz * (-z * inv_sl)
    fss = fs * (z * z - 2.0 - 2.0 * z / yz) * inv_sl
    al = 3.0 * z * z * inv_sl - 0.25 * sl
    dfl = fs * d_side
    d2fl = (fss - fs * al) * d_side * d_side
    # one rational cubic with the arguments of the lowest branch (β ↦ f), the middle one
    # below s_c or above it (β ↦ s)
    dc = _SQRT_2PI * ibmax                             # 1/b'(s_c)
    c = _vrational_cubic(beta,
                         0.0 if lower else (b_side if below else bc),
                         b_side if lower else (bc if below else b_side),
                         0.0 if lower else (sl if below else sc),
                         fl if lower else (sc if below else _IV_FAST_S),
                         1.0 if lower else (d_side if below else dc),
                         dfl if lower else (dc if below else d_side),
                         d2fl if lower else 0.0,
                         below)
    u = beta * ib_side
    fv = c if 0.0 < c < fl else (fl * u + b_side * (1.0 - u)) * u
    lnp = _vlog_ratio(max(fv, 1e-300), max(kk, 1e-300)) * (1.0 / 3.0)
    s_low = -ax / (_SQRT3 * min(_vnorm_ppf_log(min(lnp, -0.7)), -1e-300))
    s_low = s_low if lnp < -0.6931471805599453 and 0.0 < s_low < sl else 0.5 * sl
    s0 = s_low if lower else c
    ok &= (s0 >= 1e-12) & (s0 <= _IV_FAST_S)
    s0 = min(max(s0, 1e-12), _IV_FAST_S)
    # two Householder steps, the first on three terms of the series, the second exact
    lnbeta = _vlog(beta)
    inv_lnbeta = 1.0 / lnbeta
    ok &= x >= _H_UNDERFLOW * s0
    s1 = s0 + _vhouseholder(s0, x, lnbeta, inv_lnbeta, lower, 3)
    ok &= (s1 >= 1e-12) & (s1 <= _IV_FAST_S) & (x >= _H_UNDERFLOW * s1)
    s1 = min(max(s1, 1e-12), _IV_FAST_S)
    step = _vhouseholder(s1, x, lnbeta, inv_lnbeta, lower, 8)
    ok &= abs(step) <= _STOP * s1
    return ok, (s1 + step) / math.sqrt(t)


@jit
def _iv_general(price, underlying, strike, t, r, q, is_call, bsm):
    df, growth = _discount(t, r, q, bsm)
    return _iv_impl(price, underlying, strike, t, r, q, is_call, bsm, df, growth)


@jit
def _iv_one(price, underlying, strike, t, r, q, is_call, bsm):
    """One implied volatility: the branch-free kernel, or the general one where it does not
    apply (the array loops decide the same way, so both give identical results)."""
    ok, sigma = _iv_fast(price, underlying, strike, t, r, q, is_call, bsm)
    if ok:
        return sigma, _OK
    return _iv_general(price, underlying, strike, t, r, q, is_call, bsm)


@jit
def black76_implied_vol_scalar(price, forward, strike, t, r, is_call):
    """Black-76 implied volatility, scalar ``@jit`` kernel → ``(sigma, status)``.

    ``price`` is the premium discounted at ``r`` (``DF = exp(-r·t)``) on forward
    ``forward``. ``status`` is an :class:`IVStatus` value as ``int``; ``sigma`` is NaN
    unless the status is ``OK`` (or ``AT_INTRINSIC``, where it is 0).
    """
    return _iv_one(price, forward, strike, t, r, 0.0, is_call, False)


@jit
def bsm_implied_vol_scalar(price, spot, strike, t, r, q, is_call):
    """Black–Scholes–Merton implied volatility (spot, dividend yield ``q``), scalar
    ``@jit`` kernel → ``(sigma, status)``; the forward is ``spot·exp((r - q)·t)``."""
    return _iv_one(price, spot, strike, t, r, q, is_call, True)


@jit
def implied_vol_scalar(price, underlying, strike, t, r, q, is_call, model):
    """Implied volatility for ``model`` = :data:`MODEL_BLACK76` (``q`` ignored) or
    :data:`MODEL_BSM`, scalar ``@jit`` kernel → ``(sigma, status)``."""
    if model == MODEL_BSM:
        return bsm_implied_vol_scalar(price, underlying, strike, t, r, q, is_call)
    return black76_implied_vol_scalar(price, underlying, strike, t, r, is_call)


# --------------------------------------------------------------------------------------
# Prices and Greeks
# --------------------------------------------------------------------------------------
@jit(inline="always")
def _forward_parts(f, k, lx, t, sigma, is_call, need_n2, bsm):
    """Undiscounted Black quantities on forward f, lx = ln(f/k) (for BSM near the money
    the intrinsic value is K·expm1(x), free of the rounding of f).

    Returns (value, n1, n2, fphi, s, sqrt_t): value = θ[F Φ(θd1) - K Φ(θd2)] (intrinsic plus the
    OTM value, so small time values keep full precision), n1 = Φ(θ d1), n2 = Φ(θ d2)
    (NaN unless need_n2), fphi = F·φ(d1) = √(FK)·b'(s), s = σ√t. Handles s = 0 by its
    limits. The normal probabilities reuse the erfcx values of b:
    Φ(h ± t) = ½·exp(-(h ± t)²/2)·erfcx(-(h ± t)/√2), exp(-(h ± t)²/2) = exp(-q)·b_max^∓1.
    """
    theta = 1.0 if is_call else -1.0
    sqt = math.sqrt(t)
    s = sigma * sqt
    intrinsic = max(theta * (k * math.expm1(lx) if bsm and abs(lx) < 1.0 else f - k), 0.0)
    if not (s > 0.0):
        if lx == 0.0:
            return 0.0, 0.5, 0.5, f * _INV_SQRT_2PI, 0.0, sqt
        n = 1.0 if theta * (f - k) > 0.0 else 0.0
        return intrinsic, n, n, 0.0, 0.0, sqt
    sf = math.sqrt(f)
    sk = math.sqrt(k)
    sfk = sf * sk
    xo = -abs(lx)
    bmax = sf / sk if f < k else sk / sf  # exp(-|x|/2)
    h = xo / s
    tt = 0.5 * s
    q = 0.5 * (h * h + tt * tt)
    if h < _H_UNDERFLOW or not (q < 700.0):
        b, bp = _black_otm(xo, s, bmax, 1.0)
        d1 = lx / s + 0.5 * s
        n2 = _norm_cdf(theta * (d1 - s)) if need_n2 else _NAN
        return intrinsic + sfk * b, _norm_cdf(theta * d1), n2, sfk * bp, s, sqt
    e = math.exp(-q)
    bp = _INV_SQRT_2PI * e
    hpt = h + tt
    # OTM-call representation: P1 = Φ(h + t) (Q1 = 1 - P1 when h + t > 0), P2 = Φ(h - t).
    # With x <= 0: Φ(θ d1) is P1 (call) or Q1 (put), Φ(θ d2) is P2 or 1 - P2;
    # with x > 0:  Φ(θ d1) is 1 - P2 or P2,          Φ(θ d2) is Q1 or P1.
    if _use_series(h, tt, xo, _LOSS_GREEKS):
        # one erfcx: Y(h ± t) = even ± odd from the series
        even, odd = _series_sums(h, tt)
        b = 2.0 * _INV_SQRT_2PI * odd * e
        p1 = _INV_SQRT_2PI * e / bmax * (even + odd)
        q1 = 1.0 - p1
        p2 = _INV_SQRT_2PI * e * bmax * (even - odd)
    else:
        a1 = _erfcx_nn(abs(hpt) * _INV_SQRT2)   # Y(h + t) if h + t <= 0, else Y(-h - t)
        a2 = _erfcx_nn((tt - h) * _INV_SQRT2)   # Y(h - t)   (Y(z) = √(π/2)·erfcx(-z/√2))
        if hpt <= 0.0:
            b = 0.5 * (a1 - a2) * e
            p1 = 0.5 * e / bmax * a1
            q1 = 1.0 - p1
        else:
            b = bmax - 0.5 * (a1 + a2) * e
            q1 = 0.5 * e / bmax * a1
            p1 = 1.0 - q1
        p2 = 0.5 * e * bmax * a2
    if lx <= 0.0:
        n1 = p1 if is_call else q1
        n2 = (p2 if is_call else 1.0 - p2) if need_n2 else _NAN
    else:
        n1 = 1.0 - p2 if is_call else p2
        n2 = (q1 if is_call else p1) if need_n2 else _NAN
    return intrinsic + sfk * b, n1, n2, sfk * bp, s, sqt


@jit
def _greeks_valid(underlying, strike, t, sigma, r, q):
    return (math.isfinite(underlying) and math.isfinite(strike) and math.isfinite(t)
            and math.isfinite(sigma) and math.isfinite(r) and math.isfinite(q)
            and underlying > 0.0 and strike > 0.0 and t >= 0.0 and sigma >= 0.0
            and abs(r * t) <= 700.0 and abs((r - q) * t) <= 700.0)


@jit(inline="always")
def _greeks_of(bsm, theta_sign, underlying, strike, t, r, q, df, growth, value, n1, n2, gamma_f,
               decay, vega):
    """(price, delta, gamma, theta per day, vega and rho per 1 %) from the parts both Greeks
    kernels find: the price, Φ(θ d1) and Φ(θ d2) (``n1``, ``n2``), ∂²V/∂F², the decay term
    ½σ²F²Γ_F and ∂V/∂σ."""
    if bsm:
        delta = theta_sign * df * growth * n1    # θ e^{-qt} Φ(θ d1)
        gamma = gamma_f * growth * growth
        theta_year = r * value - (r - q) * (underlying * delta) - decay
        rho = theta_sign * strike * (t * df * n2)
    else:
        delta = theta_sign * df * n1
        gamma = gamma_f
        theta_year = r * value - decay
        rho = -t * value
    return value, delta, gamma, theta_year * _PER_DAY, 0.01 * vega, 0.01 * rho


@jit
def _price_impl(underlying, strike, t, sigma, r, q, is_call, bsm, df, growth):
    if not bsm:
        q = 0.0
    if not _greeks_valid(underlying, strike, t, sigma, r, q):
        return _NAN
    f = _forward(underlying, growth, (r - q) * t, bsm)
    if not (f < _INF and f > 0.0):  # the BSM forward over- or underflows
        return _NAN
    lx = _moneyness(underlying, strike, t, r, q, bsm)
    v, _, _, _, _, _ = _forward_parts(f, strike, lx, t, sigma, is_call, False, bsm)
    return df * v


@jit(inline="always")
def _greeks_impl(underlying, strike, t, sigma, r, q, is_call, bsm, df, growth):
    """(price, delta, gamma, theta, vega, rho) given DF and growth = exp((r - q) t)."""
    nan = _NAN
    if not bsm:
        q = 0.0
    if not _greeks_valid(underlying, strike, t, sigma, r, q):
        return nan, nan, nan, nan, nan, nan
    theta_sign = 1.0 if is_call else -1.0
    f = _forward(underlying, growth, (r - q) * t, bsm)
    if not (f < _INF and f > 0.0):  # the BSM forward over- or underflows
        return nan, nan, nan, nan, nan, nan
    lx = _moneyness(underlying, strike, t, r, q, bsm)
    v, n1, n2, fphi, s, sqt = _forward_parts(f, strike, lx, t, sigma, is_call, bsm, bsm)
    value = df * v
    if s > 0.0:
        dfphi_s = df * fphi / s
        gamma_f = dfphi_s / f / f                # ∂²V/∂F² = DF φ(d1)/(F σ √t)
        decay = 0.5 * dfphi_s * sigma * sigma    # ½σ²F²Γ_F = DF·Fφ(d1)·σ/(2√t)
    elif fphi > 0.0:                             # at the strike, s = 0
        gamma_f = _INF
        decay = _INF if (sigma > 0.0 and t == 0.0) else 0.0
    else:
        gamma_f = 0.0
        decay = 0.0
    return _greeks_of(bsm, theta_sign, underlying, strike, t, r, q, df, growth, value, n1, n2,
                      gamma_f, decay, df * fphi * sqt)


# The branch-free price and Greeks take rows with 1e-30 <= sigma <= 1e4 and the
# underlying within √2^±1 of the strike besides the common domain, and where b, Φ(d1) and
# Φ(d2) come from one erfcx and the series in t (t < 0.1, h >= -40, q < 700): one erfcx
# instead of two, and no choice between forms.
_GREEKS_SERIES_T = 0.1  # six steps of the series: terms to 1e-16 of the sums


@jit(inline="always")
def _greeks_fast(underlying, strike, t, sigma, r, q, is_call, bsm):
    """Branch-free price and Greeks: (ok, price, delta, gamma, theta, vega, rho), where
    ``ok`` is False for rows outside the domain above (their values are meaningless).
    The formulas of :func:`_forward_parts` and :func:`_greeks_impl`."""
    if not bsm:
        q = 0.0
    ok = (_in_range(underlying) & _in_range(strike) & (sigma >= 1e-30) & (sigma <= 1e4)
          & _fast_rates_ok(t, r, q))
    if _SANITIZE and not ok:
        underlying = 1.0
        strike = 1.0
        t = 1.0
        sigma = 1.0
        r = 0.0
        q = 0.0
    theta_sign = 1.0 if is_call else -1.0
    df = _vexp(-r * t)
    growth, growth_m1 = _vgrowth((r - q) * t) if bsm else (1.0, 0.0)
    f = underlying * growth
    lx, near = _vlog_ratio_near(underlying, strike)
    ok &= near
    if bsm:
        lx += (r - q) * t
    sqt = math.sqrt(t)
    s = sigma * sqt
    # F - K for the intrinsic value (BSM: free of the rounding of F, as K·expm1(x))
    fwd_k = _fma(underlying, growth_m1, underlying - strike) if bsm else f - strike
    intrinsic = max(theta_sign * fwd_k, 0.0)
    xo = -abs(lx)
    # b_max = exp(-|x|/2) = √(min(F, K)/max(F, K)) (as _forward_parts)
    lo = min(f, strike)
    hi = max(f, strike)
    bmax = math.sqrt(lo / hi)
    ibmax = bmax * (hi / lo)
    sfk = hi * bmax                             # √(FK)
    inv_sf = 1.0 / (s * f)
    inv_s = f * inv_sf
    inv_f = s * inv_sf
    h = xo * inv_s
    tt = 0.5 * s
    ok &= (h >= _H_UNDERFLOW) & (tt < _GREEKS_SERIES_T) & (xo > -_SERIES_X)
    h = max(h, _H_UNDERFLOW)
    tt = min(tt, _GREEKS_SERIES_T)
    qq = 0.5 * _fma(h, h, tt * tt)
    ok &= qq < 700.0
    e = _vexp(-qq)
    # e·Y(h) = √(π/2)·e·erfcx(-h/√2)
    ey0 = _SQRT_PI_OVER_2 * e * _verfcx(-h * _INV_SQRT2)
    even, odd = _vseries_scaled(h, tt, ey0, e, 6)
    # as in _forward_parts: b the normalised OTM call, P1 = Φ(h + t), P2 = Φ(h - t)
    b = 2.0 * _INV_SQRT_2PI * odd
    p1 = _INV_SQRT_2PI * ibmax * (even + odd)
    q1 = 1.0 - p1
    p2 = _INV_SQRT_2PI * bmax * (even - odd)
    if lx <= 0.0:
        n1 = p1 if is_call else q1
        n2 = p2 if is_call else 1.0 - p2
    else:
        n1 = 1.0 - p2 if is_call else p2
        n2 = q1 if is_call else p1
    fphi = sfk * _INV_SQRT_2PI * e              # F·φ(d1)
    value = df * _fma(sfk, b, intrinsic)
    dfphi_s = df * fphi * inv_s
    gamma_f = dfphi_s * inv_f * inv_f           # ∂²V/∂F² = DF φ(d1)/(F σ √t)
    decay = 0.5 * dfphi_s * sigma * sigma       # ½σ²F²Γ_F = DF·Fφ(d1)·σ/(2√t)
    price, delta, gamma, theta, vega, rho = _greeks_of(
        bsm, theta_sign, underlying, strike, t, r, q, df, growth, value, n1, n2, gamma_f, decay,
        df * fphi * sqt)
    return ok, price, delta, gamma, theta, vega, rho


@jit
def _price_general(underlying, strike, t, sigma, r, q, is_call, bsm):
    df, growth = _discount(t, r, q, bsm)
    return _price_impl(underlying, strike, t, sigma, r, q, is_call, bsm, df, growth)


@jit
def _greeks_general(underlying, strike, t, sigma, r, q, is_call, bsm):
    df, growth = _discount(t, r, q, bsm)
    return _greeks_impl(underlying, strike, t, sigma, r, q, is_call, bsm, df, growth)


@jit
def _price_one(underlying, strike, t, sigma, r, q, is_call, bsm):
    """One premium: the branch-free kernel, or the general one outside its domain (the
    array loops decide the same way, so both give identical results)."""
    ok, v, _, _, _, _, _ = _greeks_fast(underlying, strike, t, sigma, r, q, is_call, bsm)
    if ok:
        return v
    return _price_general(underlying, strike, t, sigma, r, q, is_call, bsm)


@jit
def _greeks_one(underlying, strike, t, sigma, r, q, is_call, bsm):
    """One row of price and Greeks, as :func:`_price_one`."""
    ok, v, d, g, th, ve, rh = _greeks_fast(underlying, strike, t, sigma, r, q, is_call, bsm)
    if ok:
        return v, d, g, th, ve, rh
    return _greeks_general(underlying, strike, t, sigma, r, q, is_call, bsm)


@jit
def black76_price_scalar(forward, strike, t, sigma, r, is_call):
    """Black-76 premium ``DF·θ[F Φ(θd1) - K Φ(θd2)]``, ``DF = exp(-r t)``, scalar ``@jit``.

    ``t = 0`` or ``sigma = 0`` give the discounted intrinsic value; NaN for invalid input
    (non-finite values, ``forward`` or ``strike`` <= 0, ``t`` < 0, ``sigma`` < 0).
    """
    return _price_one(forward, strike, t, sigma, r, 0.0, is_call, False)


@jit
def bsm_price_scalar(spot, strike, t, sigma, r, q, is_call):
    """Black–Scholes–Merton premium ``θ[S e^{-qt} Φ(θd1) - K e^{-rt} Φ(θd2)]``, scalar
    ``@jit`` kernel (limits and NaN as :func:`black76_price_scalar`)."""
    return _price_one(spot, strike, t, sigma, r, q, is_call, True)


@jit
def price_scalar(underlying, strike, t, sigma, r, q, is_call, model):
    """Premium for ``model`` = :data:`MODEL_BLACK76` or :data:`MODEL_BSM` (scalar ``@jit``)."""
    if model == MODEL_BSM:
        return bsm_price_scalar(underlying, strike, t, sigma, r, q, is_call)
    return black76_price_scalar(underlying, strike, t, sigma, r, is_call)


@jit
def black76_greeks_scalar(forward, strike, t, sigma, r, is_call):
    """Black-76 price and Greeks, scalar ``@jit`` kernel.

    Returns ``(price, delta, gamma, theta, vega, rho)`` in desk units: delta ``∂V/∂F``,
    gamma ``∂²V/∂F²``, theta ``-∂V/∂t`` per calendar day (``/365``), vega per vol point
    (``·0.01``), rho ``∂V/∂r`` at fixed forward (``= -t·V``) per 1 % (``·0.01``).
    ``sigma = 0`` or ``t = 0`` give the limits (intrinsic, step delta, zero gamma and vega
    off the strike; at the strike gamma is +inf); invalid input gives NaNs.
    """
    return _greeks_one(forward, strike, t, sigma, r, 0.0, is_call, False)


@jit
def bsm_greeks_scalar(spot, strike, t, sigma, r, q, is_call):
    """Black–Scholes–Merton price and Greeks, scalar ``@jit`` kernel.

    As :func:`black76_greeks_scalar` but with respect to the spot: delta
    ``θ e^{-qt} Φ(θd1)``, gamma ``e^{-qt} φ(d1)/(S σ √t)``, rho ``∂V/∂r`` at fixed spot and
    ``q`` (``θ K t e^{-rt} Φ(θd2)``) per 1 %.
    """
    return _greeks_one(spot, strike, t, sigma, r, q, is_call, True)


@jit
def greeks_scalar(underlying, strike, t, sigma, r, q, is_call, model):
    """Price and Greeks for ``model`` = :data:`MODEL_BLACK76` or :data:`MODEL_BSM`."""
    if model == MODEL_BSM:
        return bsm_greeks_scalar(underlying, strike, t, sigma, r, q, is_call)
    return black76_greeks_scalar(underlying, strike, t, sigma, r, is_call)


# --------------------------------------------------------------------------------------
# Array loops, by blocks of rows: the branch-free kernel over the block (one vectorised
# loop, which writes NaN where it does not apply), then the general kernel for those rows.
# Each input has a value per row or is a block-long array of one shared value
# (:func:`_flat`); the kernels read block views at the loop index and write one output
# array, so that LLVM sees every access contiguous and needs few run-time alias checks
# (it does not vectorise beyond eight). Two copies of each loop make ``bsm`` a constant.
# --------------------------------------------------------------------------------------
_BLOCK = 256


@jit(inline="always")
def _rows(a, per_row, start, m):
    """Rows start … start + m of an input (the first m values of a shared one)."""
    return a[start:start + m] if per_row else a[:m]


@jit(inline="always")
def _block_views(u, k, t, v, r, q, c, per_row, start, m):
    return (_rows(u, per_row[0], start, m), _rows(k, per_row[1], start, m),
            _rows(t, per_row[2], start, m), _rows(v, per_row[3], start, m),
            _rows(r, per_row[4], start, m), _rows(q, per_row[5], start, m),
            _rows(c, per_row[6], start, m))


@jit
def _iv_block(p, u, k, t, r, q, c, m, bsm, out):
    """Branch-free implied vols of rows j < m into out[j]; returns how many are NaN."""
    bad = 0
    if bsm:
        for j in range(m):
            ok, sigma = _iv_fast(p[j], u[j], k[j], t[j], r[j], q[j], c[j], True)
            out[j] = sigma if ok else _NAN
            bad += 0 if ok else 1
    else:
        for j in range(m):
            ok, sigma = _iv_fast(p[j], u[j], k[j], t[j], r[j], q[j], c[j], False)
            out[j] = sigma if ok else _NAN
            bad += 0 if ok else 1
    return bad


@jit
def _price_block(u, k, t, v, r, q, c, m, bsm, out):
    """Branch-free prices of rows j < m into out[j]; returns how many are NaN."""
    bad = 0
    if bsm:
        for j in range(m):
            ok, p, _, _, _, _, _ = _greeks_fast(u[j], k[j], t[j], v[j], r[j], q[j], c[j], True)
            out[j] = p if ok else _NAN
            bad += 0 if ok else 1
    else:
        for j in range(m):
            ok, p, _, _, _, _, _ = _greeks_fast(u[j], k[j], t[j], v[j], r[j], q[j], c[j],
                                                False)
            out[j] = p if ok else _NAN
            bad += 0 if ok else 1
    return bad


@jit
def _greeks_block(u, k, t, v, r, q, c, m, bsm, res):
    """Branch-free price and Greeks of rows j < m into res[i·_BLOCK + j] (rows a constant
    apart, which LLVM can prove independent); returns how many prices are NaN."""
    bad = 0
    if bsm:
        for j in range(m):
            ok, p, d, g, th, ve, rh = _greeks_fast(u[j], k[j], t[j], v[j], r[j], q[j], c[j],
                                                   True)
            res[j] = p if ok else _NAN
            res[_BLOCK + j] = d
            res[2 * _BLOCK + j] = g
            res[3 * _BLOCK + j] = th
            res[4 * _BLOCK + j] = ve
            res[5 * _BLOCK + j] = rh
            bad += 0 if ok else 1
    else:
        for j in range(m):
            ok, p, d, g, th, ve, rh = _greeks_fast(u[j], k[j], t[j], v[j], r[j], q[j], c[j],
                                                   False)
            res[j] = p if ok else _NAN
            res[_BLOCK + j] = d
            res[2 * _BLOCK + j] = g
            res[3 * _BLOCK + j] = th
            res[4 * _BLOCK + j] = ve
            res[5 * _BLOCK + j] = rh
            bad += 0 if ok else 1
    return bad


@jit
def _iv_loop(pp, u, k, tt, rr, qq, c, per_row, model, out, status):
    bsm = model == MODEL_BSM
    per_row = (per_row[1], per_row[2], per_row[3], per_row[0], per_row[4], per_row[5],
               per_row[6])  # in the order of the views below
    for start in range(0, out.shape[0], _BLOCK):
        m = min(_BLOCK, out.shape[0] - start)
        bu, bk, bt, bp, br, bq, bc = _block_views(u, k, tt, pp, rr, qq, c, per_row, start, m)
        o = out[start:start + m]
        st = status[start:start + m]
        st[:] = _OK
        if _iv_block(bp, bu, bk, bt, br, bq, bc, m, bsm, o):
            for j in range(m):
                if o[j] != o[j]:
                    o[j], st[j] = _iv_general(bp[j], bu[j], bk[j], bt[j], br[j], bq[j], bc[j],
                                              bsm)


@jit
def _price_loop(u, k, tt, v, rr, qq, c, per_row, model, out):
    bsm = model == MODEL_BSM
    for start in range(0, out.shape[0], _BLOCK):
        m = min(_BLOCK, out.shape[0] - start)
        bu, bk, bt, bv, br, bq, bc = _block_views(u, k, tt, v, rr, qq, c, per_row, start, m)
        o = out[start:start + m]
        if _price_block(bu, bk, bt, bv, br, bq, bc, m, bsm, o):
            for j in range(m):
                if o[j] != o[j]:
                    o[j] = _price_general(bu[j], bk[j], bt[j], bv[j], br[j], bq[j], bc[j], bsm)


@jit
def _greeks_loop(u, k, tt, v, rr, qq, c, per_row, model, out):
    bsm = model == MODEL_BSM
    res = np.empty(6 * _BLOCK)
    for start in range(0, out.shape[1], _BLOCK):
        m = min(_BLOCK, out.shape[1] - start)
        bu, bk, bt, bv, br, bq, bc = _block_views(u, k, tt, v, rr, qq, c, per_row, start, m)
        if _greeks_block(bu, bk, bt, bv, br, bq, bc, m, bsm, res):
            for j in range(m):
                if res[j] != res[j]:
                    g = _greeks_general(bu[j], bk[j], bt[j], bv[j], br[j], bq[j], bc[j], bsm)
                    for i in range(6):
                        res[i * _BLOCK + j] = g[i]
        for i in range(6):
            out[i, start:start + m] = res[i * _BLOCK:i * _BLOCK + m]


# --------------------------------------------------------------------------------------
# Public array API
# --------------------------------------------------------------------------------------
Model = Literal["black76", "bsm"]


class Greeks(NamedTuple):
    """Price and Greeks arrays (desk units, see :func:`greeks`)."""

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    theta: np.ndarray
    vega: np.ndarray
    rho: np.ndarray


def _model_code(model: str) -> int:
    if model == "black76":
        return MODEL_BLACK76
    if model == "bsm":
        return MODEL_BSM
    raise ValueError(f"model must be 'black76' or 'bsm', not {model!r}")


def _flat(floats, is_call):
    """Broadcast shape, size and 1-D C-contiguous inputs for the loops, with for each
    whether it has a value per row: an input of the broadcast shape as it is (no copy),
    a single value (a scalar such as r) as a block-long array of it, so that the
    vectorised kernels read every input contiguously."""
    arrays = [np.asarray(a, dtype=np.float64) for a in floats]
    calls = np.asarray(is_call)
    if calls.dtype != np.bool_:
        if calls.dtype.kind not in "iuf":
            raise TypeError(f"is_call must be bools (or 0/1), not {calls.dtype}")
        calls = calls != 0
    shape = np.broadcast_shapes(*(a.shape for a in arrays), calls.shape)
    n = math.prod(shape)
    out = []
    for a in [*arrays, calls]:
        if a.size == 1:
            out.append(np.full(_BLOCK, a.reshape(-1)[0], dtype=a.dtype))
        elif a.shape == shape:
            out.append(np.ascontiguousarray(a).reshape(-1))
        else:
            out.append(np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1))
    return shape, n, out, tuple(a.size > 1 for a in [*arrays, calls])


_PARAMETERS = """
    underlying
        Forward ``F`` (``model="black76"``) or spot ``S`` (``model="bsm"``).
    strike
        Strike ``K``.
    t
        Time to expiry in years (ACT/365 to the minute: minutes / 525,600).
    r, q
        Continuously compounded rate and dividend yield, as fractions (``q`` is ignored by
        Black-76, which discounts at ``r`` on the given forward).
    is_call
        ``True`` for calls, ``False`` for puts (bools, or 0/1 numbers).
    model
        ``"black76"`` (default) or ``"bsm"``."""


def price(underlying: ArrayLike, strike: ArrayLike, t: ArrayLike, sigma: ArrayLike,
          r: ArrayLike, q: ArrayLike, is_call: ArrayLike, *,
          model: Model = "black76") -> np.ndarray:
    """Option premium, broadcasting over all arguments.

    Parameters
    ----------%s
    sigma
        Volatility (0.2 = 20 %%).

    Returns
    -------
    numpy.ndarray
        float64 premiums of the broadcast shape; ``t = 0`` or ``sigma = 0`` give the
        discounted intrinsic value, invalid rows NaN.
    """
    code = _model_code(model)
    shape, n, (u, k, tt, v, rr, qq, c), per_row = _flat((underlying, strike, t, sigma, r, q),
                                                        is_call)
    out = np.empty(n, np.float64)
    _price_loop(u, k, tt, v, rr, qq, c, per_row, code, out)
    return out.reshape(shape)


if price.__doc__:  # None under python -OO
    price.__doc__ %= _PARAMETERS


@overload
def implied_vol(price: ArrayLike, underlying: ArrayLike, strike: ArrayLike, t: ArrayLike,
                r: ArrayLike, q: ArrayLike, is_call: ArrayLike, *, model: Model = ...,
                return_status: Literal[False] = ...) -> np.ndarray: ...


@overload
def implied_vol(price: ArrayLike, underlying: ArrayLike, strike: ArrayLike, t: ArrayLike,
                r: ArrayLike, q: ArrayLike, is_call: ArrayLike, *, model: Model = ...,
                return_status: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...


def implied_vol(price: ArrayLike, underlying: ArrayLike, strike: ArrayLike, t: ArrayLike,
                r: ArrayLike, q: ArrayLike, is_call: ArrayLike, *, model: Model = "black76",
                return_status: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Implied volatility from premiums, broadcasting over all arguments.

    Parameters
    ----------
    price
        Premium, discounted at ``r``.%s
    return_status
        Also return the :class:`IVStatus` codes.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        float64 volatilities of the broadcast shape — NaN where none exists, 0.0 for
        ``AT_INTRINSIC`` — and with ``return_status=True`` the ``int8`` status codes.
        Exact to a few ulp wherever the premium determines the volatility
        (``docs/greeks.md``).
    """
    code = _model_code(model)
    shape, n, (p, u, k, tt, rr, qq, c), per_row = _flat((price, underlying, strike, t, r, q),
                                                        is_call)
    out = np.empty(n, np.float64)
    status = np.empty(n, np.int8)
    _iv_loop(p, u, k, tt, rr, qq, c, per_row, code, out, status)
    if return_status:
        return out.reshape(shape), status.reshape(shape)
    return out.reshape(shape)


if implied_vol.__doc__:  # None under python -OO
    implied_vol.__doc__ %= _PARAMETERS


def implied_vol_status(price: ArrayLike, underlying: ArrayLike, strike: ArrayLike,
                       t: ArrayLike, r: ArrayLike, q: ArrayLike, is_call: ArrayLike, *,
                       model: Model = "black76") -> np.ndarray:
    """The ``int8`` :class:`IVStatus` codes of :func:`implied_vol` for the same arguments."""
    return implied_vol(price, underlying, strike, t, r, q, is_call, model=model,
                       return_status=True)[1]


def greeks(underlying: ArrayLike, strike: ArrayLike, t: ArrayLike, sigma: ArrayLike,
           r: ArrayLike, q: ArrayLike, is_call: ArrayLike, *,
           model: Model = "black76") -> Greeks:
    """Price and the five Greeks in closed form, broadcasting over all arguments.

    Parameters
    ----------%s
    sigma
        Volatility (0.2 = 20 %%).

    Returns
    -------
    Greeks
        float64 arrays of the broadcast shape: ``price``; ``delta`` (``∂V/∂F`` for
        Black-76, ``∂V/∂S`` for BSM); ``gamma`` (second derivative in the same variable);
        ``theta`` = ``-∂V/∂t`` per calendar day; ``vega`` = ``∂V/∂σ`` per vol point;
        ``rho`` = ``∂V/∂r`` per 1 %% (Black-76 at fixed forward, ``-t·V``; BSM at fixed
        spot and ``q``, ``θ K t e^{-rt} Φ(θ d2)``). ``t = 0`` or ``sigma = 0`` give the
        limits (see :func:`black76_greeks_scalar`), invalid rows NaN.
    """
    code = _model_code(model)
    shape, n, (u, k, tt, v, rr, qq, c), per_row = _flat((underlying, strike, t, sigma, r, q),
                                                        is_call)
    out = np.empty((6, n), np.float64)  # one allocation, six rows
    _greeks_loop(u, k, tt, v, rr, qq, c, per_row, code, out)
    return Greeks(*(o.reshape(shape) for o in out))


if greeks.__doc__:  # None under python -OO
    greeks.__doc__ %= _PARAMETERS
