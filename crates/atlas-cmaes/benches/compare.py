#!/usr/bin/env python3
"""Atlas `cmaes` next to the Python `cmaes` package, at equal evaluations, in one run.

Both minimize the same test functions over the same box, from the same corner start with
the same initial step (0.3 of the range) and default population, evaluating one generation
at a time; Python restarts with a doubled population when its run stops (as Atlas's IPOP
does). Times are wall-clock for the whole search (Atlas: the `optimize` call, including
scaling and the feasible map; Python: the ask/tell loop with numpy evaluations).

    python3 -m venv /tmp/cmaes-venv && /tmp/cmaes-venv/bin/pip install cmaes numpy
    cargo build --release -p atlas-cmaes --example bench
    /tmp/cmaes-venv/bin/python crates/atlas-cmaes/benches/compare.py [target/release/examples/bench]
"""
import json
import math
import subprocess
import sys
import time

import numpy as np
from cmaes import CMA

CASES = [("sphere", 10, 20000), ("rastrigin", 10, 20000), ("rosenbrock", 10, 20000),
         ("rastrigin", 40, 20000), ("rosenbrock", 40, 20000), ("ackley", 100, 20000)]
DOMAIN = {"sphere": (-5.12, 5.12), "rastrigin": (-5.12, 5.12), "rosenbrock": (-5.0, 10.0),
          "ackley": (-32.768, 32.768)}


def f(name, z):
    if name == "sphere":
        return float(np.dot(z, z))
    if name == "rastrigin":
        return float(10 * z.size + np.sum(z * z - 10 * np.cos(2 * np.pi * z)))
    if name == "rosenbrock":
        return float(np.sum(100 * (z[1:] - z[:-1] ** 2) ** 2 + (1 - z[:-1]) ** 2))
    if name == "ackley":
        d = z.size
        return float(-20 * np.exp(-0.2 * np.sqrt(np.dot(z, z) / d)) - np.exp(np.sum(np.cos(2 * np.pi * z)) / d) + 20 + math.e)
    raise ValueError(name)


def python_cmaes(name, dim, evaluations):
    lo, hi = DOMAIN[name]
    bounds = np.array([[lo, hi]] * dim)
    popsize = 4 + int(3 * math.log(dim))
    start = time.perf_counter()
    used, best = 0, math.inf
    while used < evaluations:
        opt = CMA(mean=np.full(dim, hi), sigma=0.3 * (hi - lo), bounds=bounds, population_size=popsize, seed=1)
        while used < evaluations and not opt.should_stop():
            solutions = []
            for _ in range(opt.population_size):
                x = opt.ask()
                value = f(name, x)
                best = min(best, value)
                solutions.append((x, value))
                used += 1
            opt.tell(solutions)
        popsize *= 2
    return {"evaluations": used, "seconds": time.perf_counter() - start, "best": best}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/examples/bench"
    args = [f"{n}:{d}:{e}" for n, d, e in CASES]
    out = subprocess.run([binary, *args], check=True, capture_output=True, text=True).stdout
    atlas = [json.loads(line) for line in out.splitlines() if line.strip()]
    print(f"{'case':<18}{'evals A/P':>16}{'Atlas s':>10}{'Python s':>10}{'speedup':>9}"
          f"{'us/eval A':>11}{'us/eval P':>11}{'best A':>11}{'best P':>11}")
    for (name, dim, evaluations), a in zip(CASES, atlas):
        p = python_cmaes(name, dim, evaluations)
        per_a = a["seconds"] / a["evaluations"] * 1e6
        per_p = p["seconds"] / p["evaluations"] * 1e6
        print(f"{name + '-' + str(dim) + 'd':<18}{str(a['evaluations']) + '/' + str(p['evaluations']):>16}"
              f"{a['seconds']:>10.3f}{p['seconds']:>10.3f}{per_p / per_a:>8.1f}x"
              f"{per_a:>11.2f}{per_p:>11.2f}{a['best']:>11.2e}{p['best']:>11.2e}")


if __name__ == "__main__":
    main()
