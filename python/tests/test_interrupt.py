"""Ctrl-C during a long solve cancels it and returns control within a second."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import atlas_mmm
from conftest import PROBLEMS
from numpy_mmm import NumpyMmm


def interrupt_after(seconds):
    sent = {}

    def fire():
        sent["at"] = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(seconds, fire)
    timer.start()
    return timer, sent


@pytest.mark.parametrize("with_model", [False, True], ids=["built-in", "python-model"])
def test_keyboard_interrupt_cancels_a_long_solve(with_model):
    problem = atlas_mmm.Problem.from_file(str(PROBLEMS / "large.toml"))
    kwargs = {"model": NumpyMmm(problem.to_dict())} if with_model else {}
    # Black-box search with an evaluation budget far beyond a second.
    started = time.perf_counter()
    timer, sent = interrupt_after(0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            atlas_mmm.optimize(
                problem, "cmaes", seed=1, max_evaluations=10**9, max_restarts=30, **kwargs
            )
    finally:
        timer.cancel()
    returned = time.perf_counter()
    assert "at" in sent, "the solve ended before the interrupt"
    assert returned - sent["at"] < 1.0
    assert returned - started >= 0.5
    # The package keeps working afterwards.
    quick = atlas_mmm.Problem.from_file(str(PROBLEMS / "quickstart.toml"))
    assert atlas_mmm.optimize(quick, "convex").status == "optimal"


def test_keyboard_interrupt_cancels_a_sweep():
    problem = atlas_mmm.Problem.from_file(str(PROBLEMS / "large.toml"))
    timer, sent = interrupt_after(0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            atlas_mmm.sweep(
                problem, "0.5x:2x:64", optimizer="cmaes", seed=1, jobs=1, max_evaluations=10**9
            )
    finally:
        timer.cancel()
    assert "at" in sent
    assert time.perf_counter() - sent["at"] < 1.0
