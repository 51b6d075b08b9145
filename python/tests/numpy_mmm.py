"""A NumPy implementation of the built-in marketing-mix model (curves of geometric
adstock, discounted), as a model written in Python: ``value``, ``gradient``,
``value_and_gradient`` and ``value_batch`` over the flat channel-major spend vector. The tests use it to check
that Python models reach the built-in optimum, the benchmarks to time the callbacks."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

SLOPE_FLOOR = 1e-12


class NumpyMmm:
    """The built-in model of a problem dict (``Problem.to_dict()``), in NumPy."""

    concave = True

    def __init__(self, problem: Dict[str, Any]) -> None:
        channels = problem["channels"]
        self.C = len(channels)
        self.T = int(problem.get("periods", 1))
        rate = float(problem.get("discount", 0.0))
        self.d = 1.0 / (1.0 + rate) ** np.arange(self.T)
        lags = []
        for ch in channels:
            ad = ch.get("adstock")
            if ad is None:
                w = np.array([1.0])
            else:
                L = max(1, int(ad.get("max_lag", 1)))
                w = float(ad["decay"]) ** np.arange(L)
                if ad.get("normalize", True):
                    w = w / w.sum()
            lags.append(w)
        self.L = max(len(w) for w in lags)
        self.W = np.zeros((self.C, self.L))
        for c, w in enumerate(lags):
            self.W[c, : len(w)] = w
        # Channels are kept internally in an order that groups each curve kind into one
        # contiguous block, so that every kind is computed on a view, not a copy.
        kinds = [ch["response"]["kind"] for ch in channels]
        self.order = np.array(sorted(range(self.C), key=lambda c: kinds[c]), dtype=np.intp)
        self.W = self.W[self.order]
        self.params = {}
        start = 0
        for kind in sorted(set(kinds)):
            idx = [c for c in self.order if kinds[c] == kind]
            rs = [channels[c]["response"] for c in idx]
            p = {
                name: np.array([float(r.get(name, 0.0)) for r in rs])[:, None]
                for name in ("beta", "k", "s", "lam", "alpha")
            }
            p["s_is_one"] = bool(np.all(p["s"] == 1.0))
            self.params[kind] = (slice(start, start + len(idx)), p)
            start += len(idx)
        self.concave = all(
            kind != "hill" or bool(np.all(p["s"] <= 1.0)) for kind, (_, p) in self.params.items()
        )
        self.calls = {"value": 0, "gradient": 0, "value_and_gradient": 0, "value_batch": 0, "hessian_diagonal": 0}

    def _adstock(self, X: np.ndarray) -> np.ndarray:
        """a[..., c, t] = sum_l w[c, l] x[..., c, t - l]."""
        A = X * self.W[:, 0:1]
        for l in range(1, min(self.L, self.T)):
            A[..., l:] += X[..., :-l] * self.W[:, l : l + 1]
        return A

    def _adstock_transpose(self, U: np.ndarray, W=None) -> np.ndarray:
        W = self.W if W is None else W
        G = U * W[:, 0:1]
        for l in range(1, min(self.L, self.T)):
            G[..., :-l] += U[..., l:] * W[:, l : l + 1]
        return G

    def _curves(self, A: np.ndarray, slopes: bool, second: bool = False):
        V = np.empty_like(A)
        D = np.empty_like(A) if slopes else None
        H = np.empty_like(A) if second else None
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for kind, (idx, p) in self.params.items():
                a = np.maximum(A[..., idx, :], 0.0)
                beta = p["beta"]
                d2 = 0.0 * a
                if kind == "linear":
                    v, d1 = beta * a, beta + 0.0 * a
                elif kind == "hill":
                    k, s = p["k"], p["s"]
                    if p["s_is_one"]:
                        v = beta * a / (a + k)
                        d1 = beta * k / (a + k) ** 2
                        d2 = -2.0 * beta * k / (a + k) ** 3
                    else:
                        t = (a / k) ** s
                        v = beta * t / (1.0 + t)
                        ad = np.where(a > 0.0, a, SLOPE_FLOOR * k)
                        td = (ad / k) ** s
                        d1 = beta * s * td / (ad * (1.0 + td) ** 2)
                        d1 = np.where((a == 0.0) & (s == 1.0), beta / k, d1)
                        d2 = beta * s * td * ((s - 1.0) - (s + 1.0) * td) / (ad * ad * (1.0 + td) ** 3)
                elif kind == "exponential":
                    k = p["k"]
                    v = -beta * np.expm1(-a / k)
                    d1 = beta / k * np.exp(-a / k)
                    d2 = -d1 / k
                elif kind == "logistic":
                    lam = p["lam"]
                    th = np.tanh(0.5 * lam * a)
                    v = beta * th
                    d1 = 0.5 * beta * lam * (1.0 - th * th)
                    d2 = -lam * th * d1
                elif kind == "log":
                    k = p["k"]
                    v = beta * np.log1p(a / k)
                    d1 = beta / (k + a)
                    d2 = -d1 / (k + a)
                elif kind == "power":
                    alpha = p["alpha"]
                    v = beta * a**alpha
                    ad = np.maximum(a, SLOPE_FLOOR)
                    d1 = np.where(alpha == 1.0, beta, alpha * beta * ad ** (alpha - 1.0))
                    d2 = np.where(alpha == 1.0, 0.0, alpha * (alpha - 1.0) * beta * ad ** (alpha - 2.0))
                else:
                    raise ValueError(f"curve kind {kind!r} is not implemented here")
                V[..., idx, :] = v
                if slopes:
                    D[..., idx, :] = d1
                if second:
                    H[..., idx, :] = d2
        if second:
            return V, D, H
        return V, D

    def _grouped(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(-1, self.C, self.T)[:, self.order, :]

    def value(self, x: np.ndarray) -> float:
        self.calls["value"] += 1
        V, _ = self._curves(self._adstock(self._grouped(x)[0]), False)
        return float((V @ self.d).sum())

    def value_and_gradient(self, x: np.ndarray):
        """Value and gradient in one call (they share the adstock and the curves)."""
        self.calls["value_and_gradient"] += 1
        V, D = self._curves(self._adstock(self._grouped(x)[0]), True)
        G = np.empty((self.C, self.T))
        G[self.order] = self._adstock_transpose(D * self.d)
        return float((V @ self.d).sum()), G.ravel()

    def gradient(self, x: np.ndarray) -> np.ndarray:
        self.calls["gradient"] += 1
        _, D = self._curves(self._adstock(self._grouped(x)[0]), True)
        G = np.empty((self.C, self.T))
        G[self.order] = self._adstock_transpose(D * self.d)
        return G.ravel()

    def hessian_diagonal(self, x: np.ndarray) -> np.ndarray:
        """The diagonal of the Hessian: sum_l w_l^2 d_(s+l) f''(a_(s+l))."""
        self.calls["hessian_diagonal"] += 1
        _, _, H = self._curves(self._adstock(self._grouped(x)[0]), True, True)
        out = np.empty((self.C, self.T))
        out[self.order] = self._adstock_transpose(H * self.d, self.W**2)
        return out.ravel()

    def value_batch(self, X: np.ndarray) -> np.ndarray:
        self.calls["value_batch"] += 1
        V, _ = self._curves(self._adstock(self._grouped(X)), False)
        return (V @ self.d).sum(axis=1)
