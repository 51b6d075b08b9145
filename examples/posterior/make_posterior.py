#!/usr/bin/env python3
"""Writes examples/posterior/retail_q4_posterior.json: 200 draws of retail_q4.toml's curve
and carry-over parameters, each perturbed log-normally (fixed seed, standard library only,
so the file is reproducible byte for byte).

    python3 examples/posterior/make_posterior.py

Every parameter is multiplied by exp(sigma * N(0, 1)): sigma = 0.15 for `beta`, 0.2 for
`k`, 0.1 for `alpha` (capped at 1) and 0.15 for `decay` (capped at 0.95). The Hill shape
`s` stays at 1 and `max_lag` as written, so every draw is concave (as `convex` needs).
"""
import json
import math
import pathlib
import random
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROBLEM = ROOT / "examples" / "problems" / "retail_q4.toml"
OUT = ROOT / "examples" / "posterior" / "retail_q4_posterior.json"
DRAWS = 200
SIGMA = {"beta": 0.15, "k": 0.2, "alpha": 0.1, "lam": 0.15}


def main():
    problem = tomllib.loads(PROBLEM.read_text())
    rng = random.Random(20261203)
    draws = []
    for _ in range(DRAWS):
        draw = {}
        for ch in problem["channels"]:
            entry = {}
            resp = dict(ch["response"])
            for name, sigma in SIGMA.items():
                if name in resp:
                    value = resp[name] * math.exp(sigma * rng.gauss(0.0, 1.0))
                    if name == "alpha":
                        value = min(value, 1.0)
                    resp[name] = float(f"{value:.6g}")
            entry["response"] = resp
            if "adstock" in ch:
                ad = dict(ch["adstock"])
                decay = ad["decay"] * math.exp(0.15 * rng.gauss(0.0, 1.0))
                ad["decay"] = float(f"{min(decay, 0.95):.4g}")
                entry["adstock"] = ad
            draw[ch["name"]] = entry
        draws.append(draw)
    lines = ",\n".join(json.dumps(d, separators=(",", ":")) for d in draws)
    OUT.write_text('{"draws": [\n' + lines + "\n]}\n")
    print(f"wrote {OUT} ({DRAWS} draws)")


if __name__ == "__main__":
    main()
