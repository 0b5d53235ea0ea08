"""The one NUTS engine: compiled once per model and shape class, data as arguments.

Every NUTS run in bayesgmm goes through :func:`run_nuts`
(:func:`bayesgmm.sample_posterior`, simulation-based calibration in
:mod:`bayesgmm.calibration`). It drives NumPyro's functional NUTS kernel
(``numpyro.infer.hmc.hmc`` with ``potential_fn_gen``): the data, sample weights
and prior enter the compiled programs as *arguments*, so a program compiled
for one data set serves every data set of the same shapes in the process.
The chains advance together under ``jax.vmap`` (``"vectorized"``), one after
another (``"sequential"``) or on one device each (``"parallel"``, ``jax.pmap``).

A run is three kinds of compiled program, cached by the model and the static
settings (:func:`_engine`): the initial state of every chain, ``length``
transitions of every chain in a ``lax.scan`` (warmup adapts the step size and
the diagonal mass matrix, as NumPyro's ``NUTS`` does), and the map from
unconstrained coordinates back to the model's sites. The transitions run in
scans of ten (so warmup and sampling of most lengths share one program, and
the transition itself is traced once), or with a progress bar in about twenty
chunks with the bar updated between them; the draws are the same either way,
since the chains' random keys travel in their state.

Tracing these programs (NumPyro's NUTS through the model, vectorised) costs
about 3 s of CPU, more than running them for a small data set, and JAX's disk
cache of compiled programs needs the traced program to find the compiled one.
So for bayesgmm's own model (``cache_name``) the traced programs are kept on
disk too (:mod:`bayesgmm._core._exported`, the same programs bit for bit): a
fresh process with both on disk neither traces nor compiles them.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CHAIN_METHODS", "SAMPLE_STATS", "NUTSRun", "run_nuts"]

#: Chain methods accepted by :func:`run_nuts`; the first is the default.
CHAIN_METHODS = ("vectorized", "sequential", "parallel")

#: Per-transition statistics returned by :func:`run_nuts`, each of shape (chain, draw).
SAMPLE_STATS = (
    "diverging",
    "energy",
    "n_steps",
    "tree_depth",
    "accept_prob",
    "step_size",
    "potential_energy",
)

# Transitions per progress-bar update, as a fraction of the whole run.
_PROGRESS_UPDATES = 20
# Transitions per compiled scan without a bar: warmup and sampling of any length that is
# a multiple of it share one program (lowered and loaded once, not once per length).
_CHUNK = 10


class NUTSRun(NamedTuple):
    """What :func:`run_nuts` returns (NumPy arrays, chains first)."""

    sites: dict[str, np.ndarray]  # the kept sites, each (chain, draw, ...)
    stats: dict[str, np.ndarray]  # SAMPLE_STATS, each (chain, draw)


@functools.lru_cache(maxsize=64)
def _engine(model, num_warmup: int, target_accept_prob: float, sites: tuple[str, ...]):
    """The compiled programs of one model under one adaptation schedule.

    ``model(*args)`` is a NumPyro model whose data arrive in ``args``; it must
    be hashable and equal across calls for the programs to be reused (a
    module-level function, or a :class:`BoundModel`).
    """
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import constrain_fn, potential_energy

    def potential_fn_gen(*args):
        return functools.partial(potential_energy, model, args, {})

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")

    def init_one(key, z0, args, step_size):
        return init_kernel(
            z0,
            num_warmup,
            step_size=step_size,
            target_accept_prob=target_accept_prob,
            model_args=args,
            rng_key=key,
        )

    # One transition, jitted on its own: the scans of every length (warmup, sampling,
    # progress-bar chunks) call it and reuse its traced program instead of tracing
    # NUTS again for each (about 3 s of CPU a length); XLA inlines the call.
    transition = jax.jit(lambda s, args: sample_kernel(s, model_args=args))

    def advance_one(state, args, length: int):
        def step(s, _):
            s = transition(s, args)
            return s, (
                s.z,
                s.diverging,
                s.energy,
                s.num_steps,
                s.accept_prob,
                s.adapt_state.step_size,
                s.potential_energy,
            )

        return jax.lax.scan(step, state, None, length=length)

    def constrain_one(z, args):
        values = constrain_fn(model, args, {}, z, return_deterministic=True)
        return {name: values[name] for name in sites}

    @functools.lru_cache(maxsize=16)
    def programs(method: str, length: int, args_axes=None):
        lift = jax.pmap if method == "parallel" else lambda f, **kw: jax.jit(jax.vmap(f, **kw))
        init = lift(init_one, in_axes=(0, 0, args_axes, None))
        advance = lift(functools.partial(advance_one, length=length), in_axes=(0, args_axes))
        # constrain every draw of every chain: vmap over draws inside the chain map
        constrain = lift(jax.vmap(constrain_one, in_axes=(0, None)), in_axes=(0, args_axes))
        return init, advance, constrain

    return programs


_COMPILING = "compiling the sampler (once per shape class)"


def _compiled(program) -> bool:
    """Whether a jitted program holds a compiled executable (pmapped ones: assume so)."""
    size = getattr(program, "_cache_size", None)
    return size is None or size() > 0


def _chunks(total: int, progress: bool) -> list[int]:
    """Lengths of the scans that make ``total`` transitions (about twenty with a bar)."""
    if total == 0:
        return []
    size = max(1, math.ceil(total / _PROGRESS_UPDATES)) if progress else _CHUNK
    return [size] * (total // size) + ([total % size] if total % size else [])


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=True)


class _Programs:
    """The init, advance and constrain programs of one run, traced or read from disk.

    With ``cache_name`` (the model is bayesgmm's own, so its code is in the key of
    :mod:`bayesgmm._core._exported`) and the compilation cache on, each program is
    the exported program of the vectorised one, kept on disk: a fresh process
    lowers a call to it instead of tracing NumPyro's NUTS. Its arguments are then
    flat: the state a list of arrays, ``args`` its leaves.
    """

    def __init__(self, programs, method, args, args_axes, cache_name, static):
        self.programs, self.method, self.args_axes = programs, method, args_axes
        self.args = args
        self.leaves, self.args_def = jax.tree.flatten(args)
        self.export = cache_name is not None and method != "parallel"
        self.static = (cache_name, method, repr(args_axes), *static)
        self.state_def = None
        self.found = {}  # (name, length) -> program: a key is hashed once a run, not a chunk

    def _exported(self, name, length, function, example):
        from bayesgmm._core import _exported

        if (name, length) not in self.found:
            static = (*self.static, length)
            self.found[name, length] = _exported.program(name, static, function, example)
        return self.found[name, length]

    def init(self, keys, z0, step):
        init, _, _ = self.programs(self.method, 0, self.args_axes)
        if not self.export:
            return init, (keys, z0, self.args, step)

        def init_flat(keys, z0, leaves, step):
            state = init(keys, z0, self.args_def.unflatten(leaves), step)
            leaves, self.state_def = jax.tree.flatten(state)
            return leaves

        example = (keys, z0, self.leaves, step)
        program = self._exported("nuts_init", 0, init_flat, example)
        if program is None:
            self.export = False
            return init, (keys, z0, self.args, step)
        self.init_args = (keys, z0, step)
        return program, example

    def advance(self, length, state):
        _, advance, _ = self.programs(self.method, length, self.args_axes)
        if not self.export:
            return advance, (state, self.args)

        def advance_flat(state, leaves):
            args = self.args_def.unflatten(leaves)
            state, out = advance(self._state_def().unflatten(state), args)
            return jax.tree.leaves(state), out

        example = (state, self.leaves)
        program = self._exported("nuts_advance", length, advance_flat, example)
        if program is None:  # not exported: the traced program from here on
            self.export = False
            return advance, (self._state_def().unflatten(state), self.args)
        return program, example

    def _state_def(self):
        if self.state_def is None:  # init was read from disk: its structure, untraced
            keys, z0, step = self.init_args
            init, _, _ = self.programs(self.method, 0, self.args_axes)
            self.state_def = jax.tree.structure(jax.eval_shape(init, keys, z0, self.args, step))
        return self.state_def

    def constrain(self, z):
        _, _, constrain = self.programs(self.method, 0, self.args_axes)
        if not self.export:
            return constrain, (z, self.args)

        def constrain_flat(z, leaves):
            return constrain(z, self.args_def.unflatten(leaves))

        example = (z, self.leaves)
        program = self._exported("nuts_constrain", 0, constrain_flat, example)
        if program is None:
            return constrain, (z, self.args)
        return program, example


def _run_chains(programs: _Programs, keys, z0, step_size, num_warmup, num_samples, thin, bar):
    """Warmup and sampling of the chains in ``keys``/``z0``; outputs on the host."""
    init, call = programs.init(keys, z0, step_size)
    if bar is not None and not _compiled(init):
        bar.set_description(_COMPILING)
    state = init(*call)
    collected = []
    for phase, total in (("warmup", num_warmup), ("sample", num_samples)):
        for length in _chunks(total, bar is not None):
            advance, call = programs.advance(length, state)
            if bar is not None:
                bar.set_description(phase if _compiled(advance) else _COMPILING)
            state, out = advance(*call)
            if phase == "sample":
                collected.append(out)
            if bar is not None:
                jax.block_until_ready(out)
                bar.update(length)
    # on the host: eager jax.numpy here would compile a program per shape
    z, diverging, energy, n_steps, accept, step, potential = (
        jax.tree.map(
            lambda *leaves: np.concatenate([np.asarray(x) for x in leaves], axis=1), *parts
        )
        for parts in zip(*collected, strict=True)
    )
    keep = slice(None, None, thin)
    z = jax.tree.map(lambda leaf: leaf[:, keep], z)
    constrain, call = programs.constrain(z)
    sites = {name: np.asarray(value) for name, value in constrain(*call).items()}
    n_steps = np.asarray(n_steps[:, keep])
    stats = {
        "diverging": np.asarray(diverging[:, keep]),
        "energy": np.asarray(energy[:, keep]),
        "n_steps": n_steps,
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(np.int64) + 1,
        "accept_prob": np.asarray(accept[:, keep]),
        "step_size": np.asarray(step[:, keep]),
        "potential_energy": np.asarray(potential[:, keep]),
    }
    return sites, stats


def run_nuts(
    model,
    args: tuple,
    z0: dict,
    key,
    *,
    num_warmup: int,
    num_samples: int,
    thin: int = 1,
    target_accept_prob: float = 0.8,
    chain_method: str = "vectorized",
    progress_bar: bool = False,
    sites: tuple[str, ...] = ("weights", "means", "covariances"),
    double: bool = True,
    step_size: float | None = None,
    args_axes=None,
    cache_name: str | None = None,
) -> NUTSRun:
    """Run NUTS chains of ``model(*args)`` from unconstrained starts ``z0``.

    Parameters
    ----------
    model : callable
        A NumPyro model taking the arrays of ``args``; hashable, and equal
        across calls for the compiled programs to be reused.
    args : tuple
        The model's data (arrays, pytrees such as a ``Prior``, or None).
    z0 : dict of str to array of shape (C, ...)
        Unconstrained starting values of every latent site, one per chain.
    key : jax.random key (raw uint32 or typed)
    num_warmup, num_samples, thin : int
        Adaptation transitions, kept transitions, and the stride of the kept draws.
    target_accept_prob : float
    chain_method : {"vectorized", "sequential", "parallel"}
    progress_bar : bool
        A tqdm bar on stderr, updated about twenty times.
    sites : tuple of str
        The model's sites (sample or deterministic) returned for every draw.
    double : bool
        Run with 64-bit types on (float64) or off (float32).
    step_size : float, optional
        Where the step-size adaptation starts (NumPyro's default 1); with
        ``num_warmup=0`` the step size used throughout (no adaptation, and an
        identity mass matrix).
    args_axes : tuple, optional
        ``in_axes`` of ``args`` (a prefix of its structure, e.g. ``(0, None, None)``)
        when each chain has data of its own, stacked along that axis: many small
        independent runs (simulation-based calibration) advance together in one
        program. Default: every chain shares ``args``. Not with ``"sequential"``.
    cache_name : str, optional
        A name that identifies ``model`` among bayesgmm's own models (for
        example ``"gmm_model/2/full"``); then the traced programs are kept on
        disk with the compiled ones (:mod:`bayesgmm._core._exported`), and a
        fresh process skips tracing them. Only for models whose code is
        bayesgmm's: the key of a kept program holds bayesgmm's source, not the
        model's.

    Returns
    -------
    NUTSRun
        ``sites[name]`` of shape (C, ceil(num_samples / thin), ...) and the
        :data:`SAMPLE_STATS` of the kept draws.
    """
    if num_warmup < 1 and step_size is None:
        raise ValueError("NUTS without warmup needs an explicit step_size.")
    if args_axes is not None and chain_method == "sequential":
        raise ValueError(
            "args_axes (data per chain) needs chain_method 'vectorized' or 'parallel'."
        )
    step = np.asarray(
        1.0 if step_size is None else step_size, np.float64 if double else np.float32
    )
    num_chains = int(next(iter(jax.tree.leaves(z0))).shape[0])
    with jax.enable_x64(double):
        engine = _engine(model, int(num_warmup), float(target_accept_prob), tuple(sites))
        static = (int(num_warmup), float(target_accept_prob), tuple(sites))
        key = jax.random.wrap_key_data(key) if not _is_typed(key) else key
        keys = jax.random.key_data(jax.random.split(key, num_chains))
        total = num_warmup + num_samples
        if chain_method == "sequential":
            parts = []
            for c in range(num_chains):
                bar = _progress(total, f"chain {c + 1}/{num_chains}") if progress_bar else None
                z_c = jax.tree.map(lambda leaf, c=c: leaf[c : c + 1], z0)
                try:
                    parts.append(
                        _run_chains(
                            _Programs(engine, "vectorized", args, None, cache_name, static),
                            keys[c : c + 1],
                            z_c,
                            step,
                            num_warmup,
                            num_samples,
                            thin,
                            bar,
                        )
                    )
                finally:
                    if bar is not None:
                        bar.close()
            sites_out = {name: np.concatenate([p[0][name] for p in parts]) for name in parts[0][0]}
            stats = {name: np.concatenate([p[1][name] for p in parts]) for name in parts[0][1]}
            return NUTSRun(sites_out, stats)
        bar = _progress(total, "warmup") if progress_bar else None
        try:
            sites_out, stats = _run_chains(
                _Programs(engine, chain_method, args, args_axes, cache_name, static),
                keys,
                z0,
                step,
                num_warmup,
                num_samples,
                thin,
                bar,
            )
        finally:
            if bar is not None:
                bar.close()
    return NUTSRun(sites_out, stats)


def _is_typed(key) -> bool:
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
