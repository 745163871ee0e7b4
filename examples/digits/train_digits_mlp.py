"""Train the demo model: a 64-128-64-10 ReLU MLP on scikit-learn's bundled digits, exported to ONNX.

The MLP is trained dense with scikit-learn, then pruned the Deep Compression way: magnitude
pruning of every weight matrix to 50%, 75% and finally 90% zeros, each step followed by masked
fine-tuning (numpy, Adam). Deep Compression retrains after pruning; this script does it in
numpy, so that the bundled model does not depend on eiec (``eiec compile --train DATA.npz``
retrains the same way on TVM), and the exported weights are already 90% sparse. (The dense
model, 97.3% on the test set, falls to 38.2% when pruned to 90% without retraining.)

Writes, next to this script:

- ``digits_mlp.onnx``: the classifier as PyTorch exports an MLP (``Gemm`` with ``transB=1``,
  weights stored [out, in], ``Relu`` between layers); input ``input`` float32 [N, 64] (pixel
  values / 16, so in [0, 1]), output ``logits`` float32 [N, 10]. The batch axis is symbolic:
  eiec compiles a batch-1 program and the runtime runs a batch as a sequence of vectors.
- ``digits_skl_style.onnx``: the same weights as skl2onnx writes an ``MLPClassifier`` (with
  ``zipmap=False``): ``MatMul`` + ``Add`` layers with weights [in, out], ``Softmax``, ``ArgMax``
  and the ``ai.onnx.ml`` ``ArrayFeatureExtractor`` mapping the arg-max to the class label;
  outputs ``label`` int64 [N] and ``probabilities`` float32 [N, 10].
- ``test_x.npy`` / ``test_y.npy``: the held-out quarter of the data (float32 [450, 64], int64).
- ``calib_x.npy``: 64 training images for the compiler's activation-range calibration.

Everything is deterministic: a stratified split and the optimiser seeded with ``RANDOM_STATE``,
BLAS limited to one thread (a multi-threaded reduction may round differently), fixed ONNX
opset/IR versions and producer fields. Running the script again reproduces the files bit for
bit on the same numpy/scikit-learn versions; ``tests/runtime/test_digits_model.py`` checks it.

Usage: ``python examples/digits/train_digits_mlp.py [--out DIR]``
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
RANDOM_STATE = 0
HIDDEN = (128, 64)
TEST_FRACTION = 0.25
CALIBRATION_SAMPLES = 64
#: Deep Compression's prune-and-retrain: per-layer magnitude pruning to these sparsities in
#: turn, each followed by masked fine-tuning (Han et al., NIPS 2015). Biases are not pruned.
PRUNE_SCHEDULE = (0.5, 0.75, 0.9)
FINE_TUNE_EPOCHS = 30
FINE_TUNE_BATCH = 64
FINE_TUNE_LR = 1e-3
L2 = 1e-4
#: ONNX versions the TVM Relax front end and onnx.reference both handle.
OPSET = 17
ML_OPSET = 3
IR_VERSION = 8


@dataclass(frozen=True)
class TrainedMLP:
    """Weights ([in, out], as scikit-learn stores them) and the data split."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    train_x: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    calib_x: np.ndarray
    test_accuracy: float
    dense_test_accuracy: float


@dataclass(frozen=True)
class DenseMLP:
    """The MLP as scikit-learn trained it, dense (weights [in, out], float64), and the split."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    test_accuracy: float


def train_dense() -> DenseMLP:
    """The dense MLP (scikit-learn, single-threaded BLAS, fixed seeds), before any pruning."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=RANDOM_STATE, stratify=y
    )
    with threadpool_limits(limits=1):
        clf = MLPClassifier(
            hidden_layer_sizes=HIDDEN,
            activation="relu",
            solver="adam",
            alpha=1e-4,
            max_iter=300,
            random_state=RANDOM_STATE,
        )
        clf.fit(train_x, train_y)
        accuracy = float(clf.score(test_x, test_y))
    return DenseMLP(
        [np.asarray(w, dtype=np.float64) for w in clf.coefs_],
        [np.asarray(b, dtype=np.float64) for b in clf.intercepts_],
        train_x,
        train_y,
        test_x,
        test_y,
        accuracy,
    )


def train() -> TrainedMLP:
    """Train the MLP dense (:func:`train_dense`), then prune and retrain it (numpy)."""
    from threadpoolctl import threadpool_limits

    dense = train_dense()
    train_x, train_y, test_x, test_y = dense.train_x, dense.train_y, dense.test_x, dense.test_y
    dense_accuracy = dense.test_accuracy
    with threadpool_limits(limits=1):
        weights, biases = prune_and_retrain(
            dense.weights, dense.biases, train_x.astype(np.float64), train_y
        )
    accuracy = float(np.mean(_forward(weights, biases, test_x)[-1].argmax(axis=1) == test_y))
    weights = [np.ascontiguousarray(w, dtype=np.float32) for w in weights]
    biases = [np.ascontiguousarray(b, dtype=np.float32) for b in biases]
    return TrainedMLP(
        weights=weights,
        biases=biases,
        train_x=train_x,
        test_x=np.ascontiguousarray(test_x),
        test_y=np.ascontiguousarray(test_y),
        calib_x=np.ascontiguousarray(train_x[:CALIBRATION_SAMPLES]),
        test_accuracy=accuracy,
        dense_test_accuracy=dense_accuracy,
    )


def _forward(
    weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray
) -> list[np.ndarray]:
    """Activations of every layer (input first, logits last)."""
    activations = [np.asarray(x, dtype=np.float64)]
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = activations[-1] @ w + b
        activations.append(z if i == len(weights) - 1 else np.maximum(z, 0.0))
    return activations


def _magnitude_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep the ``1 - sparsity`` largest-magnitude weights (ties broken by position)."""
    keep = round(w.size * (1.0 - sparsity))
    order = np.argsort(-np.abs(w), axis=None, kind="stable")
    mask = np.zeros(w.size, dtype=bool)
    mask[order[:keep]] = True
    return mask.reshape(w.shape)


def prune_and_retrain(
    weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Iterative magnitude pruning with masked fine-tuning (Adam, softmax cross-entropy)."""
    rng = np.random.default_rng(RANDOM_STATE)
    params = [*weights, *biases]
    onehot = np.eye(weights[-1].shape[1])[y]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    step = 0
    for sparsity in PRUNE_SCHEDULE:
        masks = [_magnitude_mask(w, sparsity) for w in weights]
        for w, mask in zip(weights, masks, strict=True):
            w *= mask
        for _ in range(FINE_TUNE_EPOCHS):
            order = rng.permutation(len(x))
            for start in range(0, len(x), FINE_TUNE_BATCH):
                batch = order[start : start + FINE_TUNE_BATCH]
                grads = _gradients(weights, biases, x[batch], onehot[batch])
                step += 1
                for i, (param, grad) in enumerate(zip(params, grads, strict=True)):
                    m, v = moments[i]
                    m *= 0.9
                    m += 0.1 * grad
                    v *= 0.999
                    v += 0.001 * grad * grad
                    m_hat = m / (1 - 0.9**step)
                    v_hat = v / (1 - 0.999**step)
                    param -= FINE_TUNE_LR * m_hat / (np.sqrt(v_hat) + 1e-8)
                for w, mask in zip(weights, masks, strict=True):
                    w *= mask
    return weights, biases


def _gradients(
    weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray, onehot: np.ndarray
) -> list[np.ndarray]:
    """Gradients of mean cross-entropy + L2 (weights, then biases), by backpropagation."""
    activations = _forward(weights, biases, x)
    logits = activations[-1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    delta = (p - onehot) / len(x)
    w_grads: list[np.ndarray] = []
    b_grads: list[np.ndarray] = []
    for i in range(len(weights) - 1, -1, -1):
        w_grads.insert(0, activations[i].T @ delta + L2 * weights[i])
        b_grads.insert(0, delta.sum(axis=0))
        if i:
            delta = (delta @ weights[i].T) * (activations[i] > 0)
    return [*w_grads, *b_grads]


def _model(graph: onnx.GraphProto, opsets: list[onnx.OperatorSetIdProto]) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=opsets, producer_name="eiec-examples", producer_version="1"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def gemm_model(weights: list[np.ndarray], biases: list[np.ndarray]) -> onnx.ModelProto:
    """The MLP as PyTorch exports ``nn.Linear`` layers: ``Gemm(x, W[out,in], b, transB=1)``."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    current = "input"
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T), f"fc{i + 1}.weight"))
        inits.append(numpy_helper.from_array(b, f"fc{i + 1}.bias"))
        out = "logits" if i == last else f"fc{i + 1}"
        nodes.append(
            helper.make_node(
                "Gemm",
                [current, f"fc{i + 1}.weight", f"fc{i + 1}.bias"],
                [out],
                name=f"/fc{i + 1}/Gemm",
                transB=1,
            )
        )
        current = out
        if i != last:
            nodes.append(
                helper.make_node("Relu", [current], [f"relu{i + 1}"], name=f"/relu{i + 1}/Relu")
            )
            current = f"relu{i + 1}"
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", weights[0].shape[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", weights[-1].shape[1]])],
        inits,
    )
    return _model(graph, [helper.make_opsetid("", OPSET)])


def skl_style_model(weights: list[np.ndarray], biases: list[np.ndarray]) -> onnx.ModelProto:
    """The MLP the way skl2onnx converts an ``MLPClassifier`` (``zipmap=False``).

    skl2onnx names tensors after the scikit-learn attributes (``coefficient``, ``intercepts``)
    and ends a classifier with ``Softmax`` -> ``ArgMax`` -> ``ArrayFeatureExtractor(classes,
    argmax)`` -> ``Reshape`` for the label.
    """
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    current = "X"
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        suffix = "" if i == 0 else str(i)
        coef, icpt = f"coefficient{suffix}", f"intercepts{suffix}"
        inits.append(numpy_helper.from_array(w, coef))
        inits.append(numpy_helper.from_array(b.reshape(1, -1), icpt))
        nodes.append(helper.make_node("MatMul", [current, coef], [f"mul_result{suffix}"]))
        nodes.append(
            helper.make_node("Add", [f"mul_result{suffix}", icpt], [f"add_result{suffix}"])
        )
        current = f"add_result{suffix}"
        if i != last:
            nodes.append(helper.make_node("Relu", [current], [f"next_activations{suffix}"]))
            current = f"next_activations{suffix}"
    classes = np.arange(weights[-1].shape[1], dtype=np.int64)
    inits.append(numpy_helper.from_array(classes, "classes"))
    inits.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "shape_tensor"))
    nodes += [
        helper.make_node("Softmax", [current], ["probabilities"], axis=-1),
        helper.make_node("ArgMax", ["probabilities"], ["argmax_output"], axis=1),
        helper.make_node(
            "ArrayFeatureExtractor",
            ["classes", "argmax_output"],
            ["array_feature_extractor_result"],
            domain="ai.onnx.ml",
        ),
        helper.make_node("Reshape", ["array_feature_extractor_result", "shape_tensor"], ["label"]),
    ]
    n_classes = int(classes.size)
    graph = helper.make_graph(
        nodes,
        "mlp_classifier",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", weights[0].shape[0]])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_classes]),
        ],
        inits,
    )
    return _model(
        graph, [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    )


def artefacts(trained: TrainedMLP) -> dict[str, bytes]:
    """File name -> exact file contents."""
    import io

    def npy(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()

    return {
        "digits_mlp.onnx": gemm_model(trained.weights, trained.biases).SerializeToString(),
        "digits_skl_style.onnx": skl_style_model(
            trained.weights, trained.biases
        ).SerializeToString(),
        "test_x.npy": npy(trained.test_x),
        "test_y.npy": npy(trained.test_y),
        "calib_x.npy": npy(trained.calib_x),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: here)")
    args = parser.parse_args()
    from eiec.fileio import write_atomic

    trained = train()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in artefacts(trained).items():
        write_atomic(args.out / name, data)
        print(f"wrote {args.out / name} ({len(data)} bytes)")
    print(
        f"test accuracy on {len(trained.test_y)} images: dense {trained.dense_test_accuracy:.4f}, "
        f"pruned to {PRUNE_SCHEDULE[-1]:.0%} and retrained {trained.test_accuracy:.4f}"
    )


if __name__ == "__main__":
    main()
