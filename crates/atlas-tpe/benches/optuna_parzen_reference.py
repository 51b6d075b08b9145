"""Reference log-densities from Optuna's own Parzen estimator, for the unit test
`parzen::tests::log_densities_match_optuna` (run it to regenerate the numbers).

    /tmp/tpe-venv/bin/python crates/atlas-tpe/benches/optuna_parzen_reference.py
"""

import numpy as np
from optuna.distributions import FloatDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights

obs = {
    "a": np.array([0.05, 0.2, 0.7, 0.72, 0.4, 0.99, 0.33]),
    "b": np.array([0.9, 0.85, 0.1, 0.12, 0.5, 0.0, 0.61]),
}
space = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
params = _ParzenEstimatorParameters(
    prior_weight=1.0,
    consider_magic_clip=True,
    consider_endpoints=False,
    weights=default_weights,
    multivariate=True,
)
pe = _ParzenEstimator(obs, space, params)
pts = {"a": np.array([0.0, 0.3, 0.71, 1.0, 0.5]), "b": np.array([1.0, 0.2, 0.11, 0.0, 0.5])}
print("joint", [float(v) for v in pe.log_pdf(pts)])
for k in ["a", "b"]:
    marginal = _ParzenEstimator({k: obs[k]}, {k: space[k]}, params)
    print("marginal", k, [float(v) for v in marginal.log_pdf({k: pts[k]})])
rng = np.random.RandomState(0)
o30 = {"a": rng.rand(30)}
pe30 = _ParzenEstimator(o30, {"a": space["a"]}, params)
print("observations", [float(v) for v in o30["a"]])
print("log_pdf", [float(v) for v in pe30.log_pdf({"a": np.array([0.0, 0.25, 0.5, 0.93])})])
