"""LUT levels in front of every flip-flop input of a netlist that Yosys synthesized for the
iCE40 or the ECP5 (``write_json`` / ``synth_* -json``).

    python benchmarks/lut_depth.py build/bench-decryptor-fmax/ice40-pipelined-8-10-w32-l4/top.json
    python benchmarks/lut_depth.py top.json --deeper-than 3      # list the inputs deeper than 3

A LUT4 counts 1; the ECP5's PFUMX and L6MUX21 (which widen a LUT to 5 and 6 inputs in the same
slice) count 0.3; a carry cell counts 0.25. Flip-flops, block RAMs and I/O cells start a path at
0. The histogram rounds each input's depth to the nearest level. The figure is a logic depth,
not a delay: routing, which on the iCE40 costs more than the LUT it leads to, is not in it.
"""

import argparse
import collections
import json
import sys

#: Cells whose outputs start a path.
SOURCES = ("DFF", "TRELLIS_FF", "SB_IO", "TRELLIS_IO", "SB_GB", "SB_RAM40_4K", "DP16KD",
           "SB_SPRAM256KA")
#: Depth each combinational cell adds; any other cell counts as a LUT.
COST = {"SB_LUT4": 1.0, "LUT4": 1.0, "PFUMX": 0.3, "L6MUX21": 0.3, "SB_CARRY": 0.25,
        "CCU2C": 0.25}
#: Clock inputs, which are not paths.
CLOCKS = ("C", "CLK")


def _starts_path(cell_type):
    return any(name in cell_type for name in SOURCES)


def _is_flip_flop(cell_type):
    return "DFF" in cell_type or cell_type == "TRELLIS_FF"


def lut_depths(netlist):
    """``[(depth, flip-flop, port)]`` for every flip-flop input of the top module of the Yosys
    JSON ``netlist`` (a dict), deepest first.

    Raises
    ------
    ValueError
        The netlist has no module marked ``top`` or a combinational loop.
    """
    tops = [module for module in netlist.get("modules", {}).values()
            if module.get("attributes", {}).get("top")]
    if len(tops) != 1:
        raise ValueError(f"the netlist has {len(tops)} top modules, not 1")
    cells = tops[0]["cells"]
    drivers = {}
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "output":
                for bit in bits:
                    drivers[bit] = name
    depth_of = {}
    visiting = set()

    def depth(bit):
        name = drivers.get(bit) if not isinstance(bit, str) else None
        if name is None or _starts_path(cells[name]["type"]):
            return 0.0
        if bit not in depth_of:
            if bit in visiting:
                raise ValueError(f"combinational loop through {name}")
            visiting.add(bit)
            cell = cells[name]
            depth_of[bit] = COST.get(cell["type"], 1.0) + max(
                (depth(b) for port, bits in cell["connections"].items()
                 if cell["port_directions"].get(port) == "input" for b in bits), default=0.0)
            visiting.discard(bit)
        return depth_of[bit]

    ends = [(depth(bit), name, port)
            for name, cell in cells.items() if _is_flip_flop(cell["type"])
            for port, bits in cell["connections"].items()
            if cell["port_directions"].get(port) == "input" and port not in CLOCKS
            for bit in bits]
    return sorted(ends, key=lambda end: -end[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("netlist", help="Yosys JSON netlist")
    parser.add_argument("--deeper-than", type=float, metavar="LEVELS",
                        help="also list the flip-flop inputs deeper than LEVELS")
    args = parser.parse_args(argv)
    try:
        with open(args.netlist) as file:
            ends = lut_depths(json.load(file))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        # json.JSONDecodeError is a ValueError; a JSON file that is not a Yosys netlist fails
        # with one of the others.
        print(f"lut_depth: {args.netlist}: not a readable Yosys JSON netlist ({error})",
              file=sys.stderr)
        return 2
    histogram = collections.Counter(round(depth) for depth, _, _ in ends)
    print("LUT levels: flip-flop inputs  " +
          "  ".join(f"{level}: {count}" for level, count in sorted(histogram.items())))
    if args.deeper_than is not None:
        for depth, name, port in ends:
            if depth <= args.deeper_than:
                break
            print(f"{depth:5.2f}  {name}.{port}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
