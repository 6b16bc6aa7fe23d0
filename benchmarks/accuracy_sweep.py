"""Test accuracy against bits/weight on digits: full precision, BWN, FleXOR 1.0/0.8/0.6/0.4 and
one mixed-precision point, over several seeds. Writes ``docs/results.png`` and the table between
the ``sweep`` markers of ``docs/results.md``.

Every accuracy is the NumPy golden model's on the exported container (checked equal to torch's
recorded one), so the figures are those of the encrypted bits, not of the float training graph.

    python benchmarks/accuracy_sweep.py --seeds 3 --jobs 2
"""

import argparse
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: (label, scheme, nin per quantized layer); Nout 10, Ntap 2 as in the shipped weights.
POINTS = [
    ("full precision", "fp", None),
    ("BWN", "bwn", None),
    ("FleXOR Nin 10", "flexor", (10,)),
    ("FleXOR Nin 8", "flexor", (8,)),
    ("FleXOR Nin 6", "flexor", (6,)),
    ("FleXOR Nin 4", "flexor", (4,)),
    ("FleXOR mixed Nin 8/4", "flexor", (8, 4)),
]
#: The paper's ResNet-20 on CIFAR-10 (FleXOR, NeurIPS 2020), for reference only.
PAPER_RESNET20 = {"full precision": 91.87, 1.0: 90.44, 0.8: 89.91, 0.6: 89.16, 0.4: 88.23}
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def run_point(job):
    """Train one (point, seed) and return its row; runs in a worker process."""
    import warnings

    from flexor.inference import evaluate
    from flexor.train import RECIPES, train
    label, scheme, nin, seed = job
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Ntap 2 matrices always have rank nin - 1
        result = train(RECIPES["digits-mlp"], scheme=scheme, seed=seed, nin=nin,
                       progress=False)
    container = result.container
    golden = evaluate(container)
    if not np.array_equal(golden.predictions, result.predictions):
        raise RuntimeError(f"{label} seed {seed}: NumPy and torch predictions differ")
    bits = container.bits_per_weight("xor")
    return {"label": label, "seed": seed, "bits": 32.0 if bits is None else bits,
            "accuracy": 100 * golden.accuracy}


def summarize(rows):
    table = []
    for label, _, _ in POINTS:
        accuracies = np.array([r["accuracy"] for r in rows if r["label"] == label])
        bits = next(r["bits"] for r in rows if r["label"] == label)
        table.append({"label": label, "bits": bits, "mean": accuracies.mean(),
                      "std": accuracies.std(ddof=1) if len(accuracies) > 1 else 0.0,
                      "min": accuracies.min(), "max": accuracies.max(),
                      "runs": accuracies})
    return table


def markdown(table, seeds):
    paper = {"full precision": PAPER_RESNET20["full precision"], "BWN": None}
    lines = [f"Digits MLP, test split of 449 images, seeds 0..{seeds - 1}; quantized layers are "
             f"the two hidden 128x128 layers (first and last layer full precision).", "",
             "| scheme | bits/weight (quantized layers) | mean acc. % | std | min | max | "
             "per seed | paper ResNet-20 CIFAR-10 % |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in table:
        ref = paper.get(row["label"], PAPER_RESNET20.get(round(row["bits"], 2)))
        if row["label"].startswith("FleXOR mixed"):
            ref = None
        bits = "32 (float)" if row["label"] == "full precision" else f"{row['bits']:.2f}"
        runs = ", ".join(f"{a:.2f}" for a in row["runs"])
        lines.append(f"| {row['label']} | {bits} | {row['mean']:.2f} | {row['std']:.2f} | "
                     f"{row['min']:.2f} | {row['max']:.2f} | {runs} | "
                     f"{'' if ref is None else f'{ref:.2f} (paper)'} |")
    return "\n".join(lines) + "\n"


def plot(table, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax_paper) = plt.subplots(1, 2, figsize=(10, 4))
    flexor = sorted((r for r in table if r["label"].startswith("FleXOR Nin")),
                    key=lambda r: r["bits"])
    ax.errorbar([r["bits"] for r in flexor], [r["mean"] for r in flexor],
                yerr=[r["std"] for r in flexor], marker="o", capsize=3, label="FleXOR (Nout 10)")
    for row, marker in ((next(r for r in table if r["label"] == "BWN"), "s"),
                        (next(r for r in table if r["label"].startswith("FleXOR mixed")), "D")):
        # Shifted right by 0.015 so its error bar does not hide the FleXOR point at equal bits.
        ax.errorbar([row["bits"] + 0.015], [row["mean"]], yerr=[row["std"]], marker=marker,
                    linestyle="none", capsize=3, label=row["label"])
    fp = next(r for r in table if r["label"] == "full precision")
    ax.axhline(fp["mean"], color="gray", linestyle="--",
               label=f"full precision ({fp['mean']:.2f}%)")
    ax.set_xlabel("bits per weight (quantized layers; BWN and mixed drawn 0.015 right)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("digits MLP, this code (mean ± std over seeds)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    points = sorted((k, v) for k, v in PAPER_RESNET20.items() if isinstance(k, float))
    ax_paper.plot([k for k, _ in points], [v for _, v in points], marker="o", color="C3",
                  label="FleXOR (paper)")
    ax_paper.axhline(PAPER_RESNET20["full precision"], color="gray", linestyle="--",
                     label="full precision (paper)")
    ax_paper.set_xlabel("bits per weight")
    ax_paper.set_title("ResNet-20 CIFAR-10, the paper's figures")
    ax_paper.legend(fontsize=8, loc="lower right")
    ax_paper.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    jobs = [(label, scheme, nin, seed) for label, scheme, nin in POINTS
            for seed in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_point, jobs))
    for row in rows:
        print(f"{row['label']:<22} seed {row['seed']}: {row['bits']:5.2f} bits/weight, "
              f"{row['accuracy']:.2f}%")
    table = summarize(rows)
    text = markdown(table, args.seeds)
    print(text)
    plot(table, os.path.join(DOCS, "results.png"))
    results = os.path.join(DOCS, "results.md")
    with open(results, encoding="utf-8") as file:
        document = file.read()
    document, count = re.subn(r"(<!-- sweep:begin -->\n).*?(<!-- sweep:end -->)",
                              lambda m: m.group(1) + text + m.group(2), document, flags=re.S)
    if count != 1:
        sys.exit(f"{results}: no <!-- sweep:begin --> ... <!-- sweep:end --> markers")
    with open(results, "w", encoding="utf-8") as file:
        file.write(document)


if __name__ == "__main__":
    main()
