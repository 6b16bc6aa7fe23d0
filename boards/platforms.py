"""The FPGA boards the board applications are built for, and what each FPGA family needs.

A :class:`Board` is one entry: the amaranth-boards platform, which knows the device and the
default clock (read from it, never repeated here), plus what the platform does not say: how much
*initializable* block RAM the device has (the weight ROM must live there: the UP5K's SPRAM
cannot be initialized from the bitstream, so it does not count; it is listed apart, for the
classify engine's image memory) and which LEDs show what. A :class:`Family` is one record per
FPGA family: its block geometry (to estimate how many blocks a memory takes), its build tools,
programmer, bitstream suffix and the cell names of the tools' reports. A board of a known family
is one :data:`BOARDS` entry; a new family is one :data:`FAMILIES` record.
"""

import functools
import importlib
from typing import NamedTuple

from flexor.errors import InputError

__all__ = ["Family", "FAMILIES", "Board", "BOARDS", "board_by_name", "ram_blocks"]


class Family(NamedTuple):
    """What every board of one FPGA family shares.

    Attributes
    ----------
    name : str
        ``"ice40"`` or ``"ecp5"``.
    device_prefix : str
        Devices whose name (as amaranth-boards gives it) starts with this belong to the family.
    ram_block_depth, ram_block_width : int
        Geometry of one block RAM in its widest mode (iCE40: 256 x 16, ECP5 DP16KD: 512 x 36).
    tools : tuple of str
        The tools a build runs, as Amaranth names them (each is found through the environment
        variable of the same name in capitals, ``nextpnr-ice40`` -> ``NEXTPNR_ICE40``).
    programmer : tuple of str
        Environment variable, default command and install hint of the programmer.
    bitstream_suffix : str
    cells : dict
        Cell names in nextpnr's utilisation and Yosys' ``stat``: ``logic`` (logic cells),
        ``ram`` (block RAM), ``lut``, ``ff_prefix`` (every flip-flop cell starts with it),
        ``spram`` (``None`` where there is none), ``dsp``.
    """
    name: str
    device_prefix: str
    ram_block_depth: int
    ram_block_width: int
    tools: tuple
    programmer: tuple
    bitstream_suffix: str
    cells: dict


FAMILIES = {family.name: family for family in [
    Family("ice40", "iCE40", 256, 16, ("yosys", "nextpnr-ice40", "icepack"),
           ("ICEPROG", "iceprog", "apt-get install fpga-icestorm"), ".bin",
           {"logic": "ICESTORM_LC", "ram": "ICESTORM_RAM", "lut": "SB_LUT4",
            "ff_prefix": "SB_DFF", "spram": "ICESTORM_SPRAM", "dsp": "ICESTORM_DSP"}),
    Family("ecp5", "LFE5U", 512, 36, ("yosys", "nextpnr-ecp5", "ecppack"),
           ("OPENFPGALOADER", "openFPGALoader", "apt-get install openfpgaloader"), ".bit",
           {"logic": "TRELLIS_COMB", "ram": "DP16KD", "lut": "LUT4", "ff_prefix": "TRELLIS_FF",
            "spram": None, "dsp": "MULT18X18D"}),
]}


@functools.cache
def _platform_facts(platform):
    """``(device, default clock in Hz)`` of the amaranth-boards platform ``module:Class``."""
    module, name = platform.split(":")
    instance = getattr(importlib.import_module(module), name)()
    return instance.device, instance.default_clk_frequency


class Board(NamedTuple):
    """One supported board.

    Attributes
    ----------
    name : str
        The ``--board`` name.
    platform : str
        ``module:Class`` of the amaranth-boards platform.
    ram_blocks : int
        Block RAMs of the device (amaranth-boards does not say).
    leds : dict
        LED index (``platform.request("led", index)``) for ``"pass"``, ``"fail"`` and
        ``"running"``; ``None`` when the board has no LED for it (running then lights both).
    classify_leds : dict
        LED indices of the classify application: ``"busy"``, ``"error"`` (``None``: none) and
        ``"label"``, a tuple showing the last class in binary, LSB first.
    extra_resources : str or None
        Attribute of the platform holding resources to add for the classify LEDs.
    spram_blocks : int
        Single-port RAM blocks of 16K x 16 bits (the iCE40 UltraPlus SPRAM, ``SB_SPRAM256KA``;
        0 elsewhere). Not initializable, so no weights there; the classify application puts
        the engine's image memory in them (:func:`boards.classify.engine_options`).
    device, clock_hz, family
        Read from the platform: its device, its default clock's frequency (the design runs on
        it) and the :class:`Family` the device belongs to.
    """
    name: str
    platform: str
    ram_blocks: int
    leds: dict
    classify_leds: dict
    extra_resources: object = None
    spram_blocks: int = 0

    @property
    def device(self):
        return _platform_facts(self.platform)[0]

    @property
    def clock_hz(self):
        return _platform_facts(self.platform)[1]

    @property
    def family(self):
        device = self.device
        for family in FAMILIES.values():
            if device.startswith(family.device_prefix):
                return family
        raise ValueError(f"board {self.name}: no family for device {device!r}")

    @property
    def ram_block_depth(self):
        return self.family.ram_block_depth

    @property
    def ram_block_width(self):
        return self.family.ram_block_width

    @property
    def ram_block_bits(self):
        """Bits in one block: 4 kbit on iCE40, 18 kbit on ECP5 (36 x 512 including parity)."""
        return self.ram_block_depth * self.ram_block_width

    @property
    def ram_bits(self):
        """Initializable block RAM of the device, in bits."""
        return self.ram_blocks * self.ram_block_bits

    def make_platform(self):
        """A fresh instance of the amaranth-boards platform."""
        module, name = self.platform.split(":")
        return getattr(importlib.import_module(module), name)()


BOARDS = {board.name: board for board in [
    # iCEBreaker: red LED 0 (pin 11), green LED 1 (pin 37), user button 0, FTDI UART; the
    # break-off board's five LEDs are 2 .. 6 once its resources are added.
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", ram_blocks=30,
          leds={"pass": 1, "fail": 0, "running": None},
          classify_leds={"busy": 1, "error": 0, "label": (2, 3, 4, 5)},
          extra_resources="break_off_pmod", spram_blocks=4),
    # iCEstick: four red LEDs around a green one (LED 4); no button, power-cycle to rerun.
    Board("icestick", "amaranth_boards.icestick:ICEStickPlatform", ram_blocks=16,
          leds={"pass": 4, "fail": 0, "running": 1},
          classify_leds={"busy": 4, "error": None, "label": (0, 1, 2, 3)}),
    Board("ulx3s-12f", "amaranth_boards.ulx3s:ULX3S_12F_Platform", ram_blocks=32,
          leds={"pass": 0, "fail": 1, "running": 2},
          classify_leds={"busy": 6, "error": 7, "label": (0, 1, 2, 3)}),
    Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", ram_blocks=208,
          leds={"pass": 0, "fail": 1, "running": 2},
          classify_leds={"busy": 6, "error": 7, "label": (0, 1, 2, 3)}),
]}


def board_by_name(name):
    """The :class:`Board` called ``name``; ``ValueError`` listing the known ones otherwise."""
    if name not in BOARDS:
        raise InputError(f"unknown board {name!r}; supported boards: {', '.join(BOARDS)}")
    return BOARDS[name]


def ram_blocks(board, *, width, depth):
    """Blocks a ROM of ``depth`` words of ``width`` bits takes, in the block's widest mode.

    Yosys may pick a narrower, deeper mode; this count is what the size check uses, so it errs
    on the safe side only when the widest mode is also the densest, which holds for both families.
    """
    columns = -(-width // board.ram_block_width)
    rows = -(-depth // board.ram_block_depth)
    return columns * rows
