"""The FPGA boards the decryptor top is built for, with the figures the build flow checks against.

Each :class:`Board` names an amaranth-boards platform and adds what the platform does not say:
how much *initializable* block RAM the device has (the weight ROM must live there: the UP5K's
SPRAM cannot be initialized from the bitstream, so it does not count; it is listed apart, for
the classify engine's image memory), the block geometry used to estimate how many blocks a ROM
of a given width and depth takes, which LEDs show the verdict, and the nextpnr cell names of its
logic, flip-flop and RAM resources for the build report.
"""

import importlib
from typing import NamedTuple

__all__ = ["Board", "BOARDS", "board_by_name", "ram_blocks"]


class Board(NamedTuple):
    """One supported board.

    Attributes
    ----------
    name : str
        The ``--board`` name.
    platform : str
        ``module:Class`` of the amaranth-boards platform.
    device : str
        FPGA device as the platform names it.
    clock_hz : float
        Frequency of the platform's default clock (the design runs on it).
    ram_blocks : int
        Block RAMs of the device.
    ram_block_depth, ram_block_width : int
        Geometry of one block in its widest mode (iCE40: 256 x 16, ECP5 DP16KD: 512 x 36).
    leds : dict
        LED index (``platform.request("led", index)``) for ``"pass"``, ``"fail"`` and
        ``"running"``; ``None`` when the board has no LED for it (running then lights both).
    family : str
        ``"ice40"`` or ``"ecp5"``: selects the tools and the report's cell names.
    classify_leds : dict
        LED indices of the classify application: ``"busy"``, ``"error"`` (``None``: none) and
        ``"label"``, a tuple showing the last class in binary, LSB first.
    extra_resources : str or None
        Attribute of the platform holding resources to add for the classify LEDs.
    spram_blocks : int
        Single-port RAM blocks of 16K x 16 bits (the iCE40 UltraPlus SPRAM, ``SB_SPRAM256KA``;
        0 elsewhere). Not initializable, so no weights there; the classify application puts
        the engine's image memory in them (:func:`boards.classify.engine_options`).
    """
    name: str
    platform: str
    device: str
    clock_hz: float
    ram_blocks: int
    ram_block_depth: int
    ram_block_width: int
    leds: dict
    family: str
    classify_leds: dict
    extra_resources: object = None
    spram_blocks: int = 0

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
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "iCE40UP5K", 12e6,
          30, 256, 16, {"pass": 1, "fail": 0, "running": None}, "ice40",
          {"busy": 1, "error": 0, "label": (2, 3, 4, 5)}, "break_off_pmod", spram_blocks=4),
    # iCEstick: four red LEDs around a green one (LED 4); no button, power-cycle to rerun.
    Board("icestick", "amaranth_boards.icestick:ICEStickPlatform", "iCE40HX1K", 12e6,
          16, 256, 16, {"pass": 4, "fail": 0, "running": 1}, "ice40",
          {"busy": 4, "error": None, "label": (0, 1, 2, 3)}),
    Board("ulx3s-12f", "amaranth_boards.ulx3s:ULX3S_12F_Platform", "LFE5U-12F", 25e6,
          32, 512, 36, {"pass": 0, "fail": 1, "running": 2}, "ecp5",
          {"busy": 6, "error": 7, "label": (0, 1, 2, 3)}),
    Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "LFE5U-85F", 25e6,
          208, 512, 36, {"pass": 0, "fail": 1, "running": 2}, "ecp5",
          {"busy": 6, "error": 7, "label": (0, 1, 2, 3)}),
]}


def board_by_name(name):
    """The :class:`Board` called ``name``; ``ValueError`` listing the known ones otherwise."""
    if name not in BOARDS:
        raise ValueError(f"unknown board {name!r}; supported boards: {', '.join(BOARDS)}")
    return BOARDS[name]


def ram_blocks(board, *, width, depth):
    """Blocks a ROM of ``depth`` words of ``width`` bits takes, in the block's widest mode.

    Yosys may pick a narrower, deeper mode; this count is what the size check uses, so it errs
    on the safe side only when the widest mode is also the densest, which holds for both families.
    """
    columns = -(-width // board.ram_block_width)
    rows = -(-depth // board.ram_block_depth)
    return columns * rows
