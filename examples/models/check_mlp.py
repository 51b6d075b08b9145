"""CI check (`.ci/onnx.sh`): Atlas's reported objective for the
scikit-learn MLP (mlp.onnx, exported by skl2onnx) equals onnxruntime's prediction for the
returned plan within 1e-5 relative.

    python3 examples/models/check_mlp.py target/release/atlas
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    atlas = sys.argv[1] if len(sys.argv) > 1 else "target/release/atlas"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        subprocess.run([atlas, "optimize", os.path.join(HERE, "mlp.toml"), "--quiet",
                        "--output", out], check=True)
        with open(out) as f:
            result = json.load(f)
    plan = np.array([[result["allocation"][c][0] for c in ("tv", "digital", "radio")]])
    session = ort.InferenceSession(os.path.join(HERE, "mlp.onnx"))
    name = session.get_inputs()[0].name
    prediction = float(session.run(None, {name: (plan * 1e-6).astype(np.float32)})[0].ravel()[0]) * 1e6
    rel = abs(result["objective"] - prediction) / abs(prediction)
    print(f"mlp: atlas objective {result['objective']:.6f}, onnxruntime {prediction:.6f}, relative difference {rel:.2e}")
    if not rel <= 1e-5:
        sys.exit("mlp: Atlas's objective differs from onnxruntime's prediction by more than 1e-5")


if __name__ == "__main__":
    main()
