"""Train a 64-64-10 network on scikit-learn's 8x8 digits, all images at once per batch.

    python examples/train_digits.py [--backend torch] [--epochs 20]

Prints per-epoch loss and test accuracy, then the final test accuracy and the wall time;
writes a loss curve and a confusion matrix (PNG) when matplotlib is installed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from _common import parser, use

import nnxp
from nnxp import datasets


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--out", default="examples/out", help="folder for the PNG files")
    args = p.parse_args(argv)
    use(args)

    X_train, X_test, T_train, T_test = datasets.digits(seed=args.seed)
    net = nnxp.Sequential(
        [nnxp.Dense(64, args.hidden, "relu"), nnxp.Dense(args.hidden, 10, "softmax")],
        seed=args.seed,
    )
    print(f"backend {nnxp.get_backend().name}: {net}")
    print(f"{X_train.shape[0]} training and {X_test.shape[0]} test images")

    def report(epoch, logs):
        print(
            f"epoch {epoch + 1:3d}/{args.epochs}  loss {logs['loss']:.4f}  "
            f"test loss {logs['val_loss']:.4f}  test accuracy {logs['val_accuracy']:.4f}"
        )

    start = time.perf_counter()
    history = net.fit(
        X_train,
        T_train,
        loss="cross_entropy",
        optimizer=nnxp.Adam(args.lr),
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(X_test, T_test),
        progress=False,
        callbacks=[report],
    )
    seconds = time.perf_counter() - start
    accuracy = net.evaluate(X_test, T_test, "cross_entropy")["accuracy"]
    print(f"test accuracy {accuracy:.4f} after {args.epochs} epochs in {seconds:.2f} s")

    predicted = np.argmax(nnxp.to_numpy(net.predict(X_test)), axis=1)
    actual = np.argmax(nnxp.to_numpy(T_test), axis=1)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (actual, predicted), 1)
    _plot(history, confusion, Path(args.out))
    return {"accuracy": accuracy, "seconds": seconds, "history": history.history}


def _plot(history, confusion, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install 'nnxp[examples]')")
        return
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(history.history["loss"], label="training")
    ax.plot(history.history["val_loss"], label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "digits_loss.png", dpi=100)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(confusion, cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        color = "white" if count > confusion.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    fig.tight_layout()
    fig.savefig(out / "digits_confusion.png", dpi=100)
    plt.close("all")
    print(f"wrote {out / 'digits_loss.png'} and {out / 'digits_confusion.png'}")


if __name__ == "__main__":
    main()
