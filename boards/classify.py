"""The classify application: the board answers "what is this image?" from encrypted weights held
in its own block RAM.

:class:`ClassifyApp` is all of the logic and has no pins, so the simulation runs exactly what
the board runs; :class:`ClassifyTop` connects it to a board's clock, UART and LEDs::

    rx ─> UartRx ─> RequestReceiver ─ pixels ─> hdl.InferenceEngine ─ result ─┐
                         └────────── verdict (tag, intact?) ──────────────> AnswerSender ─> UartTx ─> tx
    WeightRom (repeat) ─ desc, data ─> (the engine's decryptor)

The weight memory streams every layer once per image, over and over: the engine takes the
weights only while it has an image, so its backpressure alone paces the memory. The protocol is
in :mod:`boards.protocol`. On a board with SPRAM (the iCEBreaker) :func:`engine_options` moves
the engine's image memory there and a few constant rows into logic, so that the weights keep
the block RAM.
"""

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from flexor.errors import InputError
from flexor.integer import IntegerProgram
from flexor.network import StreamedLayer, StreamedNetwork
from hdl.engine import InferenceEngine

from .image import MemoryTooSmall, WeightImage, word_width
from .platforms import ram_blocks
from .protocol import AnswerSender, RequestReceiver
from .uart import UartRx, UartTx, check_divisor, uart_divisor
from .weight_rom import WeightRom

__all__ = ["DEFAULT_BAUD", "ClassifyApp", "ClassifyTop", "streamed_network", "classify_image",
           "engine_options", "memory_budget", "single_port_budget", "check_classify_fits"]

#: Baud rate of the classify protocol: exact from 12 and 25 MHz, and within what the boards'
#: FTDI bridges (FT2232H, FT231X) make exactly.
DEFAULT_BAUD = 1_000_000


def streamed_network(container):
    """The :class:`flexor.network.StreamedNetwork` of a container with an integer program (every
    layer encrypted with one bit-plane, in the tiled order)."""
    program = IntegerProgram.from_container(container)
    layers = []
    for step, integer in zip(container.integer, program.layers):
        layer = container.layers[step.layer]
        if layer.flatten != "tiled" or len(layer.planes) != 1:
            raise InputError(f"layer {layer.name}: the engine needs one bit-plane in the tiled "
                             f"order, not {len(layer.planes)} in {layer.flatten!r}")
        layers.append(StreamedLayer(config=layer.planes[0].config, tile=layer.tile,
                                    bits=layer.planes[0].bits, integer=integer))
    return StreamedNetwork(container.configs, layers)


def classify_image(network, lanes):
    """The weight memory for ``network``: one pass of its layers as the engine takes them."""
    configs = network.configs
    return WeightImage.build(configs, network.stream_layers(), width=word_width(configs, lanes))


#: Constant rows past the last whole block of block RAM are built into logic when at most this
#: many (a few LUT4s a bit; 10 rows for the shipped Fashion-MNIST network's 266).
LOGIC_ROWS_LIMIT = 32


def engine_options(board, network):
    """The :class:`hdl.InferenceEngine` memory options of the classify application on ``board``:
    none, unless the board has single-port RAM (the iCE40 UltraPlus SPRAM). Then the image
    memory goes there, as many 16-bit blocks as the board has and its word needs, and constant
    rows past the last whole block RAM go into logic (at most :data:`LOGIC_ROWS_LIMIT`)."""
    if not board.spram_blocks:
        return {}
    program = network.program
    image_bits = network.nout * program.input_bits
    options = {"image_single_port_blocks": min(board.spram_blocks, -(-image_bits // 16))}
    rows = sum(layer.outputs for layer in program.layers)
    spare = rows % board.ram_block_depth
    if rows > board.ram_block_depth and spare <= LOGIC_ROWS_LIMIT:
        options["constant_memory_rows"] = rows - spare
    return options


def memory_budget(board, image, engine):
    """``{memory: (width, depth, blocks)}`` of the weight memory and the engine's buffers in the
    board's block RAM (each in the block's widest mode, as :func:`boards.platforms.ram_blocks`)."""
    budget = {"weights": (image.width, len(image.words))}
    budget.update({name: (width, depth) for name, (depth, width) in engine.buffers.items()})
    return {name: (width, depth, ram_blocks(board, width=width, depth=depth))
            for name, (width, depth) in budget.items()}


def single_port_budget(engine):
    """``{memory: (width, depth, blocks)}`` of the engine's buffers in single-port RAM blocks
    of 16 bits (:attr:`hdl.InferenceEngine.single_port_buffers`)."""
    return {name: (width, depth, -(-width // 16))
            for name, (depth, width) in engine.single_port_buffers.items()}


def check_classify_fits(board, image, engine):
    """Raise :class:`~boards.image.MemoryTooSmall` unless the weights and the engine's buffers
    fit in ``board``'s block RAM and single-port RAM; the message lists what each needs."""
    image.check_fits(board)
    budget = memory_budget(board, image, engine)
    blocks = sum(entry[2] for entry in budget.values())
    if blocks > board.ram_blocks:
        parts = ", ".join(f"{name} {depth} x {width} bits: {count}"
                          for name, (width, depth, count) in budget.items())
        if engine.constant_logic_rows:
            parts += f"; {engine.constant_logic_rows} constant rows in logic"
        raise MemoryTooSmall(
            f"the classify application needs {blocks} blocks of {board.ram_block_bits} bits of "
            f"block RAM ({parts}) but the {board.device} on {board.name} has "
            f"{board.ram_blocks}")
    single = single_port_budget(engine)
    needed = sum(entry[2] for entry in single.values())
    if needed > board.spram_blocks:
        parts = ", ".join(f"{name} {depth} x {width} bits: {count}"
                          for name, (width, depth, count) in single.items())
        raise MemoryTooSmall(
            f"the classify application needs {needed} single-port RAM blocks of 16 bits "
            f"({parts}) but the {board.device} on {board.name} has {board.spram_blocks}")


class ClassifyApp(wiring.Component):
    """Classifies the images that arrive on the UART and sends back class and logits.

    Parameters
    ----------
    network : :class:`flexor.network.StreamedNetwork`
    lanes : int
        Chunks the decryptor produces and rows the engine accumulates per cycle.
    divisor : int
        Clock cycles per UART bit.
    image : :class:`~boards.image.WeightImage`, optional
        The weight memory's contents; default :func:`classify_image` of the network (tests pass
        a damaged copy).
    engine_options : dict, optional
        Memory options of :class:`hdl.InferenceEngine` (:func:`engine_options` of the board).

    Attributes
    ----------
    network, lanes, divisor, image, engine_options
        The parameters.
    engine : :class:`hdl.InferenceEngine`

    Members
    -------
    rx : ``In(1, init=1)``
        UART receive line.
    tx : ``Out(1, init=1)``
        UART transmit line.
    busy : ``Out(1)``
        A request is being received, classified or answered.
    error : ``Out(1)``
        The last answer did not have status OK (a damaged request, an engine error).
    label : ``Out(range(classes))``
        The class of the last OK answer.
    """

    def __init__(self, *, network, lanes=1, divisor, image=None, engine_options=None):
        self._engine_options = dict(engine_options or {})
        self._engine = InferenceEngine(network=network, width=word_width(network.configs, lanes),
                                       lanes=lanes, **self._engine_options)
        if image is None:
            image = classify_image(network, lanes)
        if not isinstance(image, WeightImage) or image.width != self._engine.width:
            raise ValueError(f"image must be a boards.image.WeightImage of {self._engine.width}-"
                             f"bit words, not {image!r:.80}")
        self._network, self._lanes, self._image = network, lanes, image
        self._divisor = check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "error": Out(1), "label": Out(range(network.program.classes))})

    network = property(lambda self: self._network)
    lanes = property(lambda self: self._lanes)
    divisor = property(lambda self: self._divisor)
    image = property(lambda self: self._image)
    engine = property(lambda self: self._engine)
    engine_options = property(lambda self: dict(self._engine_options))

    def elaborate(self, platform):
        m = Module()
        program = self._network.program
        m.submodules.engine = engine = self._engine
        m.submodules.rom = rom = WeightRom(image=self._image, repeat=True)
        wiring.connect(m, rom.desc, engine.desc)
        wiring.connect(m, rom.data, engine.data)

        m.submodules.uart_rx = uart_rx = UartRx(divisor=self._divisor)
        m.submodules.receiver = receiver = RequestReceiver(pixels=program.inputs)
        m.d.comb += [uart_rx.rx.eq(self.rx), receiver.line_error.eq(uart_rx.error)]
        wiring.connect(m, uart_rx.o, receiver.i)
        wiring.connect(m, receiver.pixels, engine.image)

        m.submodules.sender = sender = AnswerSender(classes=program.classes,
                                                    logit_bits=engine.logit_bits)
        m.submodules.uart_tx = uart_tx = UartTx(divisor=self._divisor)
        wiring.connect(m, receiver.verdict, sender.verdict)
        wiring.connect(m, engine.result, sender.result)
        wiring.connect(m, sender.o, uart_tx.i)
        engine_error = Signal()
        m.d.sync += engine_error.eq(engine.error.as_value().any())
        m.d.comb += [sender.engine_error.eq(engine_error), self.tx.eq(uart_tx.tx)]

        m.d.sync += self.busy.eq(receiver.busy | sender.busy)
        with m.If(sender.verdict.valid & sender.verdict.ready):
            ok = sender.verdict.payload.ok & ~engine_error
            m.d.sync += self.error.eq(~ok)
            with m.If(ok):
                m.d.sync += self.label.eq(sender.result.payload.cls)
        return m


class ClassifyTop(Elaboratable):
    """:class:`ClassifyApp` on a board: its default clock, first UART and the classify LEDs,
    the engine's memories as :func:`engine_options` places them on the board.

    Parameters
    ----------
    network : :class:`flexor.network.StreamedNetwork`
    lanes : int
    board : :class:`boards.platforms.Board`
        For its LEDs (:attr:`~boards.platforms.Board.classify_leds`) and any resources to add
        to the platform (the iCEBreaker's break-off LED board).
    baud : int

    Attributes
    ----------
    app : :class:`ClassifyApp`
        The logic, built for the board's clock.
    """

    def __init__(self, *, network, lanes=1, board, baud=DEFAULT_BAUD):
        self._board = board
        self._app = ClassifyApp(network=network, lanes=lanes,
                                divisor=uart_divisor(board.clock_hz, baud),
                                engine_options=engine_options(board, network))

    app = property(lambda self: self._app)

    def elaborate(self, platform):
        m = Module()
        board = self._board
        if board.extra_resources:
            platform.add_resources(getattr(platform, board.extra_resources))
        m.submodules.app = app = self._app
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [app.rx.eq(rx.i), tx.o.eq(app.tx)]
        leds = board.classify_leds
        shown = [("busy", leds["busy"], app.busy), ("error", leds["error"], app.error)]
        shown += [(f"label{k}", index, app.label[k]) for k, index in enumerate(leds["label"])
                  if k < len(app.label)]
        for name, index, value in shown:
            if index is None:
                continue
            m.submodules[f"led_{name}"] = led = io.Buffer(
                "o", platform.request("led", index, dir="-"))
            m.d.comb += led.o.eq(value)
        return m
