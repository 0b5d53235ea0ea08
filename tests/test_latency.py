"""Compiled once per shape class: padding, reuse within a process, reuse across processes.

The speed targets live in ``benchmarks/latency.py``; these tests check the
mechanisms that the targets rest on, and that they change no result.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import bayesgmm as bg
from bayesgmm._core import _blocks, covariance
from bayesgmm._core._blocks import bucket, component_class, em_block_layout, feature_class
from bayesgmm.em import _programs
from bayesgmm.em._fit import seed_key_data

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def _jax_log(prefix, name_of):
    """``name_of(message)`` for each of JAX's compile-log messages starting with ``prefix``."""
    names: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if message.startswith(prefix):
                names.append(name_of(message))

    handler = Catch(level=logging.DEBUG)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    previous = jax.config.jax_log_compiles
    jax.config.update("jax_log_compiles", True)
    try:
        yield names
    finally:
        jax.config.update("jax_log_compiles", previous)
        logger.removeHandler(handler)


def compilations():
    """Names of the programs JAX lowers and compiles inside the block (cache hits included)."""
    return _jax_log("Compiling ", lambda m: m.split(" with ")[0][len("Compiling ") :])


@contextlib.contextmanager
def program_log():
    """What :mod:`bayesgmm.em._programs` did inside the block ("bayesgmm: wrote ...", "loaded")."""
    lines: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Catch(level=logging.DEBUG)
    logger = logging.getLogger("bayesgmm")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)


def test_bucket_ladder():
    assert [bucket(n) for n in (1, 2, 3, 16, 17, 250, 256, 257)] == [
        1,
        2,
        3,
        16,
        20,
        256,
        256,
        305,
    ]
    assert bucket(5, minimum=32) == 32
    for n in range(1, 5000, 7):
        b = bucket(n, steps=16)
        assert n <= b <= max(n + 1, 1.05 * n)
    # one block: every N up to the block's rows shares it; several: blocks on the ladder
    assert em_block_layout(272, 2, 2) == em_block_layout(20, 2, 2) == (1, 1, 4096)
    assert em_block_layout(272, 8, 2) == (1, 1, 1024)
    n_alloc, n_used, B = em_block_layout(100_000, 8, 10)
    assert n_used == -(-100_000 // B) and n_alloc == bucket(n_used) >= n_used
    assert em_block_layout(272, 2, 2, block_size=100) == (3, 3, 100)  # exact when given
    # up to MERGED_BLOCKS blocks of a class are one block of their rows (N=2,000, K x D = 32:
    # four blocks of 512 rows, laid out as one of 2,048); more stay blocks
    assert em_block_layout(2_000, 8, 4) == (1, 1, 4 * 512)
    assert em_block_layout(1_000, 8, 4) == (1, 1, 2 * 512)
    assert em_block_layout(4_000, 8, 4) == (8, 8, 512)
    for n in range(513, 2049, 97):  # the classes are those of the blocks: no new programs
        merged, blocks = em_block_layout(n, 8, 4)[2], bucket(-(-n // 512)) * 512
        assert merged == blocks


@pytest.mark.parametrize(
    ("n", "d", "k", "structure"),
    [(272, 2, 3, "full"), (3000, 10, 8, "diag"), (2500, 3, 2, "tied")],
)
def test_padded_fit_equals_the_exact_layout(n, d, k, structure):
    """Zero-weight padding to the shape class changes nothing beyond rounding."""
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, d)) + 4.0 * rng.integers(0, 3, size=(n, 1))
    padded = bg.fit_em(X, k, covariance_type=structure, n_init=2, seed=1)
    exact_block = em_block_layout(n, k, d)[2] if em_block_layout(n, k, d)[1] > 1 else n
    exact = bg.fit_em(X, k, covariance_type=structure, n_init=2, seed=1, block_size=exact_block)
    assert em_block_layout(n, k, d) != em_block_layout(n, k, d, block_size=exact_block)
    assert padded.n_iter == exact.n_iter
    np.testing.assert_allclose(padded.log_likelihood, exact.log_likelihood, rtol=1e-12)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            getattr(padded.params, name), getattr(exact.params, name), rtol=1e-9, atol=1e-12
        )


def test_second_fit_of_a_shape_class_compiles_nothing():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    bg.fit_em(X, 3, n_init=2)
    Y = rng.normal(size=(280, 3)) * 2.0 + 1.0  # other data, other N, same class (512 rows)
    with compilations() as names:
        em = bg.fit_em(Y, 3, n_init=2)
    assert names == [], names
    assert em.n_samples == 280.0
    assert component_class(280, 3, 3) == component_class(280, 7, 3) == 8
    with compilations() as names:
        other_k = [bg.fit_em(Y, k, n_init=2) for k in (1, 4, 7)]  # K padded to 8: one program
        other_structures = [
            bg.fit_em(Y, 2, n_init=2, covariance_type=s) for s in ("tied", "diag", "spherical")
        ]  # the structure is chosen inside the program
    assert names == [], names
    assert [em.n_components for em in other_k] == [1, 4, 7]
    assert [em.covariance_type for em in other_structures] == ["tied", "diag", "spherical"]
    spherical = other_structures[-1].params.covariances
    np.testing.assert_allclose(spherical, spherical[:, :1, :1] * np.eye(3))
    assert feature_class(280, 3, 3) == feature_class(280, 3, 1) == feature_class(280, 3, 4) == 4
    with compilations() as names:  # D = 1..4 are one feature class
        other_d = [
            bg.fit_em(np.c_[Y, Y[:, :1] ** 2], 3, n_init=2),
            bg.fit_em(Y[:, 0], 3, n_init=2),
        ]
    assert names == [], names
    assert [em.n_features for em in other_d] == [4, 1]
    with compilations() as names:
        bg.fit_em(np.c_[Y, Y[:, :2] ** 2], 3, n_init=2)  # D = 5: the next class, 6
    assert names, "a new feature class must be a program of its own"
    key = jax.random.key(5)
    with compilations() as names:  # a key instead of a seed: the same program
        by_key = bg.fit_em(Y, 3, n_init=2, key=key)
    assert names == [], names
    by_seed = bg.fit_em(Y, 3, n_init=2, seed=5)
    np.testing.assert_array_equal(by_key.restart_objectives, by_seed.restart_objectives)


def test_max_iter_is_an_argument_not_a_new_program():
    """max_iter 5, 60 and 127 share the program of 100 (histories of 128) and stop where told."""
    from bayesgmm.em._core import history_class

    assert [history_class(m) for m in (1, 100, 127, 128, 500)] == [128, 128, 128, 256, 512]
    rng = np.random.default_rng(2)
    X = np.r_[rng.normal(size=(150, 2)), rng.normal(size=(150, 2)) * 0.5 + 1.5]
    bg.fit_em(X, 2, seed=0, max_iter=100)
    with warnings.catch_warnings(), compilations() as names:
        warnings.simplefilter("ignore")  # "did not converge": tol 1e-300 is never met
        fits = {m: bg.fit_em(X, 2, seed=0, tol=1e-300, max_iter=m) for m in (5, 60, 127)}
    assert names == [], names
    for m, em in fits.items():
        assert em.n_iter == m and not em.converged
        assert em.history.shape == (m + 1,) and np.all(np.isfinite(em.history))
    # the same iterations, cut at another place
    np.testing.assert_allclose(fits[127].history[:61], fits[60].history, rtol=1e-13)
    np.testing.assert_allclose(fits[60].history[:6], fits[5].history, rtol=1e-13)
    with compilations() as names:
        bg.fit_em(X, 2, seed=0, max_iter=128)  # histories of 256: the next class
    assert names, "a max_iter past the class must be a program of its own"


def test_seeds_become_jax_keys_without_jax():
    """fit_em's key from a seed, made in NumPy, is JAX's key of that seed."""
    with jax.enable_x64(True):
        for seed in (0, 1, 5, 2**32 - 1, 2**32, 2**40 + 7, 2**63 - 1):
            np.testing.assert_array_equal(
                seed_key_data(seed), jax.random.key_data(jax.random.key(seed))
            )


def test_padded_components_change_nothing_beyond_rounding(monkeypatch):
    """K padded to its class, the structure picked at run time: the same fit as without."""
    X = bg.datasets.load_faithful()
    assert component_class(len(X), 3, 2) == 8
    for structure in ("full", "tied", "diag", "spherical"):
        for init in ("kmeans++", "kmeans", "random", "random_from_data"):
            padded = bg.fit_em(X, 3, covariance_type=structure, init=init, n_init=2, seed=1)
            with monkeypatch.context() as m:
                m.setattr(_blocks, "COMPONENT_PAD_ELEMENTS", 0)  # no class: K itself
                m.setattr(covariance, "COVARIANCE_TYPES", ())  # the structure compiled in
                assert component_class(len(X), 3, 2) == 3
                exact = bg.fit_em(X, 3, covariance_type=structure, init=init, n_init=2, seed=1)
            assert padded.n_iter == exact.n_iter, (structure, init)
            assert padded.n_components == 3
            np.testing.assert_allclose(padded.log_likelihood, exact.log_likelihood, rtol=1e-12)
            for name in ("weights", "means", "covariances"):
                np.testing.assert_allclose(
                    getattr(padded.params, name), getattr(exact.params, name), atol=1e-10
                )


def test_padded_features_change_nothing_beyond_rounding(monkeypatch):
    """D padded to its class with zero columns (mean 0, variance 1): the fit without padding.

    Every structure (spherical divides by the real D), sample weights, a given
    start, 1 and 3 features; the log-likelihood gets the padding's constant back.
    """
    rng = np.random.default_rng(3)
    # Jittered: Old Faithful's whole minutes put rows exactly halfway between two
    # k-means++ centres, where the last bit of a distance picks the side.
    X = bg.datasets.load_faithful() + rng.normal(0.0, 0.01, (272, 2))
    data = {1: X[:, 1], 3: np.c_[X, X[:, 0] ** 2 / 10 + rng.normal(size=len(X))]}
    w = rng.uniform(0.2, 3.0, len(X))
    start = bg.fit_em(data[3], 2, max_iter=2, tol=0, covariance_type="diag").params

    def fits():
        # A fixed number of iterations: a stopping rule met at the edge of tol
        # can flip with the last bit, and one iteration more is not a difference.
        kw = dict(n_init=2, seed=4, sample_weight=w, tol=0.0, max_iter=25)
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bg.ConvergenceWarning)
            for d, Y in data.items():
                for structure in ("full", "tied", "diag", "spherical"):
                    out[d, structure] = bg.fit_em(Y, 2, covariance_type=structure, **kw)
            out["given"] = bg.fit_em(data[3], 2, init=start, covariance_type="spherical")
        return out

    assert feature_class(len(X), 2, 1) == feature_class(len(X), 2, 3) == 4
    padded = fits()
    with monkeypatch.context() as m:
        m.setattr(_blocks, "COMPONENT_PAD_ELEMENTS", 0)  # no classes: D and K themselves
        assert feature_class(len(X), 2, 3) == 3
        exact = fits()
    for key, a in padded.items():
        b = exact[key]
        assert a.n_iter == b.n_iter, key
        assert a.params.covariances.shape == b.params.covariances.shape, key
        np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-13, err_msg=key)
        np.testing.assert_allclose(a.history, b.history, rtol=1e-12, err_msg=key)
        np.testing.assert_allclose(a.icl, b.icl, rtol=1e-12, err_msg=key)
        for name in ("weights", "means", "covariances"):
            np.testing.assert_allclose(
                getattr(a.params, name), getattr(b.params, name), atol=1e-10, err_msg=key
            )


def test_scoring_pads_features_into_one_program():
    """log_prob, its components and responsibilities of D = 1..4: one program each, same values."""
    X = bg.datasets.load_faithful()
    fits = {d: bg.fit_em(np.c_[X, X[:, :1] ** 2][:, :d], 2, seed=0) for d in (1, 2, 3)}
    fits[2].params.log_prob(X[:10])
    fits[2].params.responsibilities(X[:10])
    fits[2].params.log_prob_components(X[:10])
    with compilations() as names:
        for d, em in fits.items():
            Y = np.c_[X, X[:, :1] ** 2][:50, :d]
            p = em.params
            direct = [
                np.log(p.weights[j]) + multivariate_normal(p.means[j], p.covariances[j]).logpdf(Y)
                for j in range(2)
            ]
            direct = np.stack(direct, axis=-1).reshape(50, 2)
            np.testing.assert_allclose(p.log_prob_components(Y), direct, rtol=1e-11)
            np.testing.assert_allclose(p.log_prob(Y), np.logaddexp(*direct.T), rtol=1e-11)
            resp = np.exp(direct - np.logaddexp(*direct.T)[:, None])
            np.testing.assert_allclose(p.responsibilities(Y), resp, rtol=1e-10)
    assert [n for n in names if "log_prob" in n or "responsibilities" in n] == [], names


def test_scoring_pads_rows_and_components_into_one_program():
    """Densities of any K of a class on any N up to a block: one compiled program, same values."""
    X = bg.datasets.load_faithful()
    fits = {k: bg.fit_em(X, k, seed=0) for k in (2, 5)}
    fits[2].params.log_prob(X[:10])
    with compilations() as names:
        values = {(k, n): fits[k].params.log_prob(X[:n]) for k in fits for n in (3, 54, 55, 272)}
        resp = fits[5].params.responsibilities(X[:40])
    assert [n for n in names if "log_prob" in n] == [], names
    for (k, n), value in values.items():
        p = fits[k].params
        direct = np.log(
            sum(
                p.weights[j] * multivariate_normal(p.means[j], p.covariances[j]).pdf(X[:n])
                for j in range(k)
            )
        )
        assert value.shape == (n,)
        np.testing.assert_allclose(value, direct, rtol=1e-10)
    assert resp.shape == (40, 5)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)


def test_repeated_estimator_calls_compile_nothing():
    """One-iteration warm-start fits, as scikit-learn's monotonic-likelihood test does.

    Each call once compiled two fresh programs (the matrix-at-a-time ``lax.map``
    run outside a compiled program on the fitted parameters); 600 such fits held
    the kernel's whole allowance of memory maps and crashed the process.
    """
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2)) + 6.0 * rng.integers(0, 2, size=(200, 1))
    gmm = bg.GaussianMixture(2, warm_start=True, max_iter=1, tol=1e-9, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            gmm.fit(X).score(X)
            gmm.predict_proba(X)
        with compilations() as names:
            for _ in range(3):
                gmm.fit(X).score(X)
                gmm.predict_proba(X)
    assert names == [], names


def test_second_posterior_of_a_shape_class_compiles_no_sampler():
    rng = np.random.default_rng(0)
    kw = dict(init="em", num_chains=2, num_warmup=30, num_samples=100, progress_bar=False)
    X = rng.normal(size=(120, 2)) + 5.0 * rng.integers(0, 2, size=(120, 1))
    first = bg.sample_posterior(X, 2, **kw)
    Y = X[:119] + 0.01  # the same shape class of rows (bucket(120) == bucket(119))
    assert bucket(119, 32, steps=16) == bucket(120, 32, steps=16)
    with compilations() as names:
        second = bg.sample_posterior(Y, 2, **kw)
    assert names == [], names  # nothing at all: no sampler, no small eager program
    assert second.X.shape == (119, 2) and first.X.shape == (120, 2)


def test_padded_posterior_density_equals_the_unpadded_one():
    """What padding leaves of NUTS: the same potential and gradient, to rounding."""
    from numpyro.infer.util import potential_energy

    from bayesgmm.bayes import _sample, _sites

    X = bg.datasets.load_faithful()
    prior = bg.Prior.default(X, 2)
    em = bg.fit_em(X, 2, prior=prior)
    w = np.ones(len(X))
    model = _sites.BoundModel(bg.gmm_model, 2, "full")
    bound = _sites.bind(X, 2, prior, bg.covariance.get("full"), None)
    transforms = _sites.latent_transforms(bound)
    with jax.enable_x64(True):
        sites = _sites.params_to_sites(em.params, bg.covariance.get("full"), transforms)
        z = _sites.unconstrain(transforms, sites)
        values = []
        for args in (
            _sample._model_args(X, w, prior, padded=True),
            _sample._model_args(X, w, prior, padded=False),
        ):
            value, grad = jax.value_and_grad(lambda z, a=args: potential_energy(model, a, {}, z))(
                z
            )
            values.append((float(value), jax.tree.leaves(grad)))
    assert _sample._model_args(X, w, prior, padded=True)[0].shape[0] > len(X)
    np.testing.assert_allclose(values[0][0], values[1][0], rtol=1e-13)
    for a, b in zip(values[0][1], values[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("store", ["", "1"], ids=["jax-cache", "stored-executables"])
def test_a_second_process_reads_the_compiled_programs_from_disk(tmp_path, store):
    script = textwrap.dedent(
        """
        import logging, jax
        import bayesgmm as bg
        jax.config.update("jax_log_compiles", True)
        logging.basicConfig(level=logging.DEBUG, format="%(message)s")
        print(bg.fit_em(bg.datasets.load_faithful(), 2).log_likelihood.hex())
        """
    )
    env = {**os.environ, "BAYESGMM_CACHE_DIR": str(tmp_path / "cache")}
    env[_programs.ENV_VAR] = store
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
        )
        for _ in range(2)
    ]
    assert runs[0].stdout == runs[1].stdout  # the same fit, to the last digit
    if not store:
        # The default: the first process traces the EM program, exports it to disk and
        # compiles it; the second reads the export (no tracing) and hits JAX's cache.
        hit = "Persistent compilation cache hit for 'jit_fit_em'"
        traced = "Finished tracing fit_from_key "
        assert hit not in runs[0].stderr and traced in runs[0].stderr
        assert hit in runs[1].stderr, runs[1].stderr[-3000:]
        assert traced not in runs[1].stderr
        assert not (tmp_path / "cache" / _programs.FOLDER).exists()
        assert any((tmp_path / "cache" / "exported").glob("fit_em-*"))
        # and the exported program is the traced one: the fit of a process with no cache
        off = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env={**env, "BAYESGMM_CACHE_DIR": "off"},
            check=True,
        )
        assert off.stdout == runs[0].stdout
        assert "jit(fit_em)" not in off.stderr and traced in off.stderr
        return
    # Opted in: the first process compiles and writes the whole program; the second
    # loads it without tracing or lowering it (JAX's own cache would trace and lower).
    assert "Compiling jit(fit_from_key_stored)" in runs[0].stderr
    assert "bayesgmm: wrote the compiled program fit_em-" in runs[0].stderr
    assert "bayesgmm: loaded the compiled program fit_em-" not in runs[0].stderr
    assert "bayesgmm: loaded the compiled program fit_em-" in runs[1].stderr
    assert "fit_from_key" not in runs[1].stderr, runs[1].stderr
    assert any((tmp_path / "cache" / _programs.FOLDER).iterdir())


def test_a_broken_program_file_is_compiled_again(tmp_path, monkeypatch):
    monkeypatch.setenv(_programs.ENV_VAR, "1")  # the opt-in store of executables
    """A file that cannot be loaded costs a compilation, never a wrong or failed fit."""
    X = bg.datasets.load_faithful()[:100]
    expected = bg.fit_em(X, 2, covariance_type="diag", seed=3)
    previous = jax.config.jax_compilation_cache_dir
    try:
        bg.set_compilation_cache(tmp_path)
        _programs.clear()
        with program_log() as log:
            bg.fit_em(X, 2, covariance_type="diag", seed=3)
        assert [line.split()[1] for line in log] == ["wrote"], log
        (path,) = (tmp_path / _programs.FOLDER).iterdir()
        path.write_bytes(b"not a program")
        _programs.clear()
        with program_log() as log:
            again = bg.fit_em(X, 2, covariance_type="diag", seed=3)
        assert [line.split()[1] for line in log] == ["wrote"], log  # not loaded: compiled
        assert path.stat().st_size > 1000
        _programs.clear()
        with program_log() as log, compilations() as names:
            loaded = bg.fit_em(X, 2, covariance_type="diag", seed=3)
        assert [line.split()[1] for line in log] == ["loaded"], log
        assert names == [], names  # from the file, not traced
    finally:
        bg.set_compilation_cache(previous)
        _programs.clear()
    for fit in (again, loaded):
        assert fit.log_likelihood == expected.log_likelihood
        np.testing.assert_array_equal(fit.params.covariances, expected.params.covariances)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX file owners and modes")
def test_a_program_file_others_may_write_is_never_read(tmp_path, monkeypatch):
    monkeypatch.setenv(_programs.ENV_VAR, "1")  # the opt-in store of executables
    """A compiled-program file (pickled calling convention, native code) in a folder or file
    that someone else may write is not read: a planted pickle there runs no code."""
    import pickle

    X = bg.datasets.load_faithful()[:100]
    previous = jax.config.jax_compilation_cache_dir
    marker = tmp_path / "code-was-run"
    try:
        bg.set_compilation_cache(tmp_path)
        _programs.clear()
        bg.fit_em(X, 2, covariance_type="tied", seed=4)
        (path,) = (tmp_path / _programs.FOLDER).iterdir()
        assert _programs._trusted(path)
        for target in (path, path.parent):  # group-writable file, then folder
            path.write_bytes(pickle.dumps(_Planted(marker)))
            mode = target.stat().st_mode
            target.chmod(mode | 0o020)
            _programs.clear()
            with program_log() as log:
                bg.fit_em(X, 2, covariance_type="tied", seed=4)
            assert not marker.exists()
            assert "loaded" not in " ".join(log), log
            target.chmod(mode)
        _programs.clear()
        with program_log() as log:  # the owner's own, private file is read again
            bg.fit_em(X, 2, covariance_type="tied", seed=4)
    finally:
        bg.set_compilation_cache(previous)
        _programs.clear()
    assert not marker.exists()


def test_the_disk_cache_is_on_by_default_and_can_be_moved_or_turned_off(tmp_path):
    script = "import jax, bayesgmm; print(jax.config.jax_compilation_cache_dir)"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("BAYESGMM_CACHE_DIR", None)

    def folder():
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert folder() == str(tmp_path / "bayesgmm" / "jax")  # the user's cache folder
    env["BAYESGMM_CACHE_DIR"] = "off"
    assert folder() == "None"
    env["BAYESGMM_CACHE_DIR"] = str(tmp_path / "here")
    assert folder() == str(tmp_path / "here")
    env.pop("BAYESGMM_CACHE_DIR")
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "users_own")
    assert folder() == str(tmp_path / "users_own")  # the user's JAX setting wins


def _maps() -> int:
    return len(Path("/proc/self/maps").read_text().splitlines())


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_many_posteriors_in_one_process_keep_memory_maps_flat():
    """Issue 19 item 16: 200 sample_posterior calls of one shape class hold no more maps.

    The maps are held per call (programs, buffers), not per draw: 10 draws a
    call (half the cost of 100) leave the check as it was, any leak of a map a
    call shows as ~200 more; the few-draws warning is expected here.
    """
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 2)) + 6.0 * rng.integers(0, 2, size=(60, 1))
    kw = dict(num_chains=1, num_warmup=10, num_samples=10, progress_bar=False)
    counts = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "num_samples=10 draws", UserWarning)
        for i in range(200):
            bg.sample_posterior(X + 1e-3 * i, 2, seed=i, **kw)
            if i in (1, 199):
                counts.append(_maps())
    assert counts[1] - counts[0] < 50, counts


def test_repeated_posteriors_from_kmeanspp_starts_compile_nothing():
    """The default start (k-means++ per chain) is one program: each call once compiled its own.

    A process calling ``sample_posterior`` many times on data of one shape paid
    a compilation per call (seconds), and held its memory maps.
    """
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 2)) + 6.0 * rng.integers(0, 2, size=(60, 1))
    kw = dict(num_chains=1, num_warmup=10, num_samples=30, progress_bar=False)
    bg.sample_posterior(X, 2, seed=0, **kw)
    with compilations() as names:
        posts = [bg.sample_posterior(X + 1e-3 * i, 2, seed=i, **kw) for i in (1, 2)]
    assert names == [], names
    assert not np.allclose(posts[0].params.means, posts[1].params.means)


def tracings():
    """Names of the functions JAX traces inside the block."""
    return _jax_log("Finished tracing ", lambda m: m.split()[2])


def test_an_exported_program_is_read_back_without_tracing(tmp_path, monkeypatch):
    """The disk entries of _core._exported: found again untraced, keyed by all they depend on."""
    from collections import OrderedDict

    from bayesgmm._core import _exported

    monkeypatch.setattr(_exported, "folder", lambda: tmp_path)
    traced = []

    def f(x, d):
        traced.append(1)
        return {"y": jax.numpy.linalg.cholesky(d["m"]) * x[0]}, [x.sum()]

    def fresh():  # a new function each time: JAX's own trace cache cannot answer
        return lambda x, d: f(x, d)

    args = (np.arange(3.0), {"m": 4.0 * np.eye(2)})
    with jax.enable_x64(True):
        expected = f(*args)
        traced.clear()
        first = _exported.program("toy", ("a", 1), fresh(), args)(*args)
        assert len(traced) == 1 and len(list(tmp_path.iterdir())) == 1
        monkeypatch.setattr(_exported, "_LOADED", OrderedDict())  # a fresh process
        again = _exported.program("toy", ("a", 1), fresh(), args)(*args)
        assert len(traced) == 1  # read from disk, not traced
        for got in (first, again):
            np.testing.assert_array_equal(got[0]["y"], expected[0]["y"])
            np.testing.assert_array_equal(got[1][0], expected[1][0])
        # another static setting, other shapes, other code: other entries, traced
        _exported.program("toy", ("a", 2), fresh(), args)
        _exported.program("toy", ("a", 1), fresh(), (np.arange(4.0), args[1]))
        monkeypatch.setattr(_exported, "fingerprint", lambda: "other code")
        _exported.program("toy", ("a", 1), fresh(), args)
        assert len(traced) == 4 and len(list(tmp_path.iterdir())) == 4
        # an unreadable entry is traced again and replaced
        for path in tmp_path.iterdir():
            path.write_bytes(b"not a program")
        monkeypatch.setattr(_exported, "_LOADED", OrderedDict())
        got = _exported.program("toy", ("a", 1), fresh(), args)(*args)
        assert len(traced) == 5
        np.testing.assert_array_equal(got[0]["y"], expected[0]["y"])
        monkeypatch.setattr(_exported, "_LOADED", OrderedDict())
        _exported.program("toy", ("a", 1), fresh(), args)
        assert len(traced) == 5  # the replaced entry is read
    monkeypatch.setattr(_exported, "folder", lambda: None)  # the compilation cache off
    assert _exported.program("toy", ("a", 1), f, args) is None


class _Planted:
    """A pickle that, if unpickled, would create the file it names."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_a_planted_pickle_in_the_disk_entries_is_never_run(tmp_path, monkeypatch):
    """Entries are JAX's serialised programs, not pickles: a pickle put in the folder under
    the right name runs no code; it is an unreadable entry, traced again and replaced."""
    import pickle

    from bayesgmm._core import _exported

    monkeypatch.setattr(_exported, "folder", lambda: tmp_path / "exported")
    args = (np.arange(3.0),)
    with jax.enable_x64(True):
        _exported.program("toy", (), lambda x: x * 2.0, args)
        (entry,) = (tmp_path / "exported").iterdir()
        marker = tmp_path / "code-was-run"
        entry.write_bytes(pickle.dumps(_Planted(marker)))
        monkeypatch.setattr(_exported, "_LOADED", type(_exported._LOADED)())
        got = _exported.program("toy", (), lambda x: x * 2.0, args)(*args)
    assert not marker.exists()
    np.testing.assert_array_equal(got, 2.0 * np.arange(3.0))
    assert not entry.read_bytes().startswith(b"\x80")  # replaced by a serialised program


_TINY = dict(num_chains=1, num_warmup=10, num_samples=30, progress_bar=False)
# NUTS's own programs (bayes._nuts) and the unconstraining map (bayes._sites)
_NUTS_TRACED = {"init_one", "advance_one", "constrain_one", "init_flat", "advance_flat"}
_NUTS_TRACED |= {"constrain_flat", "inverse"}


def _tiny_data():
    rng = np.random.default_rng(3)
    return rng.normal(size=(60, 2)) + 6.0 * rng.integers(0, 2, size=(60, 1))


@pytest.mark.skipif(not jax.config.jax_compilation_cache_dir, reason="disk cache off")
def test_nuts_programs_from_disk_give_the_draws_of_tracing(monkeypatch):
    """The kept programs are the traced ones: the same draws bit for bit, none traced again."""
    from collections import OrderedDict

    from bayesgmm._core import _exported
    from bayesgmm.bayes import _nuts

    X = _tiny_data()
    kept = bg.sample_posterior(X, 2, seed=5, **_TINY)  # the same shapes as the test above
    monkeypatch.setattr(_exported, "_LOADED", OrderedDict())  # as in a fresh process
    with tracings() as names:
        again = bg.sample_posterior(X, 2, seed=5, **_TINY)
    assert not set(names) & _NUTS_TRACED, names
    with monkeypatch.context() as m:
        m.setattr(_exported, "folder", lambda: None)  # traced, as with the cache off
        _nuts._engine.cache_clear()  # new programs: traced whatever this process did before
        with tracings() as names:
            traced = bg.sample_posterior(X, 2, seed=5, **_TINY)
        assert {"init_one", "advance_one"} <= set(names)
    program = _exported.program
    with monkeypatch.context() as m:  # a program jax.export refuses: traced from there on
        m.setattr(
            _exported,
            "program",
            lambda name, *a: None if name == "nuts_advance" else program(name, *a),
        )
        mixed = bg.sample_posterior(X, 2, seed=5, **_TINY)
    for name in ("weights", "means", "covariances"):
        for post in (again, traced, mixed):
            np.testing.assert_array_equal(getattr(post.params, name), getattr(kept.params, name))


@pytest.mark.skipif(not jax.config.jax_compilation_cache_dir, reason="disk cache off")
def test_gibbs_programs_from_disk_give_the_draws_of_tracing(monkeypatch):
    """The Gibbs and sparse samplers' kept programs: the draws of tracing bit for bit, untraced."""
    from collections import OrderedDict

    from bayesgmm._core import _exported
    from bayesgmm.bayes import _gibbs, _telescope

    X = _tiny_data()
    kw = dict(method="gibbs", num_chains=2, num_warmup=20, num_samples=30, seed=3)
    sparse = bg.Prior.sparse(X, k_max=4)

    def both():
        return bg.sample_posterior(X, 2, **kw), bg.sample_posterior(X, 4, prior=sparse, **kw)

    kept = both()  # on disk now, if they were not before
    monkeypatch.setattr(_exported, "_LOADED", OrderedDict())  # as in a fresh process
    with tracings() as names:
        again = both()
    assert not {"run_gibbs", "run_sparse"} & set(names), names
    assert {"gibbs", "sparse"} <= set(names)  # only the call of each exported program
    with monkeypatch.context() as m:
        m.setattr(_exported, "folder", lambda: None)  # traced, as with the cache off
        _gibbs.run_gibbs_jit.jitted.clear_cache()
        _telescope.run_sparse_jit.jitted.clear_cache()
        with tracings() as names:
            traced = both()
        assert {"run_gibbs", "run_sparse"} <= set(names), names
    for runs in (again, traced):
        for a, b in zip(runs, kept, strict=True):
            for name in ("weights", "means", "covariances"):
                np.testing.assert_array_equal(getattr(a.params, name), getattr(b.params, name))
            np.testing.assert_array_equal(
                a.sample_stats["log_likelihood_start"], b.sample_stats["log_likelihood_start"]
            )


@pytest.mark.skipif(not jax.config.jax_compilation_cache_dir, reason="disk cache off")
def test_a_fresh_process_traces_no_nuts_program():
    """With the programs on disk, a first call lowers a few small programs and traces no NUTS."""
    X = _tiny_data()
    mine = bg.sample_posterior(X, 2, seed=6, **_TINY)  # on disk now, if it was not before
    script = textwrap.dedent(
        f"""
        import logging, jax, numpy as np
        import bayesgmm as bg
        traced, lowered = [], []
        class Catch(logging.Handler):
            def emit(self, record):
                m = record.getMessage()
                if m.startswith("Finished tracing "):
                    traced.append(m.split()[2])
                if m.startswith("Compiling "):
                    lowered.append(m.split(" with ")[0])
        logging.getLogger("jax").addHandler(Catch(level=logging.DEBUG))
        jax.config.update("jax_log_compiles", True)
        rng = np.random.default_rng(3)
        X = rng.normal(size=(60, 2)) + 6.0 * rng.integers(0, 2, size=(60, 1))
        post = bg.sample_posterior(X, 2, seed=6, **{_TINY!r})
        print(repr(traced)); print(len(lowered)); print(post.params.means.tobytes().hex())
        """
    )
    env = {**os.environ, "BAYESGMM_CACHE_DIR": jax.config.jax_compilation_cache_dir}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-3000:]
    traced, lowered, means = out.stdout.strip().splitlines()[-3:]
    assert not set(ast.literal_eval(traced)) & _NUTS_TRACED, traced
    # 14 when written: 10 small ones (keys, the k-means++ start, copies), 4 kept ones
    assert int(lowered) <= 16, lowered
    assert means == mine.params.means.tobytes().hex()  # the same draws as this process


def test_gibbs_runs_of_one_draw_class_share_a_program_and_their_chain():
    """A new num_samples (or num_warmup) of the same class compiles no new sampler,
    and a run's draws are the first draws of a longer run from the same seed."""
    from bayesgmm.bayes._sweeps import sample_slots

    X = bg.datasets.load_faithful()
    kw = dict(method="gibbs", num_chains=2, num_warmup=20, seed=4)
    short = bg.sample_posterior(X, 2, num_samples=100, **kw)
    n_long = sample_slots(100)
    assert n_long > 100
    with compilations() as names:
        long = bg.sample_posterior(X, 2, num_samples=n_long, **kw)
        bg.sample_posterior(X, 2, num_samples=100, **{**kw, "num_warmup": 31})
    assert not [name for name in names if "gibbs" in name], names
    np.testing.assert_array_equal(long.params.means[:, :100], short.params.means)
    assert long.params.means.shape[1] == n_long
