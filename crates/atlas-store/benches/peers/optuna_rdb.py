"""Optuna's RDB storage on PostgreSQL: the peer figure of atlas-store's study benchmark.

The same work as `study_trials_per_second` in ../storage.rs: 2 worker processes share
one study in PostgreSQL, each asking for trials with a random sampler (so the sampler
costs nothing and the storage is what is measured) and telling the value of a trivial
objective, x^2. Prints one JSON object: trials, wall seconds, trials per second.

    python3 optuna_rdb.py --url postgresql://postgres@127.0.0.1:5432/postgres --trials 2000

It creates its own database and drops it at the end. Needs `optuna` and
`psycopg2-binary` (pip).
"""

import argparse
import json
import multiprocessing
import os
import time

import optuna
import psycopg2


def objective(trial):
    x = trial.suggest_float("x", -10.0, 10.0)
    return x * x


def worker(url, study_name, trials, seed):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=url,
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )
    study.optimize(objective, n_trials=trials)


def with_database(url, name):
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="postgresql://USER@HOST:PORT/DB of the server")
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    url = args.url.replace("postgres://", "postgresql://", 1)
    name = f"optuna_bench_{os.getpid()}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    try:
        # The psycopg2 driver named explicitly (newer SQLAlchemy defaults to psycopg 3).
        study_url = with_database(url, name).replace("postgresql://", "postgresql+psycopg2://", 1)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optuna.create_study(study_name="bench", storage=study_url)
        per_worker = args.trials // args.workers
        start = time.perf_counter()
        processes = [
            multiprocessing.Process(target=worker, args=(study_url, "bench", per_worker, seed))
            for seed in range(args.workers)
        ]
        for p in processes:
            p.start()
        for p in processes:
            p.join()
            if p.exitcode != 0:
                raise SystemExit(f"an Optuna worker failed (exit {p.exitcode})")
        wall = time.perf_counter() - start
        study = optuna.load_study(study_name="bench", storage=study_url)
        done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        print(json.dumps({
            "optuna_version": optuna.__version__,
            "trials": done,
            "workers": args.workers,
            "wall_s": wall,
            "trials_per_s": done / wall,
        }))
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


if __name__ == "__main__":
    main()
