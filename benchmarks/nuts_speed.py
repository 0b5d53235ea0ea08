"""NUTS speed: bulk ESS per second of ``sample_posterior`` against a plain NumPyro GMM.

For each problem size the data come from a known mixture. Two samplers:

- **bayesgmm**: MAP-EM under ``Prior.default``, then ``sample_posterior``
  started from it (its default chain method);
- **plain NumPyro**: the model written the usual way, ``MixtureSameFamily`` of
  ``MultivariateNormal`` with an LKJ prior on the correlations, half-Cauchy
  scales, default NUTS settings, every parameter started at k-means values,
  chains vectorised as bayesgmm's (see ``PLAIN_CHAIN_METHOD``).

ESS is the bulk ESS (ArviZ) of every mean entry after relabelling against the
truth, and the figure is its minimum. Every run happens in a fresh Python
process, so no run benefits from another's compilation cache. Inside the run
JAX reports when it traces, lowers and compiles (``jax.monitoring`` time
spans); the union of those spans is the compile time, reported separately,
and the sampling time is the wall time of the run less that. (An earlier
version subtracted the wall time of a separate 2-draw run instead; at
N=1000, where sampling takes a second or two, the run-to-run noise of a
10-second compilation swamped it.) The answer is checked against the truth
too (largest error of a posterior-mean mean entry), because two chains can
agree on a wrong mode.

Usage: python benchmarks/nuts_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import bayesgmm as bg
from bayesgmm import GMMParams

_COMPILE_EVENTS = frozenset(
    {
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    }
)
_compile_spans: list[tuple[float, float]] = []


def _record_compile_span(event, start, end, **_):
    if event in _COMPILE_EVENTS:
        _compile_spans.append((start, end))


jax.monitoring.register_event_time_span_listener(_record_compile_span)


def covered_seconds(spans, lo, hi):
    """Length of the union of ``spans`` clipped to ``[lo, hi]`` (nested spans count once)."""
    total, reach = 0.0, lo
    for start, end in sorted(spans):
        start, end = max(start, reach), min(end, hi)
        if end > start:
            total += end - start
            reach = end
    return total


def timed(fn):
    """Run ``fn`` and block on its result; return (result, wall seconds, compile seconds)."""
    first = len(_compile_spans)
    t0 = time.time()
    out = fn()
    jax.block_until_ready(jax.tree.leaves(out[0] if isinstance(out, tuple) else out))
    t1 = time.time()
    return out, t1 - t0, covered_seconds(_compile_spans[first:], t0, t1)


def make_problem(N, D, K, seed):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(K, D))
    A = rng.normal(scale=0.6, size=(K, D, D))
    covs = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(D)
    weights = rng.dirichlet(np.full(K, 5.0))
    with jax.enable_x64(True):
        truth = GMMParams(weights, means, covs)
        X, _ = truth.sample(jax.random.key(seed), N)
    return np.asarray(X), truth


def min_bulk_ess_and_error(params: GMMParams, truth: GMMParams):
    import arviz as az

    aligned = bg.diagnostics.relabel(params, reference=truth).params
    means = np.asarray(aligned.means)  # (chain, draw, K, D)
    ess = az.ess(az.convert_to_dataset({"m": means}), method="bulk")["m"].values
    err = np.abs(means.mean(axis=(0, 1)) - np.asarray(truth.means)).max()
    rhat = az.rhat(az.convert_to_dataset({"m": means}))["m"].values.max()
    return float(ess.min()), float(err), float(rhat)


def run_bayesgmm(X, K, chains, warmup, samples, seed):
    prior = bg.Prior.default(X, K)
    bg.fit_em(X, K, prior=prior, n_init=5, seed=seed)  # compile EM: the EM time is the fit
    em, em_wall, _ = timed(lambda: bg.fit_em(X, K, prior=prior, n_init=5, seed=seed))

    def sample():
        return bg.sample_posterior(
            X,
            K,
            prior=prior,
            init=em,
            num_chains=chains,
            num_warmup=warmup,
            num_samples=samples,
            seed=seed,
            progress_bar=False,
        ).params

    params, wall, compile_s = timed(sample)
    return params, wall, compile_s, em_wall


def plain_model(X, K):
    import numpyro
    import numpyro.distributions as dist

    N, D = X.shape
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(K)))
    with numpyro.plate("component", K):
        mu = numpyro.sample("mu", dist.MultivariateNormal(jnp.zeros(D), 100.0 * jnp.eye(D)))
        L = numpyro.sample("L", dist.LKJCholesky(D, 2.0))
        sigma = numpyro.sample("sigma", dist.HalfCauchy(5.0 * jnp.ones(D)).to_event(1))
    scale_tril = sigma[..., :, None] * L
    mix = dist.MixtureSameFamily(
        dist.Categorical(probs=w), dist.MultivariateNormal(mu, scale_tril=scale_tril)
    )
    with numpyro.plate("data", N):
        numpyro.sample("obs", mix, obs=X)


def run_plain(X, K, chains, warmup, samples, seed):
    from numpyro.infer import MCMC, NUTS, init_to_value
    from sklearn.cluster import KMeans

    km = KMeans(K, n_init=5, random_state=seed).fit(X)
    lab = km.labels_
    covs = np.stack([np.cov(X[lab == k].T) + 1e-6 * np.eye(X.shape[1]) for k in range(K)])
    sd = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
    corr = covs / (sd[:, :, None] * sd[:, None, :])
    values = {
        "w": jnp.asarray(np.bincount(lab, minlength=K) / len(lab)),
        "mu": jnp.asarray(km.cluster_centers_),
        "L": jnp.asarray(np.linalg.cholesky(corr)),
        "sigma": jnp.asarray(sd),
    }
    kernel = NUTS(plain_model, init_strategy=init_to_value(values=values))

    def sample():
        mcmc = MCMC(
            kernel,
            num_warmup=warmup,
            num_samples=samples,
            num_chains=chains,
            progress_bar=False,
            chain_method=PLAIN_CHAIN_METHOD,
        )
        mcmc.run(jax.random.key(seed), jnp.asarray(X), K)
        return mcmc.get_samples(group_by_chain=True)

    s, wall, compile_s = timed(sample)
    L = s["sigma"][..., :, None] * s["L"]
    covs = L @ jnp.swapaxes(L, -1, -2)
    return GMMParams._unchecked(s["w"], s["mu"], covs), wall, compile_s, 0.0


# NumPyro's default chain method, "parallel", runs the chains one after another
# on a single CPU device ("sequential"), which was several times slower per draw
# here than "vectorized"; the plain model gets the faster of the two, the same
# method sample_posterior uses, so the ratio measures the model and the start.
PLAIN_CHAIN_METHOD = "vectorized"

METHODS = {
    "bayesgmm": (run_bayesgmm, "vectorized (its default)"),
    "plain NumPyro": (run_plain, f"{PLAIN_CHAIN_METHOD}, as bayesgmm"),
}


def worker(name, N, D, K, chains, warmup, samples):
    """One run in this (fresh) process; prints a JSON line."""
    jax.config.update("jax_enable_x64", True)  # both samplers in float64
    X, truth = make_problem(N, D, K, seed=N)
    params, wall, compile_s, em_s = METHODS[name][0](X, K, chains, warmup, samples, 0)
    out = {"wall": wall, "compile": compile_s, "em": em_s}
    out["ess"], out["err"], out["rhat"] = min_bulk_ess_and_error(params, truth)
    print("RESULT " + json.dumps(out))


def spawn(*args) -> dict:
    cmd = [sys.executable, __file__, "--worker", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, *nums = args.worker
        worker(name, *map(int, nums))
        return
    if args.quick:
        sizes, chains, warmup, samples = [(200, 2, 2)], 2, 100, 100
    else:
        sizes, chains, warmup, samples = [(1000, 2, 3), (10_000, 5, 4)], 2, 500, 1000
    print(
        f"NUTS: {chains} chains, {warmup} warmup, {samples} draws each; float64; "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s); every run in a "
        "fresh process\n"
    )
    header = (
        f"{'N':>7} {'D':>2} {'K':>2}  {'sampler':<14} {'min bulk ESS':>12} "
        f"{'sample s':>9} {'ESS/s':>8} {'compile s':>9} {'EM s':>6} {'max R-hat':>9} "
        f"{'max |err|':>9}"
    )
    print(header)
    print("-" * len(header))
    targets = {1000: 2.0, 10_000: 3.0}
    for N, D, K in sizes:
        rates = {}
        for name, (_, method) in METHODS.items():
            full = spawn(name, N, D, K, chains, warmup, samples)
            sample_s = full["wall"] - full["compile"]
            rates[name] = full["ess"] / sample_s
            print(
                f"{N:>7} {D:>2} {K:>2}  {name:<14} {full['ess']:>12.0f} {sample_s:>9.1f} "
                f"{rates[name]:>8.1f} {full['compile']:>9.1f} {full['em']:>6.2f} "
                f"{full['rhat']:>9.3f} {full['err']:>9.3f}   [{method}]",
                flush=True,
            )
        ratio = rates["bayesgmm"] / rates["plain NumPyro"]
        target = targets.get(N)
        verdict = "" if target is None else (" PASS" if ratio >= target else " FAIL")
        target_text = "" if target is None else f" (target >= {target:g}x)"
        print(f"{'':>14}  ESS/s ratio bayesgmm / plain: {ratio:.2f}x{target_text}{verdict}\n")


if __name__ == "__main__":
    main()
