"""Makes the ONNX fixtures of examples/models with real tools (onnx, scikit-learn,
skl2onnx from PyPI). The Rust tests read the committed .onnx files and need no Python.

    pip install onnx skl2onnx scikit-learn onnxruntime numpy
    python3 examples/models/make_models.py

Writes, next to this script:
- retail_q4.onnx + retail_q4_onnx.toml: a float64 graph computing the built-in model of
  examples/problems/retail_q4.toml exactly (adstock as a matrix product, the curves, the
  discount), input [N, C*T]; the problem keeps the channels' bounds and the rules.
- quickstart_f32.onnx + quickstart_onnx.toml: the same for quickstart.toml in float32,
  input [N, C, T], working in millions (input_scale 1e-6, output_scale 1e6).
- mlp.onnx + mlp.toml: a scikit-learn MLPRegressor trained on samples of quickstart's
  model, exported with skl2onnx (float32).
"""

import os
import tomllib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
PROBLEMS = os.path.join(HERE, "..", "problems")


def adstock_matrix(spec, periods):
    """M with a = x @ M for one channel: M[s, t] = w[t - s] (Atlas's geometric adstock)."""
    m = np.zeros((periods, periods))
    if spec is None:
        np.fill_diagonal(m, 1.0)
        return m
    lag = spec.get("max_lag", 1)
    w = np.array([spec["decay"] ** l for l in range(max(lag, 1))])
    if spec.get("normalize", True):
        w = w / w.sum()
    for t in range(periods):
        for l in range(min(len(w), t + 1)):
            m[t - l, t] = w[l]
    return m


def twin_graph(problem, dtype, rank3, scale):
    """The built-in model of `problem` as an ONNX graph; the graph sees spend * scale and
    returns response * scale."""
    channels = problem["channels"]
    c_count, periods = len(channels), problem.get("periods", 1)
    n_var = c_count * periods
    np_dtype = np.float64 if dtype == TensorProto.DOUBLE else np.float32
    big = np.zeros((n_var, n_var))
    kinds = ["linear", "hill", "exponential", "logistic", "log", "power"]
    mask = {k: np.zeros(n_var) for k in kinds}
    beta = np.zeros(n_var)
    k_par = np.ones(n_var)
    s_par = np.ones(n_var)
    lam = np.ones(n_var)
    alpha = np.ones(n_var)
    rate = problem.get("discount", 0.0)
    disc = np.zeros(n_var)
    for c, ch in enumerate(channels):
        sl = slice(c * periods, (c + 1) * periods)
        big[sl, sl] = adstock_matrix(ch.get("adstock"), periods)
        r = ch["response"]
        mask[r["kind"]][sl] = 1.0
        # Everything in the graph's units: spend and response times `scale`.
        beta[sl] = r["beta"] * scale
        if "k" in r:
            k_par[sl] = r["k"] * scale
        if r["kind"] == "logistic":
            lam[sl] = r["lam"] / scale
        if r["kind"] == "power":
            alpha[sl] = r["alpha"]
            # beta x^a in spend units is beta * scale^(1-a) * (x scale)^a ... in graph units:
            beta[sl] = r["beta"] * scale / scale ** r["alpha"]
        if r["kind"] == "linear":
            beta[sl] = r["beta"]
        if "s" in r:
            s_par[sl] = r["s"]
        disc[sl] = [1.0 / (1.0 + rate) ** t for t in range(periods)]

    def const(name, value):
        return numpy_helper.from_array(np.asarray(value, dtype=np_dtype), name)

    inits = [const("W", big), const("beta", beta), const("k", k_par), const("s", s_par),
             const("lam", lam), const("alpha", alpha), const("disc", disc), const("one", 1.0)]
    inits += [const("m_" + k, mask[k]) for k in kinds]
    inits.append(numpy_helper.from_array(np.array([-1, n_var], dtype=np.int64), "flat"))
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    nodes = []
    x = "spend"
    if rank3:
        nodes.append(helper.make_node("Reshape", ["spend", "flat"], ["x2"]))
        x = "x2"
    N = helper.make_node
    nodes += [
        N("MatMul", [x, "W"], ["a"]),
        # linear: beta a
        N("Mul", ["beta", "a"], ["f_linear"]),
        # hill: beta a^s / (a^s + k^s)
        N("Pow", ["a", "s"], ["as"]), N("Pow", ["k", "s"], ["ks"]), N("Add", ["as", "ks"], ["hd"]),
        N("Div", ["as", "hd"], ["hq"]), N("Mul", ["beta", "hq"], ["f_hill"]),
        # exponential: beta (1 - exp(-a / k))
        N("Div", ["a", "k"], ["ak"]), N("Neg", ["ak"], ["nak"]), N("Exp", ["nak"], ["e1"]),
        N("Sub", ["one", "e1"], ["e2"]), N("Mul", ["beta", "e2"], ["f_exponential"]),
        # logistic: beta (1 - exp(-lam a)) / (1 + exp(-lam a))
        N("Mul", ["lam", "a"], ["la"]), N("Neg", ["la"], ["nla"]), N("Exp", ["nla"], ["el"]),
        N("Sub", ["one", "el"], ["ln"]), N("Add", ["one", "el"], ["ld"]), N("Div", ["ln", "ld"], ["lq"]),
        N("Mul", ["beta", "lq"], ["f_logistic"]),
        # log: beta ln(1 + a / k)
        N("Add", ["one", "ak"], ["lg1"]), N("Log", ["lg1"], ["lg2"]), N("Mul", ["beta", "lg2"], ["f_log"]),
        # power: beta a^alpha
        N("Pow", ["a", "alpha"], ["pw"]), N("Mul", ["beta", "pw"], ["f_power"]),
    ]
    terms = []
    for k in kinds:
        if mask[k].any():
            nodes.append(N("Mul", ["m_" + k, "f_" + k], ["t_" + k]))
            terms.append("t_" + k)
    nodes.append(N("Sum", terms, ["f"]))
    nodes.append(N("Mul", ["f", "disc"], ["fd"]))
    nodes.append(N("ReduceSum", ["fd", "axis1"], ["response"], keepdims=1))
    in_shape = ["N", c_count, periods] if rank3 else ["N", n_var]
    graph = helper.make_graph(
        nodes, "atlas_twin",
        [helper.make_tensor_value_info("spend", dtype, in_shape)],
        [helper.make_tensor_value_info("response", dtype, ["N", 1])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="atlas make_models.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def external_problem(source_name, model_lines):
    """The problem file of `source_name` without curves and adstocks, with a [model]."""
    with open(os.path.join(PROBLEMS, source_name)) as f:
        lines = f.read().splitlines()
    kept = [l for l in lines if not l.startswith("response =") and not l.startswith("adstock =")]
    header = [f"# Made by make_models.py from examples/problems/{source_name}: the same channels,",
              "# bounds, budget and rules, with the response model from an ONNX graph.", ""]
    return "\n".join(header + kept + ["", "[model]"] + model_lines) + "\n"


def mmm_value(problem, x):
    """Atlas's built-in model at the flat spend vector x (for training the MLP)."""
    periods = problem.get("periods", 1)
    total = 0.0
    for c, ch in enumerate(problem["channels"]):
        a = x[c * periods:(c + 1) * periods] @ adstock_matrix(ch.get("adstock"), periods)
        r = ch["response"]
        assert r["kind"] == "hill"
        total += np.sum(r["beta"] * a ** r["s"] / (a ** r["s"] + r["k"] ** r["s"]))
    return total


def main():
    with open(os.path.join(PROBLEMS, "retail_q4.toml"), "rb") as f:
        retail = tomllib.load(f)
    onnx.save(twin_graph(retail, TensorProto.DOUBLE, False, 1.0), os.path.join(HERE, "retail_q4.onnx"))
    with open(os.path.join(HERE, "retail_q4_onnx.toml"), "w") as f:
        f.write(external_problem("retail_q4.toml", ['kind = "onnx"', 'path = "retail_q4.onnx"']))

    with open(os.path.join(PROBLEMS, "quickstart.toml"), "rb") as f:
        quick = tomllib.load(f)
    onnx.save(twin_graph(quick, TensorProto.FLOAT, True, 1e-6), os.path.join(HERE, "quickstart_f32.onnx"))
    with open(os.path.join(HERE, "quickstart_onnx.toml"), "w") as f:
        f.write(external_problem("quickstart.toml", [
            'kind = "onnx"', 'path = "quickstart_f32.onnx"', 'input_scale = 1e-6', 'output_scale = 1e6']))

    # An MLP trained on samples of quickstart's model, in millions.
    from sklearn.neural_network import MLPRegressor
    from skl2onnx import to_onnx

    rng = np.random.default_rng(7)
    lo = np.array([c.get("min", 0.0) for c in quick["channels"]])
    hi = np.array([c.get("max", 1e6) for c in quick["channels"]])
    xs = lo + (hi - lo) * rng.random((4000, 3))
    ys = np.array([mmm_value(quick, x) for x in xs])
    mlp = MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh", max_iter=3000,
                       tol=1e-9, random_state=0)
    mlp.fit(xs / 1e6, ys / 1e6)
    print("MLP R^2 on its training samples:", mlp.score(xs / 1e6, ys / 1e6))
    model = to_onnx(mlp, (xs[:1] / 1e6).astype(np.float32), target_opset=13)
    onnx.save(model, os.path.join(HERE, "mlp.onnx"))
    with open(os.path.join(HERE, "mlp.toml"), "w") as f:
        f.write(external_problem("quickstart.toml", [
            'kind = "onnx"', 'path = "mlp.onnx"', 'input_scale = 1e-6', 'output_scale = 1e6']))


if __name__ == "__main__":
    main()
