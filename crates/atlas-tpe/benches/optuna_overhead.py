"""Per-trial overhead of Optuna's TPESampler on a 10-d problem, next to atlas-tpe's.

The objective is the 10-d sphere on [-5.12, 5.12]^10 (microseconds to evaluate), so the
time per trial is the sampler's overhead plus Optuna's trial bookkeeping. Reports the mean
time per trial over all trials and over the last 100 (trials 901..1000, where the history
is longest), for the univariate and the multivariate sampler.

    python3 -m venv /tmp/tpe-venv && /tmp/tpe-venv/bin/pip install optuna
    /tmp/tpe-venv/bin/python crates/atlas-tpe/benches/optuna_overhead.py [n_trials] [dims]
"""

import json
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
DIMS = int(sys.argv[2]) if len(sys.argv) > 2 else 10


def run(multivariate: bool) -> dict:
    stamps = []

    def objective(trial: optuna.Trial) -> float:
        x = [trial.suggest_float(f"x{i}", -5.12, 5.12) for i in range(DIMS)]
        stamps.append(time.perf_counter())
        return sum(v * v for v in x)

    sampler = optuna.samplers.TPESampler(seed=0, multivariate=multivariate)
    study = optuna.create_study(sampler=sampler)
    start = time.perf_counter()
    study.optimize(objective, n_trials=N_TRIALS)
    total = time.perf_counter() - start
    last = min(100, N_TRIALS - 1)
    return {
        "sampler": "optuna.TPESampler",
        "optuna": optuna.__version__,
        "multivariate": multivariate,
        "n_trials": N_TRIALS,
        "dims": DIMS,
        "mean_ms_per_trial": 1e3 * total / N_TRIALS,
        "last100_ms_per_trial": 1e3 * (stamps[-1] - stamps[-1 - last]) / last,
        "best": study.best_value,
    }


if __name__ == "__main__":
    for mv in (False, True):
        print(json.dumps(run(mv)))
