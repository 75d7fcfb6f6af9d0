"""A lean re-solve of a compiled (DPP) cvxpy problem: cvxpy models and compiles, Clarabel is called directly.

Why: a compiled cvxpy re-solve at N = 9-30 spends most of its time outside the solver (measured with cProfile,
tests/bench/bench_step.py): validating and storing Parameter values, re-running the solver reduction's
``apply`` (building the parameter vector, a sparse-sparse product, CSC slicing and re-assembly), ``triu`` of
the quadratic block, parsing the solver settings, and ``unpack_results`` through every reduction's ``invert``.
The problem data is an affine function of the parameter vector, and cvxpy's compiled program holds that map as
a sparse tensor. Here it is applied directly, the result is handed to Clarabel with the settings cvxpy would
pass (its defaults, ``verbose=False``), and only the variables the caller needs are read back, at offsets found
once by pushing a probe vector through the solving chain's own ``invert``.

Same solver, same data, same settings: the answer is bit-identical to ``problem.solve`` (checked once per
program at compile time, and by tests on every method). Anything unexpected — an untested cvxpy or Clarabel
release, another reduction chain, a quadratic block that depends on parameters, a status other than
``Solved``, an exception — returns None and the caller takes the ordinary ``problem.solve``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = ["LeanProgram", "lean_tested"]

# Releases whose internals (ParamConicProg tensors, the Clarabel interface, the chain below) were checked here.
_TESTED_CVXPY = ((1, 9),)
_TESTED_CLARABEL = ((0, 11),)
_CHAIN = ("Dcp2Cone", "CvxAttr2Constr", "EliminateZeroSized", "ConeMatrixStuffing", "CLARABEL")


def _minor(version: str) -> tuple[int, int] | None:
    try:
        major, minor = (int(v) for v in version.split(".")[:2])
    except ValueError:  # pragma: no cover - a development version string
        return None
    return major, minor


def lean_tested() -> bool:
    """Whether the installed cvxpy and Clarabel are releases this module was checked against."""
    import clarabel
    import cvxpy

    return (
        _minor(cvxpy.__version__) in _TESTED_CVXPY
        and _minor(getattr(clarabel, "__version__", "")) in _TESTED_CLARABEL
    )


@dataclass
class LeanProgram:
    """The compiled data map of one cvxpy problem and where its output variables sit in Clarabel's x."""

    slots: list[tuple[int, int, int]]  # (column in the parameter vector, size, position in `names`)
    names: list[str]
    n_param: int
    q_map: Any  # (nx + 1) x (n_param + 1) sparse: [q; d] = q_map @ [params; 1]
    a_map: Any  # nnz(M) x (n_param + 1) sparse: M = [A_cvx | b] in CSC order
    a_indices: np.ndarray
    a_indptr: np.ndarray
    nx: int
    m: int
    p_triu: Any  # the constant quadratic block, upper triangle, CSC (as cvxpy hands it to Clarabel)
    cones: list[Any]
    outputs: list[tuple[Any, np.ndarray]]  # (cvxpy Variable, its indices into x)
    last_stats: Any = None

    @classmethod
    def compile(cls, problem: Any, params: Mapping[str, Any], outputs: Sequence[Any]) -> LeanProgram | None:
        """From a problem whose Parameters hold values (it has just been solved the ordinary way), or None."""
        try:
            if not lean_tested():
                return None
            return cls._compile(problem, params, outputs)
        except Exception:  # any surprise in cvxpy's internals: the ordinary path
            return None

    @classmethod
    def _compile(cls, problem: Any, params: Mapping[str, Any], outputs: Sequence[Any]) -> LeanProgram | None:
        import clarabel  # noqa: F401 - the solver must be importable
        import scipy.sparse as sp
        from cvxpy import settings as s
        from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import dims_to_solver_cones

        data, chain, inverse = problem.get_problem_data("CLARABEL", enforce_dpp=True, solver_opts={})
        kinds = tuple(type(r).__name__ for r in chain.reductions)
        if kinds not in (_CHAIN, ("FlipObjective", *_CHAIN)):
            return None
        pp = data[s.PARAM_PROB]
        if pp.lb_tensor is not None or pp.ub_tensor is not None or pp.x.size != data[s.C].size:
            return None
        nx = int(pp.x.size)
        by_id = {p.id: name for name, p in params.items()}
        names = sorted(params)
        slots: list[tuple[int, int, int]] = []
        for pid, col in pp.param_id_to_col.items():
            if pid == -1:  # cvxpy's constant column
                if col != pp.total_param_size:
                    return None
                continue
            if pid not in by_id:
                return None
            slots.append((int(col), int(pp.param_id_to_size[pid]), names.index(by_id[pid])))
        if len(slots) != len(params):
            return None
        # the quadratic block must not depend on parameters (ours: sum_squares of an auxiliary variable)
        if s.P in data:
            pmat = pp.reduced_P.reduced_mat
            if pmat is not None and sp.csc_array(pmat)[:, :-1].count_nonzero():
                return None
            p_triu = sp.triu(data[s.P]).tocsc()
        else:
            p_triu = sp.csc_array((nx, nx))
        pp.reduced_A.cache(False)
        if pp.reduced_A.problem_data_index is None or pp.reduced_A.mapping_nonzero is not None:
            return None
        indices, indptr, shape = pp.reduced_A.problem_data_index
        if tuple(shape) != (data[s.A].shape[0], nx + 1):
            return None
        prog = cls(
            slots=slots,
            names=names,
            n_param=int(pp.total_param_size),
            q_map=sp.csr_array(pp.q),
            a_map=sp.csr_array(pp.reduced_A.reduced_mat),
            a_indices=np.asarray(indices),
            a_indptr=np.asarray(indptr),
            nx=nx,
            m=int(shape[0]),
            p_triu=p_triu,
            cones=dims_to_solver_cones(data["dims"]),
            outputs=[],
        )
        # where each output variable sits in x: push a probe through the chain's own inversion
        probe = np.arange(1.0, nx + 1.0)
        raw = SimpleNamespace(
            x=probe, z=None, s=None, status="Solved", obj_val=0.0, solve_time=0.0, iterations=0
        )
        sol = chain.invert(raw, inverse)
        for var in outputs:
            got = np.asarray(sol.primal_vars[var.id], dtype=float)
            idx = np.rint(got).astype(int) - 1
            if got.shape != var.shape or np.any(idx < 0) or np.any(idx >= nx) or np.any(probe[idx] != got):
                return None
            prog.outputs.append((var, idx))
        # the data built here must be the data cvxpy built for the same parameter values
        values = {name: params[name].value for name in names}
        _, q, a, b = prog.data(values)
        ref_a = sp.csc_array(data[s.A])
        if not (
            np.array_equal(q, data[s.C])
            and np.array_equal(b, data[s.B])
            and np.array_equal(a.indptr, ref_a.indptr)
            and np.array_equal(a.indices, ref_a.indices)
            and np.array_equal(a.data, ref_a.data)
        ):
            return None
        return prog

    def data(self, values: Mapping[str, Any]) -> tuple[Any, np.ndarray, Any, np.ndarray]:
        """(P, q, A, b) for Clarabel, as cvxpy's reductions would produce them for these parameter values."""
        import scipy.sparse as sp

        vec = np.zeros(self.n_param + 1)
        for col, size, pos in self.slots:
            vec[col : col + size] = np.asarray(values[self.names[pos]], dtype=float).ravel(order="F")
        vec[-1] = 1.0
        q = (self.q_map @ vec)[: self.nx]
        flat = self.a_map @ vec
        cut = int(self.a_indptr[self.nx])
        a = sp.csc_array(
            (-flat[:cut], self.a_indices[:cut], self.a_indptr[: self.nx + 1]), shape=(self.m, self.nx)
        )
        b = np.bincount(self.a_indices[cut:], weights=flat[cut:], minlength=self.m).astype(float)
        return self.p_triu, q, a, b

    def solve(self, values: Mapping[str, Any]) -> list[np.ndarray] | None:
        """The output variables' values (projected as cvxpy projects them), or None when not ``Solved``."""
        import clarabel

        p, q, a, b = self.data(values)
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(a.data)) and np.all(np.isfinite(b))):
            return None
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        sol = clarabel.DefaultSolver(p, q, a, b, self.cones, settings).solve()
        self.last_stats = SimpleNamespace(
            solver_name="CLARABEL", solve_time=sol.solve_time, num_iters=sol.iterations, path="lean"
        )
        if str(sol.status) != "Solved":
            return None
        x = np.asarray(sol.x, dtype=float)
        return [np.asarray(var.project(x[idx]), dtype=float) for var, idx in self.outputs]


def solve_program(
    prog: Any, values: Mapping[str, Any], solver: str, *, compiled: bool
) -> tuple[str, np.ndarray | None, float | None, Any, str]:
    """Solve a `problem._Program` for ``values``: (status, x, kappa, solver stats, path "lean" or "cvxpy").

    A compiled program takes the lean path when it has one; otherwise (and whenever the lean path declines)
    the Parameters are set and ``problem.solve`` runs. The first ordinary Clarabel solve of a compiled program
    builds its lean path and keeps it only if it reproduces that solve exactly. Exceptions from
    ``problem.solve`` propagate (the caller records them)."""
    if compiled and prog.lean is not None:
        try:
            out = prog.lean.solve(values)
        except Exception:  # pragma: no cover - a surprise in the solver binding: the ordinary path decides
            out = None
        if out is not None:
            kappa = float(out[1]) if prog.kappa is not None else None
            return "optimal", out[0], kappa, prog.lean.last_stats, "lean"
    if compiled:
        for key, p in prog.params.items():
            p.value = values[key]
    prog.problem.solve(solver=solver, warm_start=False)
    status = str(prog.problem.status)
    x = prog.x.value
    kappa = None if prog.kappa is None or prog.kappa.value is None else float(prog.kappa.value)
    if compiled and not prog.lean_tried and str(solver).upper() == "CLARABEL" and status == "optimal":
        prog.lean_tried = True
        outputs = [prog.x] if prog.kappa is None else [prog.x, prog.kappa]
        lean = LeanProgram.compile(prog.problem, prog.params, outputs)
        if lean is not None:  # keep it only if it reproduces this solve exactly
            try:
                again = lean.solve(values)
            except Exception:  # pragma: no cover
                again = None
            same = again is not None and all(
                np.array_equal(a, np.asarray(v.value, dtype=float))
                for a, v in zip(again, outputs, strict=True)
            )
            prog.lean = lean if same else None
    return status, x, kappa, prog.problem.solver_stats, "cvxpy"
