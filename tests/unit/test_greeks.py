"""vectorticks.greeks: implied volatility and Greeks against references.

* mpmath at 50 digits on a grid from 5-minute to 2-year expiries, 1 % to 300 % vol and
  deep in- to deep out-of-the-money strikes (implied vol, price and Greeks, both models);
* the derivatives themselves (mpmath numerical differentiation of the price), so that the
  closed forms — in particular BSM rho at fixed spot and q — are checked independently;
* QuantLib on a NIFTY chain (F ≈ 24,000, strikes 22,000–26,000, weekly and monthly);
* bad inputs, limits, parity and Greek identities, use from a user's
  ``numba.njit(parallel=True)`` code, and one run with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vectorticks import greeks as gk
from vectorticks.greeks import IVStatus

mpmath = pytest.importorskip("mpmath")
mpmath.mp.dps = 50
mp = mpmath.mp

EPS = 2.220446049250313e-16
MINUTE = 1.0 / (365 * 24 * 60)
GREEK_NAMES = ("price", "delta", "gamma", "theta", "vega", "rho")


# --------------------------------------------------------------------------------------
# mpmath references
# --------------------------------------------------------------------------------------
def mp_forward(model, u, t, r, q):
    return u * mp.exp((r - q) * t) if model == "bsm" else u


def mp_price(model, u, k, t, sig, r, q, is_call):
    """Premium at 50 digits; all arguments mpf (or exact doubles)."""
    f = mp_forward(model, u, t, r, q)
    s = sig * mp.sqrt(t)
    d1 = mp.log(f / k) / s + s / 2
    th = 1 if is_call else -1
    return mp.exp(-r * t) * th * (f * mp.ncdf(th * d1) - k * mp.ncdf(th * (d1 - s)))


def mp_vega_raw(model, u, k, t, sig, r, q):
    f = mp_forward(model, u, t, r, q)
    s = sig * mp.sqrt(t)
    d1 = mp.log(f / k) / s + s / 2
    return mp.exp(-r * t) * f * mp.npdf(d1) * mp.sqrt(t)


def mp_greeks(model, u, k, t, sig, r, q, is_call):
    """Closed-form Greeks at 50 digits, desk units."""
    u, k, t, sig, r, q = (mp.mpf(v) for v in (u, k, t, sig, r, q))
    th = 1 if is_call else -1
    df = mp.exp(-r * t)
    f = mp_forward(model, u, t, r, q)
    sq = mp.sqrt(t)
    s = sig * sq
    d1 = mp.log(f / k) / s + s / 2
    d2 = d1 - s
    n, phi = mp.ncdf, mp.npdf(d1)
    v = df * th * (f * n(th * d1) - k * n(th * d2))
    if model == "bsm":
        eq = mp.exp(-q * t)
        delta = th * eq * n(th * d1)
        gamma = eq * phi / (u * s)
        vega = u * eq * phi * sq
        theta = -u * eq * phi * sig / (2 * sq) - th * r * k * df * n(th * d2) \
            + th * q * u * eq * n(th * d1)
        rho = th * k * t * df * n(th * d2)
    else:
        delta = th * df * n(th * d1)
        gamma = df * phi / (f * s)
        vega = df * f * phi * sq
        theta = -df * f * phi * sig / (2 * sq) + r * v
        rho = -t * v
    return [v, delta, gamma, theta / 365, vega / 100, rho / 100]


def greeks_row(model, u, k, t, sig, r, q, is_call):
    g = gk.greeks(u, k, t, sig, r, q, is_call, model=model)
    return [float(x) for x in g]


# --------------------------------------------------------------------------------------
# Special functions
# --------------------------------------------------------------------------------------
def test_erfcx_normal_cdf_and_ppf_are_accurate_to_a_few_ulp():
    xs = np.concatenate([np.linspace(0.0, 30.0, 601), np.geomspace(1e-8, 1e6, 200)])
    worst = max(float(abs(gk._erfcx_nn(x) - mp.exp(mp.mpf(x) ** 2) * mp.erfc(x))
                      / (mp.exp(mp.mpf(x) ** 2) * mp.erfc(x))) for x in xs)
    assert worst < 5 * EPS
    zs = np.linspace(-37.0, 8.0, 451)
    worst = max(float(abs(gk._norm_cdf(z) - mp.ncdf(z)) / mp.ncdf(z)) for z in zs)
    assert worst < 5 * EPS  # relative, down to Φ(-37) ≈ 6e-300
    for p in np.concatenate([np.geomspace(1e-300, 0.45, 60), np.linspace(0.55, 0.99, 12)]):
        z = gk._norm_ppf(p)
        assert float(abs(mp.ncdf(z) - p) / p) < 10 * EPS * max(1.0, abs(z) ** 2)


# --------------------------------------------------------------------------------------
# Implied volatility against mpmath
# --------------------------------------------------------------------------------------
IV_TIMES = [5 * MINUTE, 60 * MINUTE, 1 / 365, 7 / 365, 30 / 365, 0.25, 1.0, 2.0]
IV_VOLS = [0.01, 0.03, 0.1, 0.2, 0.4, 0.8, 1.5, 3.0]
IV_MONEYNESS = np.linspace(-12.0, 12.0, 13)  # ln(F/K) in units of σ√t


def iv_grid(model, r, q):
    """Premiums priced at 50 digits and rounded to double, plus the exact volatility of
    that double premium (one Newton step in mpmath from the generating σ; the rounding
    moves σ by < 1e-8, so the step is exact to ~1e-16·σ).

    Kept: undiscounted time value >= 1e-8 × max(forward, premium) — the task's 1e-8 of the
    forward, plus the premium's own resolution for deep in-the-money puts (K ≫ F), where
    a premium near K cannot carry a time value of 1e-8·F in a double.
    """
    rows = []
    u = 100.0
    for t, sig, m, is_call in itertools.product(IV_TIMES, IV_VOLS, IV_MONEYNESS,
                                                (True, False)):
        s = sig * math.sqrt(t)
        f0 = u * math.exp((r - q) * t) if model == "bsm" else u
        k = float(f0 * math.exp(-m * s))
        args = [mp.mpf(v) for v in (u, k, t, sig, r, q)]
        v = mp_price(model, *args, is_call)
        f = mp_forward(model, args[0], args[2], args[4], args[5])
        df = mp.exp(-args[4] * args[2])
        intrinsic = max(f - args[1], 0) if is_call else max(args[1] - f, 0)
        tv = v / df - intrinsic
        if tv < mp.mpf("1e-8") * max(f, v / df):
            continue
        p = float(v)
        vega = mp_vega_raw(model, *args)
        sigma_exact = args[3] - (v - mp.mpf(p)) / vega
        rows.append((k, t, sig, is_call, p, float(sigma_exact), float(vega)))
    k, t, sig, c, p, sigma_exact, vega = (np.array(x) for x in zip(*rows, strict=True))
    return dict(u=u, k=k, t=t, sig=sig, c=c, p=p, sigma_exact=sigma_exact, vega=vega)


@pytest.fixture(scope="module")
def grid_b76():
    return iv_grid("black76", 0.0, 0.0)


@pytest.fixture(scope="module")
def grid_b76_rates():
    return iv_grid("black76", 0.07, 0.0)


@pytest.fixture(scope="module")
def grid_bsm():
    return iv_grid("bsm", 0.07, 0.012)


def test_implied_vol_black76_full_precision_on_the_grid(grid_b76):
    """r = 0: the premium is the only rounded input, so the recovered volatility must be
    the exact volatility of that double premium to the last bits (and well inside the
    1e-10 target); against the generating σ the premium's own rounding shows."""
    g = grid_b76
    assert len(g["p"]) > 550
    iv, status = gk.implied_vol(g["p"], g["u"], g["k"], g["t"], 0.0, 0.0, g["c"],
                                return_status=True)
    assert (status == IVStatus.OK).all()
    err = np.abs(iv - g["sigma_exact"])
    assert err.max() <= 1e-10
    assert (err / g["sigma_exact"]).max() <= 16 * EPS
    # the generating σ differs by the premium's rounding: |Δσ| <= ½ulp(P)/vega
    cond = EPS * g["p"] / g["vega"]
    assert (np.abs(iv - g["sig"]) <= 1e-14 + cond).all()


@pytest.mark.parametrize(("model", "grid", "r", "q"), [("black76", "grid_b76_rates", 0.07, 0.0),
                                                        ("bsm", "grid_bsm", 0.07, 0.012)])
def test_implied_vol_with_rates_within_the_conditioning_of_the_inputs(model, grid, r, q,
                                                                      request):
    """With r ≠ 0 the discount factor and (BSM) forward are rounded too; deep in the money
    near the 1e-8 threshold a relative error of one ulp in the premium moves σ by up to
    ~1e-9, so the bound is 1e-10 plus that sensitivity (4ε·P/vega)."""
    g = request.getfixturevalue(grid)
    iv, status = gk.implied_vol(g["p"], g["u"], g["k"], g["t"], r, q, g["c"], model=model,
                                return_status=True)
    assert (status == IVStatus.OK).all()
    tol = 1e-10 + 4 * EPS * g["p"] / g["vega"]
    assert (np.abs(iv - g["sigma_exact"]) <= tol).all()
    assert (np.abs(iv - g["sig"]) <= tol).all()
    well_conditioned = 4 * EPS * g["p"] / g["vega"] < 1e-12
    assert well_conditioned.mean() > 0.75
    assert np.abs(iv - g["sigma_exact"])[well_conditioned].max() <= 1e-10


def mp_normalised_root(x, beta, s):
    """The exact s with b(x, s) = β (x <= 0), by Newton on ln b or on ln(b_max - b)."""
    bmax = mp.exp(x / 2)
    for _ in range(10):
        b = mp.exp(x / 2) * mp.ncdf(x / s + s / 2) - mp.exp(-x / 2) * mp.ncdf(x / s - s / 2)
        bp = mp.exp(-(x**2 / s**2 + s**2 / 4) / 2) / mp.sqrt(2 * mp.pi)
        if beta < bmax / 2:
            step = (mp.log(beta) - mp.log(b)) * b / bp
        else:
            step = (mp.log(bmax - b) - mp.log(bmax - beta)) * (bmax - b) / bp
        s += step
        if abs(step) < s * mp.mpf("1e-40"):
            break
    return s


def test_implied_vol_normalised_kernel_iterations_and_extremes():
    """The normalised solver: ≤ 3 Householder steps and a few ulp from |x| = 0 to 700 and
    s up to 50, prices down to 1e-300 (mpmath root of the rounded β as reference)."""
    rng = np.random.default_rng(11)
    worst = 0.0
    for i in range(300):
        x = 0.0 if i % 25 == 0 else -(10.0 ** rng.uniform(-12, 2.85))
        s = 10.0 ** rng.uniform(-5, 1.7) if i % 3 or x == 0 else math.sqrt(2 * abs(x)) * 1.3
        if abs(x) / s > 38:
            continue
        xm, sm = mp.mpf(x), mp.mpf(s)
        b = mp.exp(xm / 2) * mp.ncdf(xm / sm + sm / 2) - mp.exp(-xm / 2) * mp.ncdf(xm / sm - sm / 2)
        beta = float(b)
        bmax = math.exp(0.5 * x)
        cbeta = float(mp.exp(xm / 2) - mp.mpf(beta))
        if not (1e-300 < beta < bmax) or cbeta <= 0:
            continue
        exact = mp_normalised_root(xm, mp.mpf(beta), sm)
        got, status, iterations = gk._normalised_iv_otm(beta, x, bmax, cbeta)
        assert status == IVStatus.OK
        assert iterations <= 3
        worst = max(worst, float(abs(got - exact) / exact))
    assert worst < 16 * EPS
    # the public normalised kernel agrees, including the in-the-money reflection
    assert gk.normalised_implied_vol_scalar(gk.normalised_black_scalar(0.3, 0.25, True),
                                            0.3, True) == pytest.approx(0.25, rel=1e-13)
    assert math.isnan(gk.normalised_implied_vol_scalar(0.0, -0.1, True))


# --------------------------------------------------------------------------------------
# Prices and Greeks against mpmath
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["black76", "bsm"])
def test_price_and_greeks_against_mpmath(model):
    """Relative 1e-10 or absolute 1e-14 (underlying 100) on 400 random options from a
    5-minute to a 2-year expiry, 1 %–300 % vol, ±8 standard deviations of moneyness."""
    rng = np.random.default_rng(5 if model == "bsm" else 6)
    worst = dict.fromkeys(GREEK_NAMES, 0.0)
    for _ in range(400):
        u = 100.0
        t = 10.0 ** rng.uniform(math.log10(5 * MINUTE), math.log10(2.0))
        sig = 10.0 ** rng.uniform(-2.0, math.log10(3.0))
        k = u * math.exp(rng.uniform(-8.0, 8.0) * sig * math.sqrt(t))
        r, q = rng.uniform(-0.02, 0.12), rng.uniform(0.0, 0.05)
        is_call = bool(rng.random() < 0.5)
        ref = mp_greeks(model, u, k, t, sig, r, q, is_call)
        got = greeks_row(model, u, k, t, sig, r, q, is_call)
        for name, rv, gv in zip(GREEK_NAMES, ref, got, strict=True):
            rv = float(rv)
            assert abs(gv - rv) <= max(1e-10 * abs(rv), 1e-14), (name, k, t, sig, r, q)
            worst[name] = max(worst[name], abs(gv - rv) / abs(rv) if rv else abs(gv))
    # the kernels are in fact accurate to ~1e-13 relative everywhere on this grid
    assert max(worst.values()) < 1e-12, worst


@pytest.mark.parametrize("model", ["black76", "bsm"])
def test_greeks_are_the_derivatives_of_the_price(model):
    """mpmath differentiates the premium numerically (at 50 digits): delta and gamma in the
    underlying, theta = -∂V/∂t per day, vega per vol point, rho per 1 % — for BSM at fixed
    spot and dividend yield, K·t·e^{-rt}·N(d2) for a call (py_vollib has this wrong)."""
    cases = [(100.0, 95.0, 0.3, 0.25, 0.07, 0.02, True), (100.0, 110.0, 0.05, 0.6, 0.05, 0.0,
                                                           False),
             (24000.0, 24500.0, 4 / 365, 0.14, 0.065, 0.012, True)]
    for u, k, t, sig, r, q, is_call in cases:
        def v(uu=u, tt=t, ss=sig, rr=r, k=k, q=q, is_call=is_call):
            return mp_price(model, uu, mp.mpf(k), tt, ss, rr, mp.mpf(q), is_call)
        u_, t_, s_, r_ = (mp.mpf(x) for x in (u, t, sig, r))
        ref = [v(),
               mp.diff(lambda x: v(uu=x), u_),
               mp.diff(lambda x: v(uu=x), u_, 2),
               -mp.diff(lambda x: v(tt=x), t_) / 365,
               mp.diff(lambda x: v(ss=x), s_) / 100,
               mp.diff(lambda x: v(rr=x), r_) / 100]
        got = greeks_row(model, u, k, t, sig, r, q, is_call)
        np.testing.assert_allclose(got, [float(x) for x in ref], rtol=1e-12)
        if model == "bsm":
            f = u * math.exp((r - q) * t)
            s = sig * math.sqrt(t)
            d2 = math.log(f / k) / s - s / 2
            sign = 1 if is_call else -1
            n_d2 = float(mp.ncdf(sign * d2))
            assert got[5] == pytest.approx(sign * k * t * math.exp(-r * t) * n_d2 / 100,
                                           rel=1e-12)


# --------------------------------------------------------------------------------------
# A NIFTY chain against QuantLib
# --------------------------------------------------------------------------------------
def nifty_chain():
    """F ≈ 24,000, strikes 22,000–26,000 step 50, a weekly (3 days) and a monthly (24 days)
    expiry with a skewed smile σ(k) = a + b·k + c·k², k = ln(K/F)."""
    strikes = np.arange(22000.0, 26000.0 + 1, 50.0)
    rows = []
    for days, (a, b, c) in ((3, (0.12, -0.35, 2.5)), (24, (0.13, -0.25, 1.2))):
        fwd = 24000.0 + 15.0 * days
        for k in strikes:
            m = math.log(k / fwd)
            for is_call in (True, False):
                rows.append((fwd, k, days, a + b * m + c * m * m, is_call))
    f, k, days, sig, c = (np.array(x) for x in zip(*rows, strict=True))
    return f, k, days, sig, c


def check_round_trip(g, sig, iv_status):
    """Our premiums invert to the smile: to 1e-10 plus the premium's rounding (4ε·P/vega,
    up to ~1e-8 for deep in-the-money weeklies); where the time value is below the
    premium's resolution the status says so."""
    iv, status = iv_status
    ok = status == IVStatus.OK
    assert ((status == IVStatus.OK) | (status == IVStatus.AT_INTRINSIC)).all()
    assert ok.mean() > 0.9
    tol = 1e-10 + 4 * EPS * g.price / (100 * g.vega)
    assert (np.abs(iv - sig) <= tol)[ok].all()
    assert (np.abs(iv - sig) <= 1e-12)[ok & (tol < 1e-12)].all()
    return iv


def test_nifty_chain_black76_against_quantlib():
    """Tolerances: QuantLib's BlackCalculator forms F·N(d1) - K·N(d2) directly, which on the
    weekly wings (|d1| ≈ 6, s ≈ 0.015) cancels about three digits, so prices and theta agree
    to 1e-11 relative (or 1e-9 rupees, far below the 0.05 tick); delta, gamma and vega have
    no cancellation: 1e-12 (delta: or 1e-14 absolute, QuantLib's tail accuracy). Implied vols agree to 1e-9 where QuantLib's solver (accuracy
    1e-14 in σ√t) succeeds, plus 16ε·P/vega: deep in the money QuantLib's own premium
    (F·N(d1) - K·N(d2) near P ≈ 2000) is off by a few ulp of P, which moves its σ by up to
    ~3e-8 on the weekly wing (ours is then the closer one to the generating smile)."""
    ql = pytest.importorskip("QuantLib")
    f, k, days, sig, c = nifty_chain()
    t = days / 365.0
    r = 0.065
    g = gk.greeks(f, k, t, sig, r, 0.0, c)
    ivs = check_round_trip(g, sig, gk.implied_vol(g.price, f, k, t, r, 0.0, c,
                                                   return_status=True))
    ql_ok = 0
    for i in range(len(f)):
        kind = ql.Option.Call if c[i] else ql.Option.Put
        df = math.exp(-r * t[i])
        calc = ql.BlackCalculator(ql.PlainVanillaPayoff(kind, k[i]), f[i],
                                  sig[i] * math.sqrt(t[i]), df)
        assert g.price[i] == pytest.approx(calc.value(), rel=1e-11, abs=1e-9)
        assert g.delta[i] == pytest.approx(calc.deltaForward(), rel=1e-12, abs=1e-14)
        assert g.gamma[i] == pytest.approx(calc.gammaForward(), rel=1e-12, abs=1e-18)
        assert g.vega[i] == pytest.approx(calc.vega(t[i]) / 100, rel=1e-12, abs=1e-15)
        # spot = forward turns QuantLib's spot theta into the Black-76 theta (F fixed)
        assert g.theta[i] == pytest.approx(calc.thetaPerDay(f[i], t[i]), rel=1e-11,
                                           abs=1e-9)
        assert g.rho[i] == pytest.approx(-t[i] * calc.value() / 100, rel=1e-11, abs=1e-11)
        # QuantLib's solver needs a visible premium and a σ the premium determines
        if g.price[i] > 1e-3 and EPS * g.price[i] / (100 * g.vega[i]) < 1e-8:
            try:
                ql_std = ql.blackFormulaImpliedStdDev(kind, k[i], f[i], g.price[i], df, 0.0,
                                                      0.1, 1e-14, 1000)
            except RuntimeError:
                continue
            ql_ok += 1
            cond = (abs(calc.value() - g.price[i]) + 16 * EPS * g.price[i]) / (100 * g.vega[i])
            assert ivs[i] == pytest.approx(ql_std / math.sqrt(t[i]), abs=1e-9 + cond)
    assert ql_ok > 0.8 * len(f)


def test_nifty_chain_bsm_against_quantlib_engine():
    """BlackScholesMertonProcess + AnalyticEuropeanEngine with flat curves (whole days on
    ACT/365F). Same tolerances as the Black-76 chain; rho is QuantLib's rho (fixed spot and
    dividend yield). QuantLib's normal distribution is accurate in absolute, not relative,
    terms in the tail: far-wing deltas (~1e-3) differ from mpmath by up to 6e-8 relative
    there while ours stay within 2e-14, hence the absolute 1e-14 on delta; and its forward
    S·D_q/D_r from two discount curves carries rounding that moves gamma and vega by up to
    3e-12 relative (mpmath: ours within 2e-14), hence 1e-11 there."""
    ql = pytest.importorskip("QuantLib")
    _, k, days, sig, c = nifty_chain()
    spot, r, q = 24000.0, 0.065, 0.012
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    s_h = ql.QuoteHandle(ql.SimpleQuote(spot))
    r_h = ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc))
    q_h = ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc))
    t = days / 365.0
    g = gk.greeks(spot, k, t, sig, r, q, c, model="bsm")
    ivs = check_round_trip(g, sig, gk.implied_vol(g.price, spot, k, t, r, q, c, model="bsm",
                                                   return_status=True))
    ql_ok = 0
    for i in range(len(k)):
        vol_h = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(),
                                                                   sig[i], dc))
        process = ql.BlackScholesMertonProcess(s_h, q_h, r_h, vol_h)
        kind = ql.Option.Call if c[i] else ql.Option.Put
        option = ql.EuropeanOption(ql.PlainVanillaPayoff(kind, k[i]),
                                   ql.EuropeanExercise(today + int(days[i])))
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        assert g.price[i] == pytest.approx(option.NPV(), rel=1e-11, abs=1e-9)
        assert g.delta[i] == pytest.approx(option.delta(), rel=1e-12, abs=1e-14)
        assert g.gamma[i] == pytest.approx(option.gamma(), rel=1e-11, abs=1e-18)
        assert g.vega[i] == pytest.approx(option.vega() / 100, rel=1e-11, abs=1e-15)
        assert g.theta[i] == pytest.approx(option.thetaPerDay(), rel=1e-11, abs=1e-9)
        assert g.rho[i] == pytest.approx(option.rho() / 100, rel=1e-11, abs=1e-11)
        if g.price[i] > 1e-3 and EPS * g.price[i] / (100 * g.vega[i]) < 1e-8:
            try:
                ql_vol = option.impliedVolatility(g.price[i], process, 1e-14, 1000, 1e-4, 4.0)
            except RuntimeError:
                continue
            ql_ok += 1
            # QuantLib inverts its own premium: its pricing error over vega bounds its σ
            cond = (abs(option.NPV() - g.price[i]) + 16 * EPS * g.price[i]) / (100 * g.vega[i])
            assert ivs[i] == pytest.approx(ql_vol, abs=1e-9 + cond)
    assert ql_ok > 0.8 * len(k)


# --------------------------------------------------------------------------------------
# Bad input, limits
# --------------------------------------------------------------------------------------
def test_bad_inputs_get_nan_and_status_in_one_call_with_good_rows():
    F, K, T, R = 24000.0, 23000.0, 30 / 365, 0.065
    df = math.exp(-R * T)
    good_call = gk.black76_price_scalar(F, K, T, 0.2, R, True)
    good_put = gk.black76_price_scalar(F, 25000.0, T, 0.3, R, False)
    nan, inf = math.nan, math.inf
    rows = [  # price, F, K, t, r, is_call, expected status, expected vol
        (good_call, F, K, T, R, True, IVStatus.OK, 0.2),
        (df * (F - K) - 0.05, F, K, T, R, True, IVStatus.BELOW_INTRINSIC, nan),
        (df * F, F, K, T, R, True, IVStatus.ABOVE_MAXIMUM, nan),
        (df * F * 1.01, F, K, T, R, True, IVStatus.ABOVE_MAXIMUM, nan),
        (df * 25000.0, F, 25000.0, T, R, False, IVStatus.ABOVE_MAXIMUM, nan),
        (good_put, F, 25000.0, T, R, False, IVStatus.OK, 0.3),
        (0.0, F, K, T, R, True, IVStatus.BAD_INPUT, nan),
        (-1.0, F, K, T, R, True, IVStatus.BAD_INPUT, nan),
        (nan, F, K, T, R, True, IVStatus.BAD_INPUT, nan),
        (inf, F, K, T, R, True, IVStatus.BAD_INPUT, nan),
        (good_call, F, K, 0.0, R, True, IVStatus.EXPIRED, nan),
        (good_call, F, K, -T, R, True, IVStatus.EXPIRED, nan),
        (good_call, F, K, nan, R, True, IVStatus.BAD_INPUT, nan),
        (good_call, F, K, inf, R, True, IVStatus.BAD_INPUT, nan),
        (good_call, 0.0, K, T, R, True, IVStatus.BAD_INPUT, nan),
        (good_call, -F, K, T, R, True, IVStatus.BAD_INPUT, nan),
        (good_call, nan, K, T, R, True, IVStatus.BAD_INPUT, nan),
        (good_call, F, 0.0, T, R, True, IVStatus.BAD_INPUT, nan),
        (good_call, F, -K, T, R, True, IVStatus.BAD_INPUT, nan),
        (good_call, F, inf, T, R, True, IVStatus.BAD_INPUT, nan),
        (good_call, F, K, T, nan, True, IVStatus.BAD_INPUT, nan),
        (good_call, F, K, T, inf, True, IVStatus.BAD_INPUT, nan),
        (1000.0, F, K, T, 0.0, True, IVStatus.AT_INTRINSIC, 0.0),   # exactly intrinsic
        (good_call, F, K, T, R, True, IVStatus.OK, 0.2),
    ]
    p, f, k, t, r, c, want_status, want_vol = (np.array(x) for x in zip(*rows, strict=True))
    iv, status = gk.implied_vol(p, f, k, t, r, 0.0, c, return_status=True)
    assert status.dtype == np.int8
    np.testing.assert_array_equal(status, want_status.astype(np.int8))
    np.testing.assert_allclose(iv, want_vol, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(gk.implied_vol_status(p, f, k, t, r, 0.0, c), status)
    # the same table through BSM (q ignored by none of these checks) and the scalar kernel
    iv_bsm, status_bsm = gk.implied_vol(p, f, k, t, r, r, c, model="bsm", return_status=True)
    np.testing.assert_array_equal(status_bsm, status)
    np.testing.assert_allclose(iv_bsm, iv, rtol=1e-12, equal_nan=True)  # q = r: F = S
    for row, s in zip(rows, status, strict=True):
        assert gk.black76_implied_vol_scalar(*row[:6])[1] == s


def test_greeks_limits_and_invalid_rows_in_one_call():
    F, K, T, R = 100.0, 90.0, 0.5, 0.05
    df = math.exp(-R * T)
    nan = math.nan
    rows = [  # F, K, t, sigma, is_call
        (F, K, T, 0.2, True),      # good
        (F, K, T, 0.0, True),      # σ = 0 in the money
        (F, K, T, 0.0, False),     # σ = 0 out of the money
        (F, F, T, 0.0, True),      # σ = 0 at the strike
        (F, K, 0.0, 0.2, True),    # expiry, in the money
        (F, 110.0, 0.0, 0.2, True),  # expiry, out of the money
        (F, F, 0.0, 0.2, False),   # expiry at the strike
        (F, K, -T, 0.2, True),     # t < 0
        (F, K, T, -0.2, True),     # σ < 0
        (F, K, T, nan, True),
        (0.0, K, T, 0.2, True),
        (F, -K, T, 0.2, True),
        (F, K, T, 0.2, False),     # good
    ]
    f, k, t, sig, c = (np.array(x) for x in zip(*rows, strict=True))
    g = gk.greeks(f, k, t, sig, R, 0.0, c)
    good = gk.greeks(F, K, T, 0.2, R, 0.0, True)
    assert [float(x[0]) for x in g] == [float(x) for x in good]
    phi0 = 1 / math.sqrt(2 * math.pi)
    expected = np.array([
        [df * 10, df, 0.0, R * df * 10 / 365, 0.0, -T * df * 10 / 100],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, df / 2, math.inf, 0.0, df * F * phi0 * math.sqrt(T) / 100, 0.0],
        [10.0, 1.0, 0.0, R * 10 / 365, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, -0.5, math.inf, -math.inf, 0.0, 0.0],
    ])
    got = np.array([[float(x[i]) for x in g] for i in range(1, 7)])
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
    assert np.isnan(np.array([[float(x[i]) for x in g] for i in range(7, 12)])).all()
    np.testing.assert_allclose([float(x[12]) for x in g],
                               [float(x) for x in gk.greeks(F, K, T, 0.2, R, 0.0, False)])
    # the limits are limits: tiny σ and t approach them off the strike
    near = gk.greeks(F, K, T, 1e-6, R, 0.0, True)
    np.testing.assert_allclose([float(x) for x in near], expected[0], atol=1e-12)
    near = gk.greeks(F, K, 1e-10, 0.2, R, 0.0, True)
    np.testing.assert_allclose([float(x) for x in near], expected[3], atol=1e-9)
    # BSM at expiry: the spot's intrinsic value, delta a step in the spot
    g = gk.greeks([F, F], [K, 110.0], 0.0, 0.2, R, 0.03, [True, False], model="bsm")
    np.testing.assert_array_equal(g.price, [10.0, 10.0])
    np.testing.assert_array_equal(g.delta, [1.0, -1.0])


def test_no_exception_and_no_unexpected_status_for_extreme_inputs():
    rng = np.random.default_rng(3)
    n = 20000
    specials = np.array([0.0, -0.0, -1.0, 1e-320, 1e-300, 1e-12, 1.0, 1e12, 1e300,
                         np.inf, -np.inf, np.nan])
    cols = [np.where(rng.random(n) < 0.3, rng.choice(specials, n), 10 ** rng.uniform(-3, 5, n))
            for _ in range(5)]
    p, f, k, t, sig = cols
    r = np.where(rng.random(n) < 0.1, rng.choice(specials, n), rng.normal(0.05, 0.05, n))
    c = rng.random(n) < 0.5
    with np.errstate(all="ignore"):
        finite = (np.isfinite(f) & np.isfinite(k) & np.isfinite(t) & np.isfinite(sig)
                  & np.isfinite(r) & (f > 0) & (k > 0) & (t >= 0) & (sig >= 0)
                  & (np.abs(r * t) <= 700))
        growth = np.exp((r - 0.01) * t)
        carry_ok = (np.abs((r - 0.01) * t) <= 700) & np.isfinite(f * growth) & (f * growth > 0)
    for model in ("black76", "bsm"):
        iv, status = gk.implied_vol(p, f, k, t, r, 0.01, c, model=model, return_status=True)
        assert not (status == IVStatus.NO_CONVERGENCE).any()
        assert (status != IVStatus.OK).any() and (status == IVStatus.OK).sum() > 1000
        ok = status == IVStatus.OK
        assert (np.isfinite(iv[ok]) & (iv[ok] > 0)).all()
        assert np.isnan(iv[(status != IVStatus.OK) & (status != IVStatus.AT_INTRINSIC)]).all()
        g = gk.greeks(f, k, t, sig, r, 0.01, c, model=model)
        valid = finite & carry_ok if model == "bsm" else finite
        for x in g:
            assert np.isnan(x[~valid]).all()
        assert not np.isnan(g.price[valid]).any()
        assert not np.isnan(g.delta[valid]).any()


# --------------------------------------------------------------------------------------
# Parity and identities
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_book():
    rng = np.random.default_rng(42)
    n = 5000
    u = rng.uniform(50, 150, n)
    t = 10 ** rng.uniform(-4, 0.3, n)
    sig = rng.uniform(0.05, 1.0, n)
    k = u * np.exp(rng.normal(0, 1, n) * sig * np.sqrt(t))
    r = rng.uniform(-0.01, 0.1, n)
    q = rng.uniform(0, 0.04, n)
    return u, k, t, sig, r, q


@pytest.mark.parametrize("model", ["black76", "bsm"])
def test_put_call_parity_and_greek_identities(model, random_book):
    u, k, t, sig, r, q = random_book
    call = gk.greeks(u, k, t, sig, r, q, True, model=model)
    put = gk.greeks(u, k, t, sig, r, q, False, model=model)
    df = np.exp(-r * t)
    carry = np.exp(-q * t) if model == "bsm" else df       # ∂(C - P)/∂underlying
    f = u * np.exp((r - q) * t) if model == "bsm" else u
    scale = u  # relative to the underlying's magnitude
    np.testing.assert_allclose((call.price - put.price) / scale, (carry * u - df * k) / scale,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(call.delta - put.delta, carry, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(call.gamma, put.gamma)
    np.testing.assert_array_equal(call.vega, put.vega)
    # vega = F·DF·φ(d1)·√t·0.01, gamma = DF·φ(d1)/(F σ √t)·(F/S)² (no shared code path)
    s = sig * np.sqrt(t)
    d1 = np.log(f / k) / s + s / 2
    phi = np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(call.vega, f * df * phi * np.sqrt(t) * 0.01, rtol=1e-12)
    np.testing.assert_allclose(call.gamma, df * phi / (f * s) * (f / u) ** 2, rtol=1e-12)
    # Black–Scholes PDE: -∂V/∂t = rV - (r - q)·S·Δ - ½σ²S²Γ (Black-76: r - q = 0)
    for g in (call, put):
        drift = (r - q) * u * g.delta if model == "bsm" else 0.0
        pde = (r * g.price - drift - 0.5 * sig**2 * u**2 * g.gamma) / 365
        np.testing.assert_allclose(g.theta / scale, pde / scale, rtol=0, atol=1e-12)
    if model == "bsm":
        np.testing.assert_allclose((call.rho - put.rho) / scale, k * t * df * 0.01 / scale,
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose((call.theta - put.theta) / scale,
                                   (q * u * carry - r * k * df) / 365 / scale, rtol=0,
                                   atol=1e-12)
    else:
        np.testing.assert_allclose(call.rho, -t * call.price * 0.01, rtol=1e-14)
        np.testing.assert_allclose(put.rho, -t * put.price * 0.01, rtol=1e-14)


@settings(max_examples=150, deadline=None)
@given(m=st.floats(-6, 6), t=st.floats(1e-5, 3.0), sig=st.floats(0.01, 2.0),
       r=st.floats(-0.05, 0.2), is_call=st.booleans(), model=st.sampled_from(["black76",
                                                                             "bsm"]))
def test_price_implied_vol_round_trip(m, t, sig, r, is_call, model):
    u = 24000.0
    k = u * math.exp(m * sig * math.sqrt(t))
    p = float(gk.price(u, k, t, sig, r, 0.01, is_call, model=model))
    iv, status = gk.implied_vol(p, u, k, t, r, 0.01, is_call, model=model, return_status=True)
    if status == IVStatus.OK:
        vega = float(gk.greeks(u, k, t, sig, r, 0.01, is_call, model=model).vega) * 100
        assert abs(float(iv) - sig) <= 1e-10 + 8 * EPS * p / vega
    else:  # the time value is below the premium's resolution
        assert status == IVStatus.AT_INTRINSIC


def test_broadcasting_shapes_and_options():
    f = np.full((2, 3), 100.0)
    k = np.array([90.0, 100.0, 110.0])
    g = gk.greeks(f, k, 0.25, 0.2, 0.05, 0.0, np.array([[True], [False]]))
    assert all(x.shape == (2, 3) for x in g)
    assert g.price[0, 1] == pytest.approx(g.price[1, 1])   # ATM call = put at F
    p = gk.price(f, k, 0.25, 0.2, 0.05, 0.0, [[1], [0]])
    np.testing.assert_array_equal(p, g.price)
    iv = gk.implied_vol(p, f, k, 0.25, 0.05, 0.0, [[True], [False]])
    assert iv.shape == (2, 3)
    np.testing.assert_allclose(iv, 0.2, rtol=1e-13)
    assert gk.price(100.0, 100.0, 0.25, 0.2, 0.05, 0.0, True).shape == ()
    with pytest.raises(ValueError, match="model"):
        gk.price(100.0, 100.0, 0.25, 0.2, 0.05, 0.0, True, model="sabr")
    with pytest.raises(TypeError, match="is_call"):
        gk.price(100.0, 100.0, 0.25, 0.2, 0.05, 0.0, "c")
    empty = gk.implied_vol(np.array([]), 100.0, 100.0, 0.25, 0.05, 0.0, True,
                           return_status=True)
    assert empty[0].shape == empty[1].shape == (0,)
    assert isinstance(gk.greeks(100.0, 100.0, 0.25, 0.2, 0.05, 0.0, True), gk.Greeks)


# --------------------------------------------------------------------------------------
# The branch-free kernels of the array loops
# --------------------------------------------------------------------------------------
def ulps(got, ref):
    return float(abs((mp.mpf(float(got)) - ref) / ref)) / EPS


def test_branch_free_special_functions_are_accurate_to_a_few_ulp():
    """exp, (e^c, e^c - 1), e^±x, ln(a/b), erfcx (the fitted rational on [0, 4], Cody's
    asymptotic one beyond) and Φ⁻¹ as the vectorised kernels evaluate them, against
    mpmath."""
    rng = np.random.default_rng(8)
    for x in np.concatenate([rng.uniform(-708.0, 709.0, 300), rng.uniform(-1.0, 1.0, 300),
                             [0.0, -1e-300, 1e-10]]):
        assert ulps(gk._vexp(x), mp.exp(mp.mpf(x))) <= 1.0, x
    for c in np.concatenate([rng.uniform(-30.0, 30.0, 200), rng.normal(0.0, 1e-3, 200)]):
        growth, growth_m1 = gk._vgrowth(c)
        assert ulps(growth, mp.exp(mp.mpf(c))) <= 1.0 and ulps(growth_m1, mp.expm1(mp.mpf(c))) <= 2.0
    for x in rng.uniform(-700.0, 700.0, 300):
        up, down = gk._vexp_pair(x)
        assert ulps(up, mp.exp(mp.mpf(x))) <= 2.0 and ulps(down, mp.exp(-mp.mpf(x))) <= 2.0
    a = 10.0 ** rng.uniform(-60.0, 60.0, 400)
    b = a * np.exp(rng.normal(0.0, 1.0, 400) * 10.0 ** rng.uniform(-12.0, 0.5, 400))
    for x, y in zip(a, b, strict=True):
        ref = mp.log(mp.mpf(x) / mp.mpf(y))
        if ref != 0:
            assert ulps(gk._vlog_ratio(x, y), ref) <= 2.0, (x, y)
    for x in np.concatenate([np.linspace(0.0, 8.0, 801), np.geomspace(1e-8, 1e4, 200)]):
        assert ulps(gk._verfcx(x), mp.exp(mp.mpf(x) ** 2) * mp.erfc(x)) <= 3.0, x
    for p in np.geomspace(1e-300, 0.49, 120):
        z = gk._vnorm_ppf_log(math.log(p))
        assert float(abs(mp.ncdf(z) - p) / p) < 10 * EPS * max(1.0, z * z), p


def nifty_like_rows(rng, n):
    """Index options: F ≈ 24,000, strikes on a 50 grid within ±12 %, 1 to 120 days,
    8 %–35 % vol — what the branch-free kernels are for."""
    f = 24000.0 * np.exp(rng.normal(0.0, 0.05, n))
    k = np.round(f * np.exp(rng.uniform(-0.12, 0.12, n)) / 50.0) * 50.0
    t = rng.integers(1, 121, n) / 365.0
    sig = rng.uniform(0.08, 0.35, n)
    return f, k, t, sig, rng.random(n) < 0.5


@pytest.mark.parametrize("model", ["black76", "bsm"])
def test_branch_free_and_general_kernels_agree(model):
    """Where the branch-free kernels apply (nearly every row of a NIFTY chain), they give
    the general kernels' premium and Greeks to rounding and their implied vol to a few
    ulp (beyond the premium's conditioning, 4ε·P/vega, on deep in-the-money rows)."""
    bsm = model == "bsm"
    r, q = 0.065, (0.012 if bsm else 0.0)
    f, k, t, sig, c = nifty_like_rows(np.random.default_rng(9), 2000)
    fast_greeks = fast_iv = 0
    for i in range(len(f)):
        ok, *fast = gk._greeks_fast(f[i], k[i], t[i], sig[i], r, q, c[i], bsm)
        general = gk._greeks_general(f[i], k[i], t[i], sig[i], r, q, c[i], bsm)
        if ok:
            fast_greeks += 1
            np.testing.assert_allclose(fast, general, rtol=2e-13, atol=1e-15 * f[i])
        ok, s_fast = gk._iv_fast(general[0], f[i], k[i], t[i], r, q, c[i], bsm)
        s_general, status = gk._iv_general(general[0], f[i], k[i], t[i], r, q, c[i], bsm)
        if ok:
            fast_iv += 1
            assert status == IVStatus.OK
            cond = 4 * EPS * general[0] / (100 * general[4])
            assert abs(s_fast - s_general) <= 4 * EPS * s_general + cond
    assert fast_greeks > 0.95 * len(f) and fast_iv > 0.95 * len(f)


def test_branch_free_kernels_flag_rows_outside_their_domain():
    """Expired, zero-vol, invalid, long-dated and far-from-the-money rows are left to the
    general kernels."""
    for args in [(24000.0, 24000.0, 0.0, 0.2), (24000.0, 24000.0, 0.1, 0.0),
                 (24000.0, 24000.0, math.nan, 0.2), (24000.0, -1.0, 0.1, 0.2),
                 (24000.0, 24000.0, 2.0, 0.5), (24000.0, 80000.0, 0.1, 0.2),
                 (24000.0, 24500.0, 1e-3, 0.01)]:
        assert not gk._greeks_fast(*args, 0.065, 0.0, True, False)[0], args
    p = gk.black76_price_scalar(24000.0, 24000.0, 0.1, 0.2, 0.065, True)
    for args in [(p, 24000.0, 24000.0, 0.0), (0.0, 24000.0, 24000.0, 0.1),
                 (p, 24000.0, 24000.0, math.inf), (24000.0, 24000.0, 24000.0, 0.1),
                 (p, 24000.0, 40000.0, 0.1), (8000.0, 24000.0, 24000.0, 2.0)]:
        assert not gk._iv_fast(*args, 0.065, 0.0, True, False)[0], args


@pytest.mark.parametrize("model", ["black76", "bsm"])
def test_scalar_kernels_equal_the_array_functions(model):
    """The array functions run the branch-free kernels over blocks and the general ones on
    the flagged rows; the scalar kernels decide the same way per row, so both agree to the
    last bit — rows of both kinds, shared and per-row inputs mixed."""
    rng = np.random.default_rng(10)
    f, k, t, sig, c = nifty_like_rows(rng, 700)
    t[::7] = 2.5                      # long-dated: the general kernels
    k[::11] *= 3.0                    # far from the money
    sig[::13] = 0.0
    t[::17] = 0.0
    r, q = 0.065, 0.01
    g = gk.greeks(f, k, t, sig, r, q, c, model=model)
    p = g.price.copy()
    p[::19] = np.nan
    iv, status = gk.implied_vol(p, f, k, t, r, q, c, model=model, return_status=True)
    code = gk.MODEL_BSM if model == "bsm" else gk.MODEL_BLACK76
    scalar_g = np.array([gk.greeks_scalar(f[i], k[i], t[i], sig[i], r, q, c[i], code)
                         for i in range(len(f))])
    scalar_iv = [gk.implied_vol_scalar(p[i], f[i], k[i], t[i], r, q, c[i], code)
                 for i in range(len(f))]
    np.testing.assert_array_equal(np.column_stack(g), scalar_g)
    np.testing.assert_array_equal(gk.price(f, k, t, sig, r, q, c, model=model), g.price)
    np.testing.assert_array_equal(iv, [v for v, _ in scalar_iv])
    np.testing.assert_array_equal(status, [s for _, s in scalar_iv])


# --------------------------------------------------------------------------------------
# A user's own numba.njit(parallel=True) code
# --------------------------------------------------------------------------------------
@numba.njit(parallel=True)
def user_chain(prices, forwards, strikes, t, r, calls, iv_out, status_out, greeks_out):
    for i in numba.prange(prices.shape[0]):
        v, code = gk.black76_implied_vol_scalar(prices[i], forwards[i], strikes[i], t, r,
                                                calls[i])
        iv_out[i] = v
        status_out[i] = code
        p, d, g, th, ve, rh = gk.black76_greeks_scalar(forwards[i], strikes[i], t, v, r,
                                                       calls[i])
        greeks_out[i, 0] = p
        greeks_out[i, 1] = d
        greeks_out[i, 2] = g
        greeks_out[i, 3] = th
        greeks_out[i, 4] = ve
        greeks_out[i, 5] = rh


def test_scalar_kernels_inside_user_parallel_njit():
    f, k, _, sig, c = nifty_chain()
    t, r = 5 / 365, 0.065
    prices = gk.price(f, k, t, sig, r, 0.0, c)
    prices[::17] = np.nan  # bad rows travel too
    n = len(prices)
    iv, status, out = np.empty(n), np.empty(n, np.int8), np.empty((n, 6))
    user_chain(prices, f, k, t, r, c, iv, status, out)
    want_iv, want_status = gk.implied_vol(prices, f, k, t, r, 0.0, c, return_status=True)
    np.testing.assert_array_equal(status, want_status)
    np.testing.assert_array_equal(iv, want_iv)
    want = np.column_stack(gk.greeks(f, k, t, want_iv, r, 0.0, c))
    np.testing.assert_array_equal(out, want)


# --------------------------------------------------------------------------------------
# NUMBA_DISABLE_JIT: the kernels are plain Python too
# --------------------------------------------------------------------------------------
NOJIT_SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    warnings.simplefilter("error")          # no hidden division by zero or overflow
    np.seterr(divide="raise", over="raise", invalid="raise", under="ignore")
    import numba
    assert numba.config.DISABLE_JIT
    from vectorticks import greeks as gk
    args = json.loads(sys.stdin.read())
    out = {}
    for model in ("black76", "bsm"):
        iv, st = gk.implied_vol(*args["iv"], model=model, return_status=True)
        g = gk.greeks(*args["greeks"], model=model)
        out[model] = {"iv": iv.tolist(), "status": st.tolist(),
                      "greeks": [x.tolist() for x in g]}
    print(json.dumps(out))
""")


def nojit_inputs():
    f, k, _, sig, c = nifty_chain()
    sel = slice(0, None, 9)
    f, k, sig, c = f[sel], k[sel], sig[sel], c[sel]
    t = np.where(np.arange(len(f)) % 2, 3 / 365, 24 / 365)
    p = gk.price(f, k, t, sig, 0.065, 0.0, c)
    # bad rows, and rows the branch-free kernels leave to the general ones (deep in the
    # money at intrinsic, far out of it, long-dated, extreme values)
    extra_p = [0.0, -1.0, np.nan, 1e9, 3000.0, 0.05, 5e-324, 2500.0, 1e-6, 3000.0, 1e-250]
    extra_f = [24000.0] * 10 + [1e200]
    extra_k = [22000.0, 22000.0, 22000.0, 22000.0, 21000.0, 30000.0, 26000.0, 21500.0,
               40000.0, 24000.0, 1e-200]
    extra_t = [0.01, 0.01, 0.01, 0.01, 0.0, 1e-6, 0.02, 0.02, 0.05, 3.0, 1e4]
    p = np.concatenate([p, extra_p])
    f = np.concatenate([f, extra_f])
    k = np.concatenate([k, extra_k])
    t = np.concatenate([t, extra_t])
    c = np.concatenate([c, np.ones(len(extra_p), bool)])
    sig_g = np.concatenate([sig, [0.0, -0.1, np.nan, 0.2, 0.2, 0.2, 0.2, 0.2, 0.15, 0.6,
                                  1e3]])
    t_g = np.concatenate([t[:-len(extra_t)], [0.01, 0.01, 0.01, 0.0, -1.0, 1e-9, 0.02, 0.02,
                                              0.05, 3.0, 1e4]])
    return ([p.tolist(), f.tolist(), k.tolist(), t.tolist(), 0.065, 0.01, c.tolist()],
            [f.tolist(), k.tolist(), t_g.tolist(), sig_g.tolist(), 0.065, 0.01, c.tolist()])


def test_kernels_run_with_numba_disable_jit():
    iv_args, greek_args = nojit_inputs()
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", NOJIT_SCRIPT], env=env, cwd=root,
                          input=json.dumps({"iv": iv_args, "greeks": greek_args}),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for model in ("black76", "bsm"):
        iv, status = gk.implied_vol(*iv_args, model=model, return_status=True)
        g = gk.greeks(*greek_args, model=model)
        assert result[model]["status"] == status.tolist()
        np.testing.assert_allclose(np.array(result[model]["iv"], float), iv, rtol=1e-14,
                                   equal_nan=True)
        for got, want in zip(result[model]["greeks"], g, strict=True):
            np.testing.assert_allclose(np.array(got, float), want, rtol=1e-14, atol=0,
                                       equal_nan=True)
