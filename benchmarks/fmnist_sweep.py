"""Fashion-MNIST sweep: accuracy against stored weight bits, float and integer, resumable.

Trains ``784-W-W-10`` MLPs (recipe ``fashion-mnist-mlp``) in full precision, BWN and FleXOR at
1.0 / 0.8 / 0.6 / 0.4 bits per weight (Nin 10 / 8 / 6 / 4, Nout 10, Ntap 2), with float or
8 / 4 / 2 / 1-bit activations, every layer encrypted in the tiled order with tile 4 (what the
hardware runs), over widths and seeds. Each run is evaluated with the NumPy float golden model
and, when it has one, the integer program (raw pixels in); the figures are those of the
exported container, not of the torch graph.

Finished runs are cached, one JSON file (and the container) per run under ``--cache``, so an
interrupted sweep goes on where it stopped; runs are started in priority order (the cells the
targets and the shipped container need first, seed after seed), so a sweep cut short still has
the important cells. ``--report`` only rewrites ``docs/results.md`` (between the
``fmnist:begin`` / ``fmnist:end`` markers) and ``docs/fmnist.png`` from the cache::

    nice python benchmarks/fmnist_sweep.py --jobs 2 --epochs 8       # run (resumes) + report
    python benchmarks/fmnist_sweep.py --report --epochs 8             # tables from the cache
"""

import argparse
import json
import os
import re
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DOCS = os.path.join(ROOT, "docs")

MAIN_WIDTH = 128
#: FleXOR Nin per label (Nout 10): the paper's 1.0 / 0.8 / 0.6 / 0.4 bits per weight.
FLEXOR_NIN = {"1.0": 10, "0.8": 8, "0.6": 6, "0.4": 4}
ACTIVATIONS = (None, 8, 4, 2)
WIDTHS = (64, 128, 256, 512)
#: Widths of the equal-memory cells beside the width sweep (FleXOR 0.6 and 0.4 under 100 kbit).
BUDGET_WIDTHS = {6: 160, 4: 224}
#: Device budgets of stored weight bits (kbit): iCE40 UP5K block RAM, ECP5-85F block RAM.
BUDGETS = {"UP5K 120 kbit": 120.0, "ECP5-85F 3.8 Mbit": 3800.0}
#: The shipped container's budget (beside the rest of a design in a UP5K).
SHIP_BUDGET_KBIT = 100.0
TILE = 4


def cell(scheme, nin=None, act=None, width=MAIN_WIDTH, fp_ends=False):
    return {"scheme": scheme, "nin": nin, "act": act, "width": width, "fp_ends": fp_ends}


def tiers():
    """Runs in priority order. CPU is scarce, so: every cell of the targets, the equal-memory
    cells and the main table at seed 0, the second seed of the targets, the width sweep at
    W 64 / 128 / 256, the third seed of the targets, the second and third seeds of the main
    table, then the rest (float first/last layers, W 512, more seeds of the widths)."""
    targets = [cell("flexor", 8, a) for a in (8, 2)] + [cell("bwn", None, a) for a in (8, 2)]
    targets += [cell("fp", width=256), cell("bwn", None, 2, width=104),
                cell("bwn", None, 8, width=104), cell("fp"), cell("flexor", 6, 2),
                cell("flexor", 8, 4), cell("bwn", None, 4)]
    # Equal memory: FleXOR's fewer bits per weight buy a wider network under 100 kbit.
    budget = [cell("flexor", nin, a, width=width) for nin, width in BUDGET_WIDTHS.items()
              for a in (2, 8)]
    main = [cell("fp", None, a) for a in ACTIVATIONS] + \
           [cell("bwn", None, a) for a in ACTIVATIONS] + \
           [cell("flexor", nin, a) for nin in FLEXOR_NIN.values() for a in ACTIVATIONS]
    widths = [cell(scheme, nin, act, width) for width in (64, 128, 256) for act in (2, 1)
              for scheme, nin in (("flexor", 6), ("bwn", None))] + \
             [cell("fp", width=width) for width in (64, 256)]
    wide = [cell(scheme, nin, act, 512) for act in (2, 1)
            for scheme, nin in (("flexor", 6), ("bwn", None))] + [cell("fp", width=512)]
    ends = [cell("flexor", 8, 2, fp_ends=True), cell("bwn", None, 2, fp_ends=True)]
    plan = [(targets + budget + main, 0), (targets + budget, 1), (widths, 0),
            (targets + budget, 2), (main, 1), (main, 2),
            (ends, 0), (wide, 0), (widths + ends, 1), (widths + ends, 2), (wide, 1),
            (wide, 2)]
    seen, order = set(), []
    for group, seed in plan:
        for c in group:
            key = run_key(c, seed, None)
            if key not in seen:
                seen.add(key)
                order.append(dict(c, seed=seed))
    return order


def run_key(c, seed, epochs):
    nin = f"nin{c['nin']}" if c["nin"] else c["scheme"]
    act = "float" if c["act"] is None else f"a{c['act']}"
    ends = "fpends" if c["fp_ends"] else "enc"
    return f"{nin}-{act}-w{c['width']}-{ends}-e{epochs}-s{seed}"


def command(c, seed, epochs, output):
    """The ``python -m flexor.train`` argument list that trains this run."""
    args = ["--quiet", "--dataset", "fashion-mnist", "--width", str(c["width"]),
            "--scheme", c["scheme"], "--epochs", str(epochs), "--seed", str(seed)]
    if c["nin"]:
        args += ["--nin", str(c["nin"])]
    if c["scheme"] != "fp":
        args += ["--fp-ends" if c["fp_ends"] else "--no-fp-ends", "--flatten", "tiled",
                 "--tile", str(TILE)]
    if c["act"] is not None:
        args += ["--activation-bits", str(c["act"])]
    return args + ["-o", output]


_SPLIT = None


def run(job):
    """Train, export and evaluate one run (in a worker process); returns its result record."""
    import warnings

    global _SPLIT
    from flexor.datasets import load_dataset
    from flexor.inference import evaluate
    from flexor.integer import evaluate_integer
    from flexor.train import RECIPES, train
    from flexor.train.recipes import with_epochs

    c, epochs, cache = job
    key = run_key(c, c["seed"], epochs)
    if _SPLIT is None:
        _SPLIT = load_dataset("fashion-mnist")
    container_path = os.path.join(cache, key + ".npz")
    args = command(c, c["seed"], epochs, container_path)
    start = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Ntap 2 matrices have rank nin - 1, by design
        result = train(with_epochs(RECIPES["fashion-mnist-mlp"], epochs), scheme=c["scheme"],
                       seed=c["seed"], nin=(c["nin"],) if c["nin"] else None,
                       fp_ends=c["fp_ends"], width=c["width"], activation_bits=c["act"],
                       flatten="row-major" if c["scheme"] == "fp" else "tiled",
                       tile=None if c["scheme"] == "fp" else TILE, progress=False,
                       split=_SPLIT, command="python -m flexor.train " + shlex.join(args))
    seconds = time.time() - start
    container = result.container
    data = (_SPLIT.x_test, _SPLIT.y_test)
    golden = evaluate(container, data=data)
    record = dict(c, epochs=epochs, key=key, seconds=seconds,
                  torch_correct=int(result.container.metadata["correct"]),
                  float_correct=golden.correct, test_samples=len(golden.labels),
                  torch_agree=int((golden.predictions == result.predictions).sum()),
                  encrypted_bits=sum(l.stored_bits for l in container.layers
                                     if l.precision == "xor"),
                  stored_bits=sum(l.stored_bits for l in container.layers),
                  weights=sum(l.n_weights for l in container.layers),
                  bits_per_weight=container.bits_per_weight("xor"),
                  integer_correct=None, integer_agree=None, command=args)
    if container.integer is not None:
        integer = evaluate_integer(container, data=data)
        record.update(integer_correct=integer.correct,
                      integer_agree=int((integer.predictions == golden.predictions).sum()))
    container.save(container_path)
    return record


def load_cache(cache, epochs):
    records = {}
    for name in sorted(os.listdir(cache)) if os.path.isdir(cache) else ():
        if name.endswith(".json"):
            with open(os.path.join(cache, name), encoding="utf-8") as file:
                record = json.load(file)
            if record["epochs"] == epochs:
                records[record["key"]] = record
    return records


def save_record(cache, record):
    path = os.path.join(cache, record["key"] + ".json")
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        json.dump(record, file, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)   # a killed sweep never leaves half a record


# -- report -----------------------------------------------------------------------------------

def label(c):
    if c["scheme"] == "fp":
        return "full precision"
    if c["scheme"] == "bwn":
        return "BWN"
    return f"FleXOR Nin {c['nin']}"


def groups(records):
    """Records grouped by cell (every key but the seed)."""
    cells = {}
    for record in records.values():
        key = (record["scheme"], record["nin"], record["act"], record["width"], record["fp_ends"])
        cells.setdefault(key, []).append(record)
    return {key: sorted(rs, key=lambda r: r["seed"]) for key, rs in cells.items()}


def stats(runs, field):
    values = [100 * r[field] / r["test_samples"] for r in runs if r[field] is not None]
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def fmt(stat):
    return "n/a" if stat is None else f"{stat[0]:.2f} ± {stat[1]:.2f}"


def act_name(act):
    return "float" if act is None else f"{act}-bit"


def summary(key, runs):
    scheme, nin, act, width, fp_ends = key
    first = runs[0]
    agree = [r["integer_agree"] / r["test_samples"] for r in runs if r["integer_agree"] is not None]
    return {"label": label(first), "scheme": scheme, "nin": nin, "act": act, "width": width,
            "fp_ends": fp_ends, "seeds": [r["seed"] for r in runs], "n": len(runs),
            "float": stats(runs, "float_correct"), "integer": stats(runs, "integer_correct"),
            "agree_min": min(agree) if agree else None,
            "kbit": first["encrypted_bits"] / 1000 if scheme != "fp" else
            first["stored_bits"] / 1000, "weights": first["weights"],
            "bpw": first["bits_per_weight"], "epochs": first["epochs"],
            "seconds": float(np.mean([r["seconds"] for r in runs]))}


def main_table(summaries):
    lines = [f"| scheme | bits/weight (stored, tiled) | kbit | activations | seeds | float acc. % "
             f"| integer acc. % | integer = float class (min over seeds) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    order = [("fp", None)] + [("bwn", None)] + [("flexor", n) for n in FLEXOR_NIN.values()]
    for scheme, nin in order:
        for act in ACTIVATIONS:
            s = summaries.get((scheme, nin, act, MAIN_WIDTH, False))
            if s is None:
                continue
            bpw = "32 (float)" if scheme == "fp" else f"{s['bpw']:.3f}"
            agree = "" if s["agree_min"] is None else f"{100 * s['agree_min']:.2f} %"
            lines.append(f"| {s['label']} | {bpw} | {s['kbit']:.1f} | {act_name(act)} | "
                         f"{s['n']} | {fmt(s['float'])} | {fmt(s['integer'])} | {agree} |")
    return lines


def width_table(summaries):
    lines = ["| scheme | activations | " + " | ".join(f"W = {w}" for w in WIDTHS) + " |",
             "| --- | --- | " + " | ".join("---" for _ in WIDTHS) + " |"]
    rows = [("fp", None, None)] + [(s, n, a) for a in (2, 1) for s, n in
                                   (("flexor", 6), ("bwn", None))]
    for scheme, nin, act in rows:
        cells = []
        for width in WIDTHS:
            s = summaries.get((scheme, nin, act, width, False))
            if s is None:
                cells.append("not run")
                continue
            acc = s["integer"] or s["float"]
            cells.append(f"{acc[0]:.2f} ± {acc[1]:.2f} ({s['n']}; {s['kbit']:.0f} kbit)")
        name = "full precision" if scheme == "fp" else ("BWN" if scheme == "bwn" else
                                                         "FleXOR 0.6 (Nin 6)")
        lines.append(f"| {name} | {act_name(act)} | " + " | ".join(cells) + " |")
    return lines


def accuracy_of(s):
    """The accuracy a device would give: the integer program's when there is one."""
    return (s["integer"] or s["float"])[0]


def budget_table(summaries):
    lines = ["| budget | best FleXOR | best BWN |", "| --- | --- | --- |"]
    budgets = dict(BUDGETS, **{"shipped-container budget 100 kbit": SHIP_BUDGET_KBIT})
    for name, kbit in sorted(budgets.items(), key=lambda item: item[1]):
        cells = []
        for scheme in ("flexor", "bwn"):
            fits = [s for s in summaries.values() if s["scheme"] == scheme and
                    s["kbit"] <= kbit and s["integer"] is not None]
            if not fits:
                cells.append("none run")
                continue
            best = max(fits, key=accuracy_of)
            cells.append(f"{best['label']}, W {best['width']}, {act_name(best['act'])} "
                         f"activations: {fmt(best['integer'])} % integer "
                         f"({best['n']} seeds, {best['kbit']:.1f} kbit)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def small_table(summaries):
    """Every model with an integer program and at most 100 kbit of weights, best first."""
    lines = ["| model | activations | kbit | weights | seeds | float acc. % | integer acc. % |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    fits = [s for s in summaries.values() if s["integer"] is not None and not s["fp_ends"] and
            s["kbit"] <= SHIP_BUDGET_KBIT]
    for s in sorted(fits, key=accuracy_of, reverse=True):
        lines.append(f"| {s['label']}, W {s['width']} | {act_name(s['act'])} | {s['kbit']:.1f} | "
                     f"{s['weights']} | {s['n']} | {fmt(s['float'])} | {fmt(s['integer'])} |")
    return lines


def ends_costs(width=MAIN_WIDTH, nin=8, nout=10):
    """What a float32 first and last layer hold in a 784-W-W-10 MLP (MACs equal weights)."""
    from flexor.weight_order import chunk_count
    shapes = [(width, 784), (width, width), (10, width)]
    weights = [out * m for out, m in shapes]
    encrypted = [chunk_count("tiled", out, m, nout, TILE) * nin for out, m in shapes]
    ends = weights[0] + weights[2]
    float_bits = 32 * ends + encrypted[1]
    return [f"In `784-{width}-{width}-10` the first and last layer hold {ends} of the "
            f"{sum(weights)} weights and multiply-accumulates per image "
            f"({100 * ends / sum(weights):.1f} %; the first alone "
            f"{100 * weights[0] / sum(weights):.1f} %). Kept in float32 beside a FleXOR Nin {nin} "
            f"middle layer they take {float_bits / 1000:.0f} kbit, "
            f"{100 * 32 * ends / float_bits:.1f} % of the weight memory, against "
            f"{sum(encrypted) / 1000:.1f} kbit with every layer encrypted "
            f"({float_bits / sum(encrypted):.0f}x less), and they need float (or wide integer) "
            f"multipliers for {100 * ends / sum(weights):.1f} % of the MACs.", ""]


def ends_table(summaries):
    lines = ends_costs()
    lines += ["| network | first/last layer | float acc. % | integer acc. % | seeds |",
              "| --- | --- | --- | --- | --- |"]
    for scheme, nin in (("flexor", 8), ("bwn", None)):
        for fp_ends in (False, True):
            s = summaries.get((scheme, nin, 2, MAIN_WIDTH, fp_ends))
            if s is not None:
                lines.append(f"| {s['label']}, W {MAIN_WIDTH}, 2-bit activations | "
                             f"{'float32' if fp_ends else 'encrypted'} | {fmt(s['float'])} | "
                             f"{fmt(s['integer'])} | {s['n']} |")
    return lines


def ship_choice(summaries):
    """Most accurate configuration (integer accuracy, mean over seeds) with every layer
    encrypted, an integer program, at most 100 kbit of encrypted weights and more than
    100 k weights (so that it would not fit at 1 bit per weight)."""
    fits = [s for s in summaries.values() if s["scheme"] != "fp" and not s["fp_ends"] and
            s["integer"] is not None and s["kbit"] <= SHIP_BUDGET_KBIT and
            s["weights"] > SHIP_BUDGET_KBIT * 1000]
    return max(fits, key=accuracy_of) if fits else None


def plot(summaries, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5))
    styles = {"flexor": ("o", "C0", "FleXOR"), "bwn": ("s", "C1", "BWN"),
              "fp": ("^", "C2", "full precision (float32 weights)")}
    for scheme, (marker, color, name) in styles.items():
        points = [s for s in summaries.values() if s["scheme"] == scheme and not s["fp_ends"]]
        ax.scatter([s["kbit"] for s in points], [accuracy_of(s) for s in points], marker=marker,
                   color=color, label=name, alpha=0.75)
    for (name, kbit), style in zip(BUDGETS.items(), ("--", ":")):
        ax.axvline(kbit, color="gray", linestyle=style, label=f"{name} block RAM")
        for scheme, color in (("flexor", "C0"), ("bwn", "C1")):
            fits = [s for s in summaries.values() if s["scheme"] == scheme and
                    s["kbit"] <= kbit and s["integer"] is not None]
            if fits:
                best = max(fits, key=accuracy_of)
                ax.annotate(f"best {styles[scheme][2]} <= {name.split()[0]}: "
                            f"{accuracy_of(best):.2f}%", (best["kbit"], accuracy_of(best)),
                            xytext=(5, -12 if scheme == "bwn" else 6),
                            textcoords="offset points", fontsize=7, color=color)
    ax.set_xscale("log")
    ax.set_xlabel("stored weight bits (kbit; encrypted bits, or 32 per float weight)")
    ax.set_ylabel("test accuracy % (integer program where there is one)")
    ax.set_title("Fashion-MNIST 784-W-W-10, every layer encrypted (mean over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})


def report(records, epochs):
    summaries = {key: summary(key, runs) for key, runs in groups(records).items()}
    seeds = sorted({r["seed"] for r in records.values()})
    seconds = sum(r["seconds"] for r in records.values())
    lines = [f"{len(records)} runs of {epochs} epochs each (seeds {seeds}; {seconds / 3600:.2f} "
             f"CPU hours of training, one thread per run). Mean ± standard deviation over the "
             f"seeds run (the `seeds` column; std 0.00 when only one). \"integer\" is the exact "
             f"integer program on the raw pixels; n/a where the network has float activations "
             f"or float weights (no integer program).", "",
             f"**Main table** (W = {MAIN_WIDTH}, every layer encrypted, tiled order, tile 4):",
             ""]
    lines += main_table(summaries)
    lines += ["", "**Width sweep** (every layer encrypted; integer accuracy where there is one, "
              "(seeds; encrypted kbit, or float32 kbit for full precision)):", ""]
    lines += width_table(summaries)
    lines += ["", "**Most accurate model under each budget** (integer program, mean over seeds; "
              "only the widths run above):", ""]
    lines += budget_table(summaries)
    lines += ["", "**Every model under 100 kbit** (integer program), most accurate first:", ""]
    lines += small_table(summaries)
    lines += ["", "**Float first and last layer** (FleXOR's default) against every layer "
              "encrypted:", ""]
    lines += ends_table(summaries)
    choice = ship_choice(summaries)
    lines += ["", "**Shipped-container choice** (most accurate with every layer encrypted, an "
              "integer program, <= 100 kbit and more than 100 k weights): " +
              ("none yet" if choice is None else
               f"{choice['label']}, W {choice['width']}, {act_name(choice['act'])} activations, "
               f"{choice['kbit']:.1f} kbit, integer {fmt(choice['integer'])} % over "
               f"{choice['n']} seeds.")]
    plot(summaries, os.path.join(DOCS, "fmnist.png"))
    return "\n".join(lines) + "\n", summaries, choice


def write_docs(text):
    results = os.path.join(DOCS, "results.md")
    with open(results, encoding="utf-8") as file:
        document = file.read()
    document, count = re.subn(r"(<!-- fmnist:begin -->\n).*?(<!-- fmnist:end -->)",
                              lambda m: m.group(1) + text + m.group(2), document, flags=re.S)
    if count != 1:
        sys.exit(f"{results}: no <!-- fmnist:begin --> ... <!-- fmnist:end --> markers")
    with open(results, "w", encoding="utf-8") as file:
        file.write(document)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", default=os.path.join(ROOT, "build", "fmnist-sweep"))
    parser.add_argument("--limit", type=int, help="run at most N new runs")
    parser.add_argument("--report", action="store_true", help="only rewrite the docs")
    args = parser.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    records = load_cache(args.cache, args.epochs)
    if not args.report:
        todo = [c for c in tiers() if run_key(c, c["seed"], args.epochs) not in records]
        todo = todo[:args.limit] if args.limit else todo
        print(f"{len(records)} runs cached, {len(todo)} to run", flush=True)
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run, (c, args.epochs, args.cache)) for c in todo]
            for future in as_completed(futures):
                record = future.result()
                save_record(args.cache, record)
                records[record["key"]] = record
                integer = record["integer_correct"]
                print(f"{record['key']}: float {record['float_correct']}, integer "
                      f"{integer}, {record['seconds']:.0f} s", flush=True)
    text, _, choice = report(records, args.epochs)
    print(text)
    write_docs(text)
    if choice is not None:
        print("shipped-container choice:", shlex.join(["python", "-m", "flexor.train"] +
                                                      command(choice, 0, args.epochs,
                                                              "weights/fmnist_mlp.npz")))


if __name__ == "__main__":
    main()
