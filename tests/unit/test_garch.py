"""GARCH fit/filter/forecast checked against `arch` itself (the independent reference)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.risk.garch import (
    GarchParams,
    arch_backcast,
    average_variance,
    filter_batch,
    filter_state,
    filter_variance,
    fit_garch,
    forecast_batch,
    forecast_variance,
    initial_state,
    select_order,
    stack_params,
)

arch_univariate = pytest.importorskip("arch.univariate")


def simulate(n: int, omega: float, alphas, betas, mu: float = 0.0, seed: int = 0, t_df: float | None = None):
    """Decimal returns from a GARCH process (p = len(betas) variance lags, q = len(alphas) shock lags)."""
    rng = np.random.default_rng(seed)
    m = max(len(alphas), len(betas))
    uncond = omega / (1 - sum(alphas) - sum(betas))
    burn = 300
    e = np.zeros(n + burn)
    s = np.full(n + burn, uncond)
    z = rng.standard_t(t_df, n + burn) * np.sqrt((t_df - 2) / t_df) if t_df else rng.standard_normal(n + burn)
    for t in range(m, n + burn):
        s[t] = omega + sum(a * e[t - 1 - i] ** 2 for i, a in enumerate(alphas))
        s[t] += sum(b * s[t - 1 - j] for j, b in enumerate(betas))
        e[t] = np.sqrt(s[t]) * z[t]
    return e[burn:] + mu


def arch_model_for(r, p, q, dist="normal", mean="constant"):
    """`arch`'s own model in percent units, with `arch`'s order names: its p = shock lags, its q = variance lags."""
    from arch.univariate import GARCH, ConstantMean, Normal, StudentsT, ZeroMean

    m = (ConstantMean if mean == "constant" else ZeroMean)(np.asarray(r) * 100, rescale=False)
    m.volatility = GARCH(p=q, q=p)
    m.distribution = StudentsT() if dist == "t" else Normal()
    return m


@pytest.fixture(scope="module")
def r_study() -> np.ndarray:
    # study 004's GARCH(1,2): sigma2_t = w + a1 e2_{t-1} + b1 s2_{t-1} + b2 s2_{t-2}  ->  p=2, q=1 here
    return simulate(1200, 4e-6, [0.10], [0.45, 0.40], mu=4e-4, seed=1)


def test_order_mapping_and_fit_match_arch(r_study):
    prm = fit_garch(r_study, p=2, q=1, estimator="arch")
    assert prm.estimator == "arch"
    res = arch_model_for(r_study, 2, 1).fit(disp="off")
    names = list(res.params.index)
    assert names == ["mu", "omega", "alpha[1]", "beta[1]", "beta[2]"]  # one shock lag, two variance lags
    assert prm.p == 2 and prm.q == 1 and len(prm.alphas) == 1 and len(prm.betas) == 2
    assert prm.converged
    np.testing.assert_allclose(prm.omega, res.params["omega"] / 1e4, rtol=1e-6)
    np.testing.assert_allclose(prm.alphas, [res.params["alpha[1]"]], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(prm.betas, res.params[["beta[1]", "beta[2]"]], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(prm.mu, res.params["mu"] / 100, rtol=1e-6)
    # log-likelihood of decimal returns = arch's (percent) + n log 100
    np.testing.assert_allclose(prm.loglik, res.loglikelihood + len(r_study) * np.log(100), rtol=1e-9)
    np.testing.assert_allclose(prm.arch_vector(), res.params.to_numpy(), rtol=1e-12)
    # the fitted conditional variance path
    mine = filter_variance(r_study, prm)
    ref = (res.conditional_volatility / 100) ** 2
    np.testing.assert_allclose(mine, ref, rtol=1e-8)
    assert prm.backcast == pytest.approx(res.model._backcast / 1e4, rel=1e-12)


SPECS = [
    # (p, q, dist, mean, fixed parameters in arch order, percent units)
    (1, 1, "normal", "constant", [0.05, 0.02, 0.08, 0.90]),
    (2, 1, "normal", "zero", [0.03, 0.10, 0.50, 0.35]),
    (1, 2, "t", "constant", [0.01, 0.05, 0.04, 0.06, 0.85, 6.0]),
    (3, 2, "normal", "constant", [-0.02, 0.04, 0.05, 0.03, 0.3, 0.3, 0.25]),
]


def _params_from_arch(vec, p, q, dist, mean) -> GarchParams:
    v = list(vec)
    mu = v.pop(0) / 100 if mean == "constant" else 0.0
    omega = v.pop(0) / 1e4
    alphas = tuple(v[:q])
    betas = tuple(v[q : q + p])
    nu = v[q + p] if dist == "t" else None
    return GarchParams(omega=omega, alphas=alphas, betas=betas, mu=mu, nu=nu, dist=dist, mean=mean)


@pytest.mark.parametrize(("p", "q", "dist", "mean", "vec"), SPECS)
def test_filter_matches_arch_fix(p, q, dist, mean, vec):
    r = simulate(800, 2e-6, [0.05] * q, [0.85 / p] * p, mu=1e-4, seed=p * 10 + q)
    prm = _params_from_arch(vec, p, q, dist, mean)
    fixed = arch_model_for(r, p, q, dist, mean).fix(vec)
    ref = (fixed.conditional_volatility / 100) ** 2
    np.testing.assert_allclose(filter_variance(r, prm), ref, rtol=1e-8)


@pytest.mark.parametrize(("p", "q", "dist", "mean", "vec"), SPECS)
@pytest.mark.parametrize("horizon", [1, 7, 63])
def test_forecast_matches_arch(p, q, dist, mean, vec, horizon):
    r = simulate(700, 2e-6, [0.05] * q, [0.85 / p] * p, mu=1e-4, seed=3 + p + q)
    prm = _params_from_arch(vec, p, q, dist, mean)
    model = arch_model_for(r, p, q, dist, mean)
    fixed = model.fix(vec)
    ref = fixed.forecast(horizon=horizon, reindex=False).variance.to_numpy()[-1] / 1e4
    _, state = filter_state(r, prm)
    mine = forecast_variance(prm, state, horizon)
    np.testing.assert_allclose(mine, ref, rtol=1e-8)
    assert average_variance(prm, state, horizon) == pytest.approx(float(np.mean(ref)), rel=1e-8)


def test_default_mle_fit_matches_tight_arch(r_study):
    """The default estimator (analytic-gradient MLE) reaches arch's optimum (arch run to a tight tolerance)."""
    prm = fit_garch(r_study, p=2, q=1)
    assert prm.estimator == "mle" and prm.converged
    res = arch_model_for(r_study, 2, 1).fit(disp="off", tol=1e-12)
    np.testing.assert_allclose(prm.arch_vector(), res.params.to_numpy(), rtol=0, atol=1e-4)
    ll_arch = res.loglikelihood + len(r_study) * np.log(100)
    assert prm.loglik >= ll_arch - 1e-9 * abs(ll_arch)
    # the recorded path and the filter agree with arch's fixed-parameter filter at our optimum
    fixed = arch_model_for(r_study, 2, 1).fix(prm.arch_vector())
    np.testing.assert_allclose(filter_variance(r_study, prm), (fixed.conditional_volatility / 100) ** 2, rtol=1e-8)
    assert GarchParams.from_dict(prm.to_dict()).estimator == "mle"


def test_forecast_matches_fitted_result(r_study):
    prm = fit_garch(r_study, p=2, q=1, estimator="arch")
    res = arch_model_for(r_study, 2, 1).fit(disp="off")
    ref = res.forecast(horizon=63, reindex=False).variance.to_numpy()[-1] / 1e4
    _, state = filter_state(r_study, prm)
    np.testing.assert_allclose(forecast_variance(prm, state, 63), ref, rtol=1e-8)
    # long horizon converges to the unconditional variance
    far = forecast_variance(prm, state, 5000)[-1]
    assert far == pytest.approx(prm.unconditional_variance, rel=1e-6)


def test_filter_forward_equals_full_filter(r_study):
    prm = fit_garch(r_study[:900], p=2, q=1)
    full = filter_variance(r_study, prm, backcast=prm.backcast)
    head, st = filter_state(r_study[:900], prm)
    tail, st2 = filter_state(r_study[900:], prm, state=st)
    np.testing.assert_allclose(np.concatenate([head, tail]), full, rtol=1e-13)
    assert st2.n_obs == len(r_study)
    # one row at a time gives the same state
    s = st
    for x in r_study[900:]:
        _, s = filter_state(np.array([x]), prm, state=s)
    np.testing.assert_allclose(s.sigma2, st2.sigma2, rtol=1e-13)
    np.testing.assert_allclose(s.eps2, st2.eps2, rtol=1e-13)


def test_nan_returns_are_skipped():
    r = simulate(400, 2e-6, [0.08], [0.9], seed=5)
    prm = GarchParams(omega=2e-6, alphas=(0.08,), betas=(0.9,), mu=0.0, mean="zero")
    rn = r.copy()
    rn[[10, 50, 51, 200]] = np.nan
    out = filter_variance(rn, prm)
    assert np.isnan(out[[10, 50, 51, 200]]).all()
    ref = filter_variance(rn[np.isfinite(rn)], prm)
    np.testing.assert_allclose(out[np.isfinite(rn)], ref, rtol=1e-14)


def test_batch_with_mixed_orders_equals_single_asset():
    ps = [
        GarchParams(omega=1e-6, alphas=(0.05,), betas=(0.93,), mu=1e-4),
        GarchParams(omega=3e-6, alphas=(0.04, 0.03), betas=(0.5, 0.4), mu=-2e-4),
        GarchParams(omega=2e-6, alphas=(0.1,), betas=(0.3, 0.3, 0.25), mu=0.0),
    ]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 3)) * 0.01
    omega, a, b, mu = stack_params(ps)
    m = a.shape[1]
    bc = np.array([arch_backcast(x[:, i] - x[:, i].mean()) for i in range(3)])
    init = np.broadcast_to(bc, (m, 3)).copy()
    sig, e1, s1 = filter_batch((x - mu) ** 2, omega, a, b, init, init)
    fc = forecast_batch(omega, a, b, e1, s1, 20)
    for i, prm in enumerate(ps):
        path, st = filter_state(x[:, i], prm)
        np.testing.assert_allclose(sig[:, i], path, rtol=1e-13)
        np.testing.assert_allclose(fc[:, i], forecast_variance(prm, st, 20), rtol=1e-13)


def test_initial_state_and_backcast_rule():
    r = np.arange(1, 101, dtype=float) / 1000
    w = 0.94 ** np.arange(75)
    assert arch_backcast(r) == pytest.approx(np.sum(r[:75] ** 2 * w) / w.sum(), rel=1e-14)
    prm = GarchParams(omega=1e-6, alphas=(0.1,), betas=(0.5, 0.3))
    st = initial_state(prm, 2e-4)
    assert st.eps2.shape == (2,) and np.all(st.sigma2 == 2e-4)
    # first variance uses the backcast for every lag
    out = filter_variance(r, prm, backcast=2e-4)
    assert out[0] == pytest.approx(1e-6 + 0.1 * 2e-4 + 0.8 * 2e-4, rel=1e-14)


def test_warm_start_reaches_same_optimum(r_study):
    cold = fit_garch(r_study[:1000], p=2, q=1)
    warm = fit_garch(r_study[:1000], p=2, q=1, starting_values=cold)
    assert warm.converged
    np.testing.assert_allclose(warm.loglik, cold.loglik, rtol=1e-7)
    np.testing.assert_allclose(warm.omega, cold.omega, rtol=1e-2)
    # a starting vector of the wrong spec is ignored, not an error
    other = fit_garch(r_study[:1000], p=1, q=1, starting_values=cold)
    assert other.converged and other.p == 1


def test_student_t_fit_recovers_tails():
    r = simulate(1500, 2e-6, [0.08], [0.9], seed=11, t_df=5.0)
    prm = fit_garch(r, p=1, q=1, dist="t", fitted_on="2020-01-31")
    assert prm.converged and prm.nu is not None and 3.0 < prm.nu < 10.0
    assert prm.to_dict()["fitted_on"] == "2020-01-31"


def test_too_short_or_bad_orders_raise():
    with pytest.raises(ValueError, match="at least 10"):
        fit_garch(np.array([0.01, np.nan, 0.02]), 1, 1)
    with pytest.raises(ValueError, match="orders"):
        fit_garch(np.zeros(50) + 0.01, 0, 1)
    with pytest.raises(ValueError):
        forecast_variance(
            GarchParams(omega=1e-6, alphas=(0.1,), betas=(0.8,)),
            initial_state(GarchParams(omega=1e-6, alphas=(0.1,), betas=(0.8,)), 1e-4),
            0,
        )


def test_select_order_holdout_scores_match_arch():
    r = simulate(1000, 2e-6, [0.08], [0.9], mu=2e-4, seed=21)
    sel = select_order(r, max_p=2, max_q=2, metric="mse", holdout=0.2)
    assert (sel.n_train, sel.n_test) == (800, 200)
    assert set(sel.scores) <= {(1, 1), (1, 2), (2, 1), (2, 2)} and (1, 1) in sel.scores
    best = min(sel.scores.values(), key=lambda s: s["mse"])["mse"]
    assert sel.scores[(sel.p, sel.q)]["mse"] == best
    # independent reference for (1, 1): arch fit on the training part, arch's fixed-parameter filter on all
    res = arch_model_for(r[:800], 1, 1).fit(disp="off")
    fixed = arch_model_for(r, 1, 1).fix(res.params.to_numpy())
    s2 = (fixed.conditional_volatility[800:] / 100) ** 2
    e2 = (r[800:] - res.params["mu"] / 100) ** 2
    ref = {"mse": np.mean((s2 - e2) ** 2), "mae": np.mean(np.abs(s2 - e2))}
    assert sel.scores[(1, 1)]["mse"] == pytest.approx(ref["mse"], rel=1e-4)
    assert sel.scores[(1, 1)]["mae"] == pytest.approx(ref["mae"], rel=1e-4)
    assert sel.scores[(1, 1)]["rmse"] == pytest.approx(np.sqrt(sel.scores[(1, 1)]["mse"]))


def test_real_prices_filter_matches_arch(djia_prices):
    r = djia_prices["AAPL"].pct_change().dropna().to_numpy()[-1000:]
    prm = fit_garch(r, p=2, q=1)
    assert prm.converged
    fixed = arch_model_for(r, 2, 1).fix(prm.arch_vector())
    np.testing.assert_allclose(filter_variance(r, prm), (fixed.conditional_volatility / 100) ** 2, rtol=1e-8)
    ref = fixed.forecast(horizon=63, reindex=False).variance.to_numpy()[-1] / 1e4
    _, st = filter_state(r, prm)
    np.testing.assert_allclose(forecast_variance(prm, st, 63), ref, rtol=1e-8)
