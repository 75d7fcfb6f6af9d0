"""Large-universe risk: a shrunk correlation and a statistical (PCA) factor model Σ = B·F·Bᵀ + diag(d).

Why: with N above the correlation window (482 S&P names, 60 sessions) the sample correlation is singular, and
a dense N×N Σ makes every solve O(N²) or worse. Here

* the correlation of the window is shrunk toward the identity by the Ledoit–Wolf (2004) or the OAS (Chen et
  al. 2010) intensity — both closed-form from the data, nothing tuned — so it is positive definite;
* its top-k eigenpairs give the factors and the rest of each asset's unit variance the idiosyncratic part:
  R_s ≈ V_k Λ_k V_kᵀ + diag(ψ), ψ_i = 1 - Σ_j λ_j V_ij² ≥ λ_min(R_s) ≥ shrinkage > 0, so Σ = D R D keeps
  every variance exactly and is **full rank by construction**;
* the optimizer can pose risk in factor form, ‖F^½ Bᵀ w‖² + ‖d^½ ∘ w‖² (as cvxportfolio does), O(N·k).

Everything works from the T×N standardized window through its T×T Gram matrix (T = window ≤ N here), so
the cost is O(T²·N), never O(N³). Pure numpy functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "FactorModel",
    "Shrinkage",
    "factor_model",
    "shrinkage_intensity",
    "standardize",
]

Shrinkage = Literal["lw", "oas"]


@dataclass(frozen=True)
class FactorModel:
    """Σ = B diag(f) Bᵀ + diag(d) in daily units: loadings B (N×k), factor variances f (k,), specific d (N,)."""

    loadings: np.ndarray
    factor_var: np.ndarray
    specific_var: np.ndarray
    shrinkage: float  # intensity applied to the correlation toward the identity
    method: str  # "lw" or "oas"

    @property
    def k(self) -> int:
        return int(self.factor_var.shape[0])

    def dense(self) -> np.ndarray:
        """The N×N covariance (for records, checks and small universes)."""
        b = self.loadings
        s = (b * self.factor_var) @ b.T
        s[np.diag_indices_from(s)] += self.specific_var
        return 0.5 * (s + s.T)

    def sqrt_factor(self) -> np.ndarray:
        """N×k matrix G with G Gᵀ = B diag(f) Bᵀ (the factor part, for ‖Gᵀ w‖²)."""
        return self.loadings * np.sqrt(self.factor_var)


def standardize(x: np.ndarray) -> np.ndarray:
    """Demean and scale each column of a T×N window to unit variance (ddof 0); NaN and constants -> 0."""
    x = np.asarray(x, dtype=float)
    fin = np.isfinite(x)
    n = np.maximum(fin.sum(axis=0), 1)
    z = np.where(fin, x, 0.0)
    z = np.where(fin, z - z.sum(axis=0) / n, 0.0)
    sd = np.sqrt((z**2).sum(axis=0) / n)
    return np.where(sd > 0, z / np.where(sd > 0, sd, 1.0), 0.0)


def shrinkage_intensity(z: np.ndarray, method: Shrinkage = "oas") -> float:
    """Shrinkage of S = ZᵀZ/T toward μ·I (μ = tr S / N), as scikit-learn's LedoitWolf / OAS compute it.

    Computed from the T×T Gram matrix (tr S² = ‖Z Zᵀ‖²_F / T²): O(T²·N) for N ≫ T.
    """
    t, n = z.shape
    if t < 2 or n < 2:
        return 1.0
    g = z @ z.T  # T×T
    tr_s = float(np.trace(g)) / t
    tr_s2 = float(np.sum(g * g)) / t**2
    mu = tr_s / n
    if method == "oas":  # scikit-learn's form (>= 1.3): alpha = mean(S²), target mu·I
        alpha = tr_s2 / n**2
        num = alpha + mu**2
        den = (t + 1) * (alpha - mu**2 / n)
        return 1.0 if den <= 0 else float(min(1.0, num / den))
    # Ledoit–Wolf: δ² = ‖S - μI‖², β̄² = (1/T²) Σ_t ‖z_t z_tᵀ - S‖², shrinkage = min(β̄², δ²) / δ²
    delta2 = tr_s2 - 2 * mu * tr_s + n * mu**2
    row4 = float(np.sum(np.diag(g) ** 2))  # Σ_t ‖z_t‖⁴
    beta2 = (row4 / t - tr_s2) / t  # (1/T²)(Σ_t ‖z_t‖⁴ - T ‖S‖²) since Σ_t z_tᵀ S z_t = T ‖S‖²
    if delta2 <= 0:
        return 1.0
    return float(min(max(beta2, 0.0), delta2) / delta2)


def factor_model(
    window: np.ndarray,
    vols: np.ndarray,
    k: int,
    method: Shrinkage = "oas",
    *,
    min_specific: float = 1e-4,
) -> FactorModel:
    """Factor model of Σ = D R_s D from a T×N return window and the per-asset daily vols (e.g. GARCH).

    R_s = (1 - s) R + s I with s from `shrinkage_intensity` (R the window's correlation); k ≤ min(T, N)
    principal components; the specific variance keeps every diagonal of R_s at 1 (floored at `min_specific`
    for safety, which can only add variance).
    """
    z = standardize(window)
    t, n = z.shape
    vols = np.asarray(vols, dtype=float)
    if vols.shape != (n,):
        raise ValueError(f"vols has shape {vols.shape}, expected ({n},)")
    s = shrinkage_intensity(z, method)
    k = int(max(0, min(k, t, n)))
    # eigenpairs of R = ZᵀZ/T via the T×T Gram: Z Zᵀ u = T λ u, v = Zᵀ u / sqrt(T λ)
    g = z @ z.T / t
    lam, u = np.linalg.eigh(g)
    order = np.argsort(lam)[::-1][:k]
    lam, u = lam[order], u[:, order]
    keep = lam > 1e-12
    lam, u = lam[keep], u[:, keep]
    v = (z.T @ u) / np.sqrt(t * lam)  # N×k orthonormal eigenvectors of R
    lam_s = (1.0 - s) * lam  # the identity part of R_s goes to the specific variance
    psi = 1.0 - (v**2) @ lam_s
    psi = np.maximum(psi, min_specific)
    return FactorModel(
        loadings=v * vols[:, None],
        factor_var=lam_s,
        specific_var=psi * vols**2,
        shrinkage=float(s),
        method=method,
    )
