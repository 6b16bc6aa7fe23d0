"""Golden-model decrypt throughput: the fast byte-table path against the obviously-correct
row-by-row reference, on the same inputs, in the same run.

    python benchmarks/golden_throughput.py [--weights 10000000] [--nin 8] [--nout 10]

Prints decrypted weights per second for both and their ratio, and checks that both agree on
every bit.
"""

import argparse
import time
import warnings

import numpy as np

import flexor
from flexor import RankWarning, XorConfig


def best_time(function, config, data, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(config, data)
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'nin':>4} {'nout':>4} {'ntap':>5} {'chunks':>10} {'reference w/s':>14} "
          f"{'fast w/s':>14} {'fast packed w/s':>16} {'ratio':>7} {'packed ratio':>12}")
    rng = np.random.default_rng(args.seed)
    for nin, nout, ntap in [(8, 10, 2), (16, 20, 2), (12, 20, 2), (20, 20, "dense")]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RankWarning)
            config = XorConfig.random(nin, nout, ntap, args.seed)
        chunks = -(-args.weights // nout)
        bits = rng.integers(0, 2, size=(chunks, nin), dtype=np.uint8)
        packed = flexor.pack_bits(bits)
        t_ref, reference = best_time(flexor.decrypt_reference, config, bits, args.repeats)
        t_fast, fast = best_time(flexor.decrypt, config, bits, args.repeats)
        t_packed, out = best_time(flexor.decrypt_packed, config, packed, args.repeats)
        assert np.array_equal(reference, fast), "fast path disagrees with the reference"
        assert np.array_equal(flexor.unpack_bits(out, nout), reference)
        weights = chunks * nout
        print(f"{nin:>4} {nout:>4} {ntap!s:>5} {chunks:>10} {weights / t_ref:>14.3g} "
              f"{weights / t_fast:>14.3g} {weights / t_packed:>16.3g} {t_ref / t_fast:>6.1f}x "
              f"{t_ref / t_packed:>11.1f}x")


if __name__ == "__main__":
    main()
