"""docs/oracle_harvest.py ``ceiling``: what an active sleeve of a given net IR can add to 1/N's Sharpe.

Checked against a direct simulation (1/N and an independent sleeve as daily Gaussian returns): the closed form is
the Sharpe of their sum, and ``ir_needed`` inverts it."""

from __future__ import annotations

import math

import numpy as np

from tests.unit.docs_modules import load_docs_module


def test_sleeve_sharpe_matches_a_simulated_book_and_ir_needed_inverts_it() -> None:
    oh = load_docs_module("oracle_harvest")
    mu, vol, ir, te = 0.106, 0.177, 0.52, 0.04
    rng = np.random.default_rng(0)
    days = 252 * 400
    base = rng.normal(mu / 252, vol / math.sqrt(252), days)
    sleeve = rng.normal(ir * te / 252, te / math.sqrt(252), days)
    book = base + sleeve
    simulated = book.mean() * 252 / (book.std(ddof=1) * math.sqrt(252))
    assert abs(oh.sleeve_sharpe(mu, vol, ir, te) - simulated) < 0.02  # sampling error of 400 years is ~0.005
    need = oh.ir_needed(mu, vol, te, 0.3)
    assert math.isclose(oh.sleeve_sharpe(mu, vol, need, te), mu / vol + 0.3, rel_tol=1e-12)
    assert oh.ir_needed(mu, vol, 0.08, 0.3) < need  # more active risk needs less IR for the same lift
    assert oh.sleeve_sharpe(mu, vol, 0.0, te) < mu / vol  # a sleeve with no edge only adds risk
