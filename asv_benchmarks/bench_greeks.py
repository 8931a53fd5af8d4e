"""asv suites for vectorticks.greeks: implied vol and price + 5 Greeks at 1,000,000 options,
a 5,000-option chain, and a side-by-side against a NumPy/SciPy closed form and
py_vollib_vectorized 0.1.1 on the same data.

Kernels are warmed in ``setup`` (numba compiles on first call, then loads from its cache).
``track_*_ns_per_option`` report the median of a few runs in ns per option — the figure the
performance goals are stated in. Baselines whose package is missing are skipped
(``NotImplementedError`` in ``setup``). Set ``VECTORTICKS_BENCH_SLOW=0`` to skip the slow
cases (the 1,000,000-option suites and the baselines).

Side-by-side medians and ratios in one process, outside asv (and vectorticks alone at
1,000,000 options, and the 5,000-option chain)::

    .venv/bin/python asv_benchmarks/bench_greeks.py [n_options]
    .venv/bin/python asv_benchmarks/bench_greeks.py 1m [--baseline FILE]
    .venv/bin/python asv_benchmarks/bench_greeks.py chain [--baseline FILE]

``--baseline FILE`` times another version of ``vectorticks/greeks.py`` interleaved with
this one, e.g. ``git show HEAD:vectorticks/greeks.py > /tmp/greeks_head.py``.
"""

import math
import os
import sys
import time
import warnings

import numpy as np

from vectorticks import greeks

N_LARGE = 1_000_000
N_SIDE_BY_SIDE = 200_000
SLOW = os.environ.get("VECTORTICKS_BENCH_SLOW", "1") != "0"
R = 0.065


def market(n, *, seed=0, order="chain"):
    """n index options on a NIFTY-like forward: chains of 100 strikes (±10 %) × calls and
    puts at expiries from 1 to 90 days with a skewed smile; "chain" keeps each chain
    together (as a window snapshot ordered by instrument does), "shuffled" does not."""
    rng = np.random.default_rng(seed)
    per_chain = 200
    n_chains = -(-n // per_chain)
    days = rng.integers(1, 91, n_chains).astype(float)
    fwd = 24000.0 * np.exp(rng.normal(0.0, 0.05, n_chains))
    t = np.repeat(days / 365.0, per_chain)[:n]
    f = np.repeat(fwd, per_chain)[:n]
    m = np.tile(np.linspace(-0.1, 0.1, per_chain // 2).repeat(2), n_chains)[:n]
    k = np.round(f * np.exp(m) / 50.0) * 50.0
    is_call = np.tile([True, False], n // 2 + 1)[:n]
    x = np.log(k / f)
    sigma = 0.13 - 0.3 * x + 2.0 * x * x + rng.normal(0.0, 0.002, n)
    if order == "shuffled":
        p = rng.permutation(n)
        f, k, t, sigma, is_call = f[p], k[p], t[p], sigma[p], is_call[p]
    price = greeks.price(f, k, t, sigma, R, 0.0, is_call)
    return {"f": f, "k": k, "t": t, "sigma": sigma, "is_call": is_call, "price": price}


def nifty_chain_5000():
    """One window's worth of NIFTY options: 5,000 = 2,500 strikes × call/put over 5 expiries."""
    strikes = np.arange(500) * 10.0 + 21500.0
    rows = []
    for days in (2, 9, 16, 30, 58):
        fwd = 24000.0 + 12.0 * days
        x = np.log(strikes / fwd)
        sigma = 0.12 + 0.1 / np.sqrt(days) - 0.3 * x + 2.0 * x * x
        for is_call in (True, False):
            rows.append((np.full(500, fwd), strikes, np.full(500, days / 365.0), sigma,
                         np.full(500, is_call)))
    f, k, t, sigma, is_call = (np.concatenate(c) for c in zip(*rows, strict=True))
    price = greeks.price(f, k, t, sigma, R, 0.0, is_call)
    return {"f": f, "k": k, "t": t, "sigma": sigma, "is_call": is_call, "price": price}


def median_seconds(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _warm(g=greeks):
    d = market(1000)
    for model in ("black76", "bsm"):
        g.implied_vol(d["price"], d["f"], d["k"], d["t"], R, 0.0, d["is_call"], model=model)
        g.greeks(d["f"], d["k"], d["t"], d["sigma"], R, 0.0, d["is_call"], model=model)
        g.price(d["f"], d["k"], d["t"], d["sigma"], R, 0.0, d["is_call"], model=model)


# --------------------------------------------------------------------------------------
# vectorticks at 1,000,000 options
# --------------------------------------------------------------------------------------
class ImpliedVol:
    """implied_vol on 1,000,000 options (target: <= 250 ns/option, one thread)."""

    params = (["black76", "bsm"], ["chain", "shuffled"])
    param_names = ["model", "order"]
    timeout = 300

    def setup(self, model, order):
        if not SLOW:
            raise NotImplementedError("VECTORTICKS_BENCH_SLOW=0")
        _warm()
        self.d = market(N_LARGE, order=order)

    def run(self, model):
        d = self.d
        greeks.implied_vol(d["price"], d["f"], d["k"], d["t"], R, 0.0, d["is_call"],
                           model=model)

    def time_implied_vol(self, model, order):
        self.run(model)

    def track_ns_per_option(self, model, order):
        return median_seconds(lambda: self.run(model), 3) / N_LARGE * 1e9

    track_ns_per_option.unit = "ns/option"

    def peakmem_reference(self, model, order):
        pass  # setup's memory, to compare peakmem_implied_vol against

    def peakmem_implied_vol(self, model, order):
        self.run(model)


class PriceAndGreeks:
    """greeks (price + delta, gamma, theta, vega, rho) on 1,000,000 options
    (target: <= 60 ns/option, one thread)."""

    params = (["black76", "bsm"], ["chain", "shuffled"])
    param_names = ["model", "order"]
    timeout = 300

    def setup(self, model, order):
        if not SLOW:
            raise NotImplementedError("VECTORTICKS_BENCH_SLOW=0")
        _warm()
        self.d = market(N_LARGE, order=order)

    def run(self, model):
        d = self.d
        greeks.greeks(d["f"], d["k"], d["t"], d["sigma"], R, 0.0, d["is_call"], model=model)

    def time_greeks(self, model, order):
        self.run(model)

    def track_ns_per_option(self, model, order):
        return median_seconds(lambda: self.run(model), 3) / N_LARGE * 1e9

    track_ns_per_option.unit = "ns/option"

    def time_price_only(self, model, order):
        d = self.d
        greeks.price(d["f"], d["k"], d["t"], d["sigma"], R, 0.0, d["is_call"], model=model)

    def peakmem_reference(self, model, order):
        pass

    def peakmem_greeks(self, model, order):
        self.run(model)


class Chain5000:
    """One window's chain of 5,000 options: implied vols, then Greeks at those vols
    (target: <= 2 ms)."""

    def setup(self):
        _warm()
        self.d = nifty_chain_5000()
        self.run()

    def run(self):
        d = self.d
        iv = greeks.implied_vol(d["price"], d["f"], d["k"], d["t"], R, 0.0, d["is_call"])
        return greeks.greeks(d["f"], d["k"], d["t"], iv, R, 0.0, d["is_call"])

    def time_iv_and_greeks(self):
        self.run()

    def track_iv_and_greeks_ms(self):
        return median_seconds(self.run, 21) * 1e3

    track_iv_and_greeks_ms.unit = "ms"


# --------------------------------------------------------------------------------------
# Baselines, same data, one run
# --------------------------------------------------------------------------------------
def scipy_black76_greeks(f, k, t, sigma, r, is_call):
    """The textbook closed form in NumPy with scipy.special.ndtr (the fair baseline for
    price + Greeks: vectorised, no Python loop)."""
    from scipy.special import ndtr

    theta = np.where(is_call, 1.0, -1.0)
    sq = np.sqrt(t)
    s = sigma * sq
    d1 = np.log(f / k) / s + 0.5 * s
    d2 = d1 - s
    df = np.exp(-r * t)
    n1 = ndtr(theta * d1)
    pdf = np.exp(-0.5 * d1 * d1) * (1.0 / math.sqrt(2.0 * math.pi))
    price = df * theta * (f * n1 - k * ndtr(theta * d2))
    delta = theta * df * n1
    gamma = df * pdf / (f * s)
    vega = df * f * pdf * sq
    theta_day = (r * price - vega * sigma / (2.0 * t)) / 365.0
    return price, delta, gamma, theta_day, vega * 0.01, -t * price * 0.01


def scipy_black76_iv(price, f, k, t, r, is_call):
    """Vectorised Newton (scipy.optimize.newton with an array x0 and the analytic vega) from
    the Brenner–Subrahmanyam guess clipped to [5 %, 200 %]; tol 1e-12 in σ, 50 steps max.
    Non-converged entries come back as the last iterate."""
    from scipy.optimize import newton
    from scipy.special import ndtr

    theta = np.where(is_call, 1.0, -1.0)
    df = np.exp(-r * t)
    sq = np.sqrt(t)
    lfk = np.log(f / k)

    def objective(sigma):
        s = sigma * sq
        d1 = lfk / s + 0.5 * s
        return df * theta * (f * ndtr(theta * d1) - k * ndtr(theta * (d1 - s))) - price

    def vega(sigma):
        s = sigma * sq
        d1 = lfk / s + 0.5 * s
        return df * f * np.exp(-0.5 * d1 * d1) * (sq / math.sqrt(2.0 * math.pi))

    x0 = np.clip(price / df / f * math.sqrt(2.0 * math.pi) / sq, 0.05, 2.0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return newton(objective, x0, fprime=vega, tol=1e-12, maxiter=50, disp=False)


def _pvv():
    try:
        import py_vollib_vectorized
    except Exception as exc:  # missing, or broken against this numpy/numba
        raise NotImplementedError(f"py_vollib_vectorized unavailable: {exc!r}") from exc
    return py_vollib_vectorized


def pvv_black76_iv(pvv, price, f, k, t, r, is_call):
    flag = np.where(is_call, "c", "p")
    return pvv.vectorized_implied_volatility_black(price, f, k, r, t, flag, return_as="numpy",
                                                   on_error="ignore")


def pvv_black76_greeks(pvv, f, k, t, sigma, r, is_call):
    flag = np.where(is_call, "c", "p")
    return pvv.get_all_greeks(flag, f, k, t, r, sigma, model="black", return_as="dict")


class SideBySide:
    """Black-76 implied vol and price + Greeks on the same 200,000 options: vectorticks,
    NumPy/SciPy (ndtr closed form; vectorised Newton for IV), py_vollib_vectorized 0.1.1."""

    params = (["vectorticks", "numpy_scipy", "py_vollib_vectorized"],)
    param_names = ["library"]
    timeout = 600

    def setup(self, library):
        if not SLOW:
            raise NotImplementedError("VECTORTICKS_BENCH_SLOW=0")
        self.d = market(N_SIDE_BY_SIDE, seed=1)
        d = self.d
        args_iv = (d["price"], d["f"], d["k"], d["t"], R, d["is_call"])
        args_g = (d["f"], d["k"], d["t"], d["sigma"], R, d["is_call"])
        if library == "vectorticks":
            _warm()
            self.iv = lambda: greeks.implied_vol(*args_iv[:5], 0.0, args_iv[5])
            self.greeks = lambda: greeks.greeks(*args_g[:5], 0.0, args_g[5])
        elif library == "numpy_scipy":
            try:
                import scipy  # noqa: F401
            except ImportError as exc:
                raise NotImplementedError("scipy missing") from exc
            self.iv = lambda: scipy_black76_iv(*args_iv)
            self.greeks = lambda: scipy_black76_greeks(*args_g)
        else:
            pvv = _pvv()
            self.iv = lambda: pvv_black76_iv(pvv, *args_iv)
            self.greeks = lambda: pvv_black76_greeks(pvv, *args_g)
        small = market(1000, seed=2)  # warm any JIT of the library itself
        if library == "py_vollib_vectorized":
            pvv_black76_iv(pvv, small["price"], small["f"], small["k"], small["t"], R,
                           small["is_call"])
            pvv_black76_greeks(pvv, small["f"], small["k"], small["t"], small["sigma"], R,
                               small["is_call"])

    def time_implied_vol(self, library):
        self.iv()

    def time_price_and_greeks(self, library):
        self.greeks()

    def track_implied_vol_ns_per_option(self, library):
        return median_seconds(self.iv, 3) / N_SIDE_BY_SIDE * 1e9

    track_implied_vol_ns_per_option.unit = "ns/option"

    def track_price_and_greeks_ns_per_option(self, library):
        return median_seconds(self.greeks, 3) / N_SIDE_BY_SIDE * 1e9

    track_price_and_greeks_ns_per_option.unit = "ns/option"


# --------------------------------------------------------------------------------------
# Side-by-side report outside asv: medians of interleaved runs and ratios
# --------------------------------------------------------------------------------------
def side_by_side(n=N_SIDE_BY_SIDE, rounds=5):
    """Times every available implementation on the same data, interleaving the rounds so
    that machine noise hits all of them alike; prints medians over rounds of the best of two
    back-to-back calls (ns/option), ratios and accuracy."""
    d = market(n, seed=1)
    args_iv = (d["price"], d["f"], d["k"], d["t"], R, d["is_call"])
    args_g = (d["f"], d["k"], d["t"], d["sigma"], R, d["is_call"])
    _warm()
    impls = {"vectorticks": (lambda: greeks.implied_vol(*args_iv[:5], 0.0, args_iv[5]),
                             lambda: greeks.greeks(*args_g[:5], 0.0, args_g[5]))}
    impls["numpy_scipy"] = (lambda: scipy_black76_iv(*args_iv),
                            lambda: scipy_black76_greeks(*args_g))
    try:
        pvv = _pvv()
        pvv_black76_iv(pvv, *(a[:100] if isinstance(a, np.ndarray) else a for a in args_iv))
        pvv_black76_greeks(pvv, *(a[:100] if isinstance(a, np.ndarray) else a
                                  for a in args_g))
        impls["py_vollib_vectorized"] = (lambda: pvv_black76_iv(pvv, *args_iv),
                                         lambda: pvv_black76_greeks(pvv, *args_g))
    except NotImplementedError as exc:
        print(f"skipped py_vollib_vectorized: {exc}")
    times = {(name, kind): [] for name in impls for kind in ("iv", "greeks")}
    for _ in range(rounds):
        for name, (iv, gr) in impls.items():
            for kind, fn in (("iv", iv), ("greeks", gr)):
                times[name, kind].append(_best_of_two(fn))
    ours = {kind: np.median(times["vectorticks", kind]) for kind in ("iv", "greeks")}
    print(f"{n:,} Black-76 options (chains of 200, 1-90 days), {rounds} interleaved rounds, "
          "median of best-of-2")
    print(f"{'library':24s} {'IV ns/opt':>10s} {'x ours':>7s} {'price+Greeks':>13s} "
          f"{'x ours':>7s}  max |IV - σ| where the premium determines σ")
    # accuracy where the premium determines σ to better than 1e-10 (ε·P/vega < 1e-10)
    g = greeks.greeks(*args_g[:5], 0.0, args_g[5])
    determined = 2.2e-16 * d["price"] / (100.0 * g.vega) < 1e-10
    for name, (iv, _) in impls.items():
        m_iv = np.median(times[name, "iv"])
        m_g = np.median(times[name, "greeks"])
        err = np.abs(np.asarray(iv(), float) - d["sigma"])[determined]
        bad = int((~(err <= 1e-8)).sum())
        print(f"{name:24s} {m_iv / n * 1e9:10.1f} {m_iv / ours['iv']:7.2f} "
              f"{m_g / n * 1e9:13.1f} {m_g / ours['greeks']:7.2f}  "
              f"{np.nanmax(err):.1e} ({bad} of {determined.sum()} off by > 1e-8 or NaN)")
    chain = nifty_chain_5000()

    def chain_run():
        iv = greeks.implied_vol(chain["price"], chain["f"], chain["k"], chain["t"], R, 0.0,
                                chain["is_call"])
        greeks.greeks(chain["f"], chain["k"], chain["t"], iv, R, 0.0, chain["is_call"])

    chain_run()
    print(f"5,000-option chain, IV + Greeks: {median_seconds(chain_run, 21) * 1e3:.2f} ms")


def load_baseline(path):
    """Another version of vectorticks/greeks.py, imported as vectorticks._greeks_baseline
    (its relative imports resolve in the package; numba caches it next to the file)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vectorticks._greeks_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _versions(baseline):
    out = {"vectorticks": greeks}
    if baseline is not None:
        out["baseline"] = baseline
    return out


def _load():
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def million(rounds=5, baseline=None):
    """vectorticks at 1,000,000 options, both models, chain order and shuffled (and the
    baseline version, interleaved): medians of interleaved rounds of the best of two
    back-to-back calls, in ns/option."""
    versions = _versions(baseline)
    for module in versions.values():
        _warm(module)
    print(_load())
    for order in ("chain", "shuffled"):
        d = market(N_LARGE, order=order)
        args = (d["f"], d["k"], d["t"], d["sigma"], R, 0.0, d["is_call"])
        iv_args = (d["price"], d["f"], d["k"], d["t"], R, 0.0, d["is_call"])
        fns = {}
        for model in ("black76", "bsm"):
            for name, g in versions.items():
                fns[model, "implied vol", name] = \
                    lambda g=g, m=model, a=iv_args: g.implied_vol(*a, model=m)
                fns[model, "price + Greeks", name] = \
                    lambda g=g, m=model, a=args: g.greeks(*a, model=m)
                fns[model, "price only", name] = lambda g=g, m=model, a=args: g.price(*a, model=m)
        times = {key: [] for key in fns}
        for _ in range(rounds):
            for key, fn in fns.items():
                times[key].append(_best_of_two(fn))
        for (model, what, name), ts in times.items():
            ns = np.median(ts) / N_LARGE * 1e9
            ratio = ""
            if name == "baseline":
                ours = np.median(times[model, what, "vectorticks"]) / N_LARGE * 1e9
                ratio = f"  ({ns / ours:.2f}x ours)"
            print(f"{order:9s} {model:8s} {what:15s} {name:12s} {ns:7.1f} ns/option{ratio}")
    print(_load())


def chain(rounds=41, baseline=None):
    """The 5,000-option chain, implied vols then Greeks at those vols: median ms of
    interleaved rounds (and the baseline version's)."""
    versions = _versions(baseline)
    for module in versions.values():
        _warm(module)
    d = nifty_chain_5000()

    def run(g):
        iv = g.implied_vol(d["price"], d["f"], d["k"], d["t"], R, 0.0, d["is_call"])
        return g.greeks(d["f"], d["k"], d["t"], iv, R, 0.0, d["is_call"])

    times = {name: [] for name in versions}
    for _ in range(rounds):
        for name, g in versions.items():
            t0 = time.perf_counter()
            run(g)
            times[name].append(time.perf_counter() - t0)
    print(_load())
    for name, ts in times.items():
        print(f"5,000-option chain, IV + Greeks, {name:12s} {np.median(ts) * 1e3:.2f} ms")


def _best_of_two(fn):
    """Wall time of the faster of two back-to-back calls of ``fn``, in s: the state another
    call leaves behind (freed memory the next allocation must fault in again, caches) is not
    charged to this one."""
    best = math.inf
    for _ in range(2):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    cli = sys.argv[1:]
    base = None
    if "--baseline" in cli:
        at = cli.index("--baseline")
        base = load_baseline(cli[at + 1])
        del cli[at:at + 2]
    if cli == ["1m"]:
        million(baseline=base)
    elif cli == ["chain"]:
        chain(baseline=base)
    else:
        side_by_side(int(cli[0]) if cli else N_SIDE_BY_SIDE)
