"""The inference engine: decrypted weight chunks in, integer logits and a class out, at full rate.

Structure (one clock domain, ``sync``)::

    desc, data ─> Decryptor ─> beats of L chunks ──┐
    image ─> loader ─> image memory (2 slots) ─────┴─> L lane sums ─> T accumulators ─> drain
       hidden memory (2 slots) <─ packer <─ Requantizer <─ drain (one row per cycle) <─┘
                               result <─ logits + running argmax <─┘ (last layer)

Every layer is stored in the ``tiled`` weight order with ``T % L == 0`` (``docs/engine.md``), so
each beat is ``L`` rows of one column chunk ``c``: one activation word (``nout`` activations, a
memory word) feeds all ``L`` lanes. A lane adds ``+a`` or ``-a`` per weight bit as
``2 * sum(b_i * a_i) - sum(a_i)``, the last sum shared by the lanes. The ``T`` accumulators of a
tile are a ring of ``T / L`` groups of ``L``: each beat updates the head group and rotates it to
the back, so no multiplexer picks a row. A tile's last column writes its ``T`` final sums into
the drain (another ring), which feeds the :class:`Requantizer` one row per cycle while the next
tile accumulates; rows past ``out`` (padding of the last tile) are dropped there. Hidden outputs
are packed ``nout`` to a word into the hidden memory; the last layer's go to the result.

The activation word of the current column is the memory's read register itself: it is read once
when a layer starts and once at the last beat of every column, never copied. Layers run one
after the other (a layer needs all of the previous one's outputs); the image memory has two
slots, so the next image loads while the current one runs.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from flexor.integer import MULT_BITS, signed_bits
from flexor.network import StreamedNetwork
from flexor.parameters import check_int

from .decryptor import Decryptor, data_layout, descriptor_layout
from .single_port import SPRAM_DEPTH, SPRAM_WIDTH, SharedPortMemory

__all__ = ["InferenceEngine", "Requantizer", "engine_error_layout", "result_layout",
           "trace_layout", "lane_sum"]


def _tree_sum(terms):
    """Sum of ``terms`` as a balanced tree of adders (a chain would be ``len(terms)`` deep)."""
    terms = list(terms)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def lane_sum(bits, activations, total):
    """One lane's ``sum_i (2*b_i - 1) * a_i`` as ``2 * sum_i b_i * a_i - total``, where ``total``
    is ``sum_i a_i``, shared by all lanes."""
    return (_tree_sum(Mux(bit, a, 0) for bit, a in zip(bits, activations)) << 1) - total


def logit_bits(layer):
    """Signed width of a last layer's logits: its sum's width minus the shift (at least 1)."""
    return max(1, layer.sum_bits - layer.shift)


def result_layout(classes, bits):
    """Result payload: ``cls`` in the low bits, then logit ``i`` in ``logits[i*bits:(i+1)*bits]``
    (two's complement)."""
    return data.StructLayout({"cls": max(1, bits_for(classes - 1)), "logits": classes * bits})


def engine_error_layout():
    """Sticky error flags: the decryptor's two, and ``bad_beat`` (a beat whose ``count`` is not
    ``lanes`` or whose ``last`` is not on the layer's final beat: the weight stream does not
    match the network)."""
    return data.StructLayout({"bad_config": 1, "zero_chunks": 1, "bad_beat": 1})


def trace_layout(layers, rows, value_bits):
    """One requantized output: ``layer``, output ``row``, ``value`` (signed)."""
    return data.StructLayout({"layer": range(max(layers, 2)), "row": range(max(rows, 2)),
                              "value": signed(value_bits)})


def _check_network(network, lanes):
    if not isinstance(network, StreamedNetwork):
        raise TypeError(f"network must be a flexor.network.StreamedNetwork, not {network!r}")
    for index, layer in enumerate(network.layers):
        if layer.tile % lanes:
            raise ValueError(f"layers[{index}]: tile {layer.tile} must be a multiple of lanes "
                             f"{lanes}")


def _check_memory_rows(name, rows):
    """``rows``, a positive integer or ``None`` (all rows in memory)."""
    return None if rows is None else check_int(name, rows)


class Requantizer(wiring.Component):
    """Requantization of accumulators, one row per cycle: ``(mult * acc + offset) >> shift``,
    then the clamp of a hidden layer; pipelined, :data:`LATENCY` cycles.

    Parameters
    ----------
    program : :class:`flexor.integer.IntegerProgram`
        Its layers' ``mult``, ``offset`` and ``shift`` (``q = 1``) are built in: ``mult`` and
        ``offset`` in one read-only memory of ``sum(out)`` words of ``16 + offset_bits`` bits.
    memory_rows : int or None, keyword-only
        Rows of that memory (the first ones); the rows past it are built into logic, a
        registered multiplexer read in the same cycle. ``None`` (default): all rows in memory.

    Members
    -------
    i : ``In(stream.Signature(input_layout, always_ready=True))``
        ``layer``, ``row``, ``acc`` (signed), ``last`` (the layer's final row).
    o : ``Out(stream.Signature(output_layout, always_ready=True))``
        ``layer``, ``row``, ``value`` (signed: the activation of a hidden layer, ``0 ..
        2**out_bits - 1``, or the logit of the last), ``last``; :data:`LATENCY` cycles after
        ``i``.
    """

    LATENCY = 3

    def __init__(self, program, *, memory_rows=None):
        self._program = program
        layers = program.layers
        rows = sum(layer.outputs for layer in layers)
        memory_rows = _check_memory_rows("memory_rows", memory_rows)
        self._memory_rows = rows if memory_rows is None else min(rows, memory_rows)
        self._acc_bits = max(layer.acc_bits for layer in layers)
        self._sum_bits = max(layer.sum_bits for layer in layers)
        self._offset_bits = max(signed_bits(abs(layer.offset).max()) for layer in layers)
        self._value_bits = max([logit_bits(layers[-1])] +
                               [layer.out_bits + 1 for layer in layers[:-1]])
        rows = max(layer.outputs for layer in layers)
        tags = {"layer": range(max(len(layers), 2)), "row": range(max(rows, 2)), "last": 1}
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({**tags, "acc": signed(self._acc_bits)}),
                                     always_ready=True)),
            "o": Out(stream.Signature(
                data.StructLayout({**tags, "value": signed(self._value_bits)}),
                always_ready=True)),
        })

    program = property(lambda self: self._program)
    acc_bits = property(lambda self: self._acc_bits)
    sum_bits = property(lambda self: self._sum_bits)
    offset_bits = property(lambda self: self._offset_bits)
    value_bits = property(lambda self: self._value_bits)
    memory_rows = property(lambda self: self._memory_rows)

    @property
    def logic_rows(self):
        """Rows of constants built into logic (past :attr:`memory_rows`)."""
        return sum(layer.outputs for layer in self._program.layers) - self._memory_rows

    @property
    def constant_bits(self):
        """Bits of the constants memory."""
        return (MULT_BITS + self._offset_bits) * sum(l.outputs for l in self._program.layers)

    def elaborate(self, platform):
        m = Module()
        layers = self._program.layers
        word_mask = (1 << MULT_BITS) - 1
        init, bases = [], []
        for layer in layers:
            bases.append(len(init))
            init += [(int(mult) & word_mask) | (int(offset) << MULT_BITS)
                     & ((1 << (MULT_BITS + self._offset_bits)) - 1)
                     for mult, offset in zip(layer.mult[0], layer.offset)]
        rows = self._memory_rows
        m.submodules.constants = constants = memory.Memory(
            shape=unsigned(MULT_BITS + self._offset_bits), depth=rows, init=init[:rows])
        read = constants.read_port()
        base = Signal(range(len(init)))
        with m.Switch(self.i.payload.layer):
            for index in range(len(layers)):
                with m.Case(index):
                    m.d.comb += base.eq(bases[index])
        m.d.comb += read.addr.eq(base + self.i.payload.row)
        constant = read.data
        if rows < len(init):
            # The rows past the memory: a registered multiplexer, read in the same cycle. Its
            # address is recomputed at full width: the memory's own is only as wide as its rows.
            address = Signal.like(base)
            from_logic = Signal()
            logic_word = Signal.like(read.data)
            m.d.comb += address.eq(base + self.i.payload.row)
            m.d.sync += from_logic.eq(address >= rows)
            with m.Switch(address):
                for row in range(rows, len(init)):
                    with m.Case(row):
                        m.d.sync += logic_word.eq(init[row])
            constant = Mux(from_logic, logic_word, read.data)

        # Stage 1: the row beside its constants (read this cycle from the address above).
        stage1 = Signal.like(self.i.payload)
        valid1 = Signal()
        m.d.sync += [stage1.eq(self.i.payload), valid1.eq(self.i.valid)]
        mult = constant[:MULT_BITS].as_signed()
        offset = constant[MULT_BITS:].as_signed()
        # Stage 2: the product (a register after the multiplier, as the DSP blocks want).
        product = Signal(signed(self._sum_bits))   # |mult * acc| <= the sum's bound: exact
        offset2 = Signal(signed(self._offset_bits))
        stage2 = Signal.like(self.i.payload)
        valid2 = Signal()
        m.d.sync += [product.eq(mult * stage1.acc), offset2.eq(offset), stage2.eq(stage1),
                     valid2.eq(valid1)]
        # Stage 3: offset, floor shift, clamp.
        total = Signal(signed(self._sum_bits))
        m.d.comb += total.eq(product + offset2)
        value = Signal(signed(self._value_bits))
        with m.Switch(stage2.layer):
            for index, layer in enumerate(layers):
                with m.Case(index):
                    shifted = total >> layer.shift
                    if layer.out_bits is None:
                        m.d.comb += value.eq(shifted)
                    else:
                        top = 2 ** layer.out_bits - 1
                        over = shifted[layer.out_bits:len(shifted) - 1].any()
                        m.d.comb += value.eq(Mux(shifted[-1], 0,
                                                 Mux(over, top, shifted[:layer.out_bits])))
        m.d.sync += [self.o.valid.eq(valid2), self.o.payload.layer.eq(stage2.layer),
                     self.o.payload.row.eq(stage2.row), self.o.payload.last.eq(stage2.last),
                     self.o.payload.value.eq(value)]
        return m


class InferenceEngine(wiring.Component):
    """FleXOR inference: the decryptor and the datapath behind it, one beat per cycle.

    The constructor (``network``, ``width``, ``lanes``, keyword-only) and the members below are
    the stable interface boards build on (``docs/engine.md``); ``result`` and ``trace`` payloads
    are sized from the network.

    Parameters
    ----------
    network : :class:`flexor.network.StreamedNetwork`
        Layer shapes, tiles, activation widths and integer constants (built in); every tile a
        multiple of ``lanes``.
    width : int
        Memory word width of the weight stream: 8, 16, 32 or 64.
    lanes : int
        Chunks per decryptor beat, rows accumulated per cycle.
    image_single_port_blocks : int
        Default 0. With ``n > 0`` the low ``16 n`` bits of the image memory go into ``n``
        single-port blocks shaped like the iCE40 UltraPlus SPRAM (:class:`hdl.SinglePortRam`:
        ``SB_SPRAM256KA`` on that platform), the rest stay in a dual-port memory
        (:class:`hdl.SharedPortMemory`): the loader's words wait in a one-word queue for a cycle
        without an image read, ``image.ready`` drops only while a completed word finds the
        queue full, and layer 0 starts only once the queue is empty. At most
        ``ceil(nout * input_bits / 16)``.
    constant_memory_rows : int or None
        Default ``None`` (all). Rows of the requantizer's constants kept in memory; the others
        are built into logic (:class:`Requantizer` ``memory_rows``).

    Attributes
    ----------
    network, width, lanes, classes, logit_bits, image_single_port_blocks, constant_memory_rows
        The parameters, the number of classes and the signed width of a logit.
    decryptor : :class:`hdl.Decryptor`
        The decryptor inside.
    buffers : dict of str to (depth, width)
        The engine's dual-port and read-only memories (block RAM): ``image`` (two slots; only
        the bits not in single-port blocks, absent when there are none), ``hidden`` (two slots;
        absent for one layer), ``constants`` (read-only, the rows kept in memory).
    single_port_buffers : dict of str to (depth, width)
        The parts in single-port blocks of 16 bits: ``image`` when ``image_single_port_blocks``
        is set, else empty.
    constant_logic_rows : int
        Rows of constants built into logic.

    Members
    -------
    desc, data : ``In``
        The decryptor's descriptor and data streams (``docs/stream-protocol.md``): per image,
        every layer in order, its chunks in the tiled order.
    image : ``In(stream.Signature(input_bits))``
        The raw inputs (pixels) of each image, one per beat, in order; ``inputs`` beats per
        image, no framing.
    result : ``Out(stream.Signature(result_layout(classes, logit_bits)))``
        One beat per image: the class (lowest index of the largest logit) and every logit.
    error : ``Out(engine_error_layout())``
        Sticky until reset.
    trace : ``Out(stream.Signature(trace_layout(...), always_ready=True))``
        Every output of every layer as the requantizer produces it, for testbenches (it drives
        nothing inside; leave it unconnected and synthesis removes it).
    """

    def __init__(self, *, network, width, lanes=1, image_single_port_blocks=0,
                 constant_memory_rows=None):
        _check_network(network, lanes)
        program = network.program
        nout = network.nout
        layers = program.layers
        self._image_columns = -(-program.inputs // nout)
        image_depth = 2 * 2 ** ceil_log2(self._image_columns)
        image_width = nout * program.input_bits
        image_single_port_blocks = check_int(
            f"image_single_port_blocks for {image_width}-bit image words",
            image_single_port_blocks, minimum=0, maximum=-(-image_width // SPRAM_WIDTH))
        if image_single_port_blocks and image_depth > SPRAM_DEPTH:
            raise ValueError(f"the image memory has {image_depth} words, more than a "
                             f"single-port block's {SPRAM_DEPTH}")
        constant_memory_rows = _check_memory_rows("constant_memory_rows", constant_memory_rows)
        self._network = network
        self._decryptor = Decryptor(configs=network.configs, width=width, lanes=lanes)
        self._width, self._lanes = self._decryptor.width, self._decryptor.lanes
        self._requantizer = Requantizer(program, memory_rows=constant_memory_rows)
        self._logit_bits = logit_bits(layers[-1])
        self._image_single_port_blocks = image_single_port_blocks
        self._constant_memory_rows = constant_memory_rows
        single_port_bits = min(image_width, SPRAM_WIDTH * image_single_port_blocks)
        self._single_port_buffers = {}
        self._buffers = {}
        if single_port_bits:
            self._single_port_buffers["image"] = (image_depth, single_port_bits)
        if single_port_bits < image_width:
            self._buffers["image"] = (image_depth, image_width - single_port_bits)
        if len(layers) > 1:
            self._hidden_columns = max(-(-layer.inputs // nout) for layer in layers[1:])
            self._buffers["hidden"] = (2 * 2 ** ceil_log2(self._hidden_columns),
                                       nout * max(layer.in_bits for layer in layers[1:]))
        self._buffers["constants"] = (self._requantizer.memory_rows,
                                      MULT_BITS + self._requantizer.offset_bits)
        super().__init__({
            "desc": In(stream.Signature(descriptor_layout())),
            "data": In(stream.Signature(data_layout(width))),
            "image": In(stream.Signature(program.input_bits)),
            "result": Out(stream.Signature(result_layout(program.classes, self._logit_bits))),
            "error": Out(engine_error_layout()),
            "trace": Out(stream.Signature(
                trace_layout(len(layers), max(layer.outputs for layer in layers),
                             self._requantizer.value_bits), always_ready=True)),
        })

    network = property(lambda self: self._network)
    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    decryptor = property(lambda self: self._decryptor)
    classes = property(lambda self: self._network.program.classes)
    logit_bits = property(lambda self: self._logit_bits)
    buffers = property(lambda self: dict(self._buffers))
    single_port_buffers = property(lambda self: dict(self._single_port_buffers))
    image_single_port_blocks = property(lambda self: self._image_single_port_blocks)
    constant_memory_rows = property(lambda self: self._constant_memory_rows)
    constant_logic_rows = property(lambda self: self._requantizer.logic_rows)

    @property
    def layer_overhead(self):
        """Cycles per layer beyond its beats when nothing stalls, at most: the last tile's
        drain (``tile``), the requantizer and the pipeline around it, and the next layer's first
        read (checked by ``tests/test_engine.py``)."""
        return max(layer.tile for layer in self._network.layers) + Requantizer.LATENCY + 5

    def layer_cycles(self, index):
        """Cycles layer ``index`` takes, overhead excluded, when nothing stalls: one per beat,
        unless the decryptor is memory-bound (one data word per cycle) or the tiles are so short
        that the drain (``tile + tile/lanes + 2`` cycles per tile) is slower."""
        layer = self._network.layers[index]
        nin = self._network.configs[layer.config].nin
        per_column = layer.tile // self._lanes
        beats = -(-layer.chunks // self._lanes)
        words = -(-layer.chunks * nin // self._width)
        return max(beats, words, layer.tiles * (layer.tile + per_column + 2))

    def cycle_bound(self):
        """Most cycles per image in a steady stream of images when nothing stalls: the layers'
        :meth:`layer_cycles` plus :attr:`layer_overhead` each, or the image load (one input per
        cycle, overlapped with the previous image) if that is longer."""
        layers = range(len(self._network.layers))
        compute = sum(self.layer_cycles(index) + self.layer_overhead for index in layers)
        return max(compute, self._network.program.inputs + self.layer_overhead)

    def elaborate(self, platform):
        m = Module()
        network, lanes = self._network, self._lanes
        nout = network.nout
        specs = network.layers
        layers = network.program.layers
        count = len(layers)
        m.submodules.decryptor = decryptor = self._decryptor
        m.submodules.requantizer = requantizer = self._requantizer
        wiring.connect(m, wiring.flipped(self.desc), decryptor.desc)
        wiring.connect(m, wiring.flipped(self.data), decryptor.data)
        beat = decryptor.out

        # Memories. The slot is the address MSB, so no adder forms an address.
        image_width = nout * network.program.input_bits
        if self._image_single_port_blocks:
            depth = self._single_port_buffers["image"][0]
            m.submodules.image_memory = image_memory = SharedPortMemory(
                depth=depth, width=image_width, blocks=self._image_single_port_blocks)
            image_read, image_write = image_memory.read, image_memory.write
            image_writable = image_memory.write_ready
        else:
            depth, image_width = self._buffers["image"]
            m.submodules.image_memory = image_memory = memory.Memory(
                shape=image_width, depth=depth, init=[])
            image_read, image_write = image_memory.read_port(), image_memory.write_port()
            image_writable = None
        column_bits = ceil_log2(self._image_columns) if self._image_columns > 1 else 0
        if count > 1:
            depth, hidden_width = self._buffers["hidden"]
            m.submodules.hidden_memory = hidden_memory = memory.Memory(
                shape=hidden_width, depth=depth, init=[])
            hidden_read, hidden_write = hidden_memory.read_port(), hidden_memory.write_port()
            hidden_bits = ceil_log2(self._hidden_columns) if self._hidden_columns > 1 else 0

        # Image loader: pixels packed nout to a word into the slot being loaded.
        loaded = Signal(2)                      # slot holds a whole image not yet run
        load_slot = Signal()
        run_slot = Signal()
        pixel_pos = Signal(range(nout))
        pixel_column = Signal(range(max(self._image_columns, 2)))
        pixel_index = Signal(range(network.program.inputs))
        pixel_word = Signal(image_width)
        pixel_bits = network.program.input_bits
        merged = Signal(image_width)
        image_end = pixel_index == network.program.inputs - 1
        word_end = (pixel_pos == nout - 1) | image_end
        if self._image_single_port_blocks:
            # A completed word waits while the single-port memory's write queue is full.
            m.d.comb += self.image.ready.eq(~loaded.bit_select(load_slot, 1) &
                                            (image_writable | ~word_end))
        else:
            m.d.comb += self.image.ready.eq(~loaded.bit_select(load_slot, 1))
        m.d.comb += merged.eq(pixel_word)
        with m.Switch(pixel_pos):
            for pos in range(nout):
                with m.Case(pos):
                    m.d.comb += merged[pos * pixel_bits:(pos + 1) * pixel_bits].eq(
                        self.image.payload)
        with m.If(self.image.valid & self.image.ready):
            with m.If(word_end):
                m.d.comb += [image_write.en.eq(1), image_write.data.eq(merged),
                             image_write.addr.eq(Cat(pixel_column[:column_bits], load_slot))]
                m.d.sync += [pixel_word.eq(0), pixel_pos.eq(0), pixel_column.eq(pixel_column + 1)]
            with m.Else():
                m.d.sync += [pixel_word.eq(merged), pixel_pos.eq(pixel_pos + 1)]
            m.d.sync += pixel_index.eq(pixel_index + 1)
            with m.If(image_end):
                m.d.sync += [pixel_index.eq(0), pixel_column.eq(0), load_slot.eq(~load_slot),
                             loaded.bit_select(load_slot, 1).eq(1)]

        # Sequencer: layer, tile g, column chunk c, beat within the column (rsub).
        layer = Signal(range(max(count, 2)))
        running = Signal()                      # the current column's word is in the read port
        draining = Signal()                     # all beats of the layer taken, rows not yet out
        tile = Signal(range(max(s.tiles for s in specs)))
        column = Signal(range(max(-(-l.inputs // nout) for l in layers)))
        rsub = Signal(range(max(s.tile // lanes for s in specs)))
        row_base = Signal(range(max(s.tiles * s.tile for s in specs) + 1))
        last_layer = layer == count - 1
        rsub_last, column_last, tile_last, first_column = (Signal() for _ in range(4))
        layer_tile = Signal(range(max(s.tile for s in specs) + 1))
        with m.Switch(layer):
            for index, (spec, integer) in enumerate(zip(specs, layers)):
                with m.Case(index):
                    m.d.comb += [rsub_last.eq(rsub == spec.tile // lanes - 1),
                                 column_last.eq(column == -(-integer.inputs // nout) - 1),
                                 tile_last.eq(tile == spec.tiles - 1),
                                 layer_tile.eq(spec.tile)]
        m.d.comb += first_column.eq(column == 0)

        # Pipeline stages 1 (the accepted beat beside its activations) and 2 (the lane sums),
        # and the drain's state: a tile's last column may enter only when the drain is free
        # and no beat ending a tile is still on its way to it.
        q_valid, q_first, q_final, q_tile_end = (Signal() for _ in range(4))
        p_valid, p_first, p_final, p_tile_end = (Signal() for _ in range(4))
        drain_busy = Signal()
        drain_blocked = drain_busy | (p_valid & p_tile_end) | (q_valid & q_tile_end)
        m.d.comb += beat.ready.eq(running & ~(column_last & drain_blocked))
        fire = beat.valid & beat.ready
        layer_done = Signal()                   # the layer's final row leaves the requantizer

        read_en = Signal()
        read_column = Signal.like(column)
        with m.If(~running & ~draining):
            # Layer 0 needs a loaded image (with single-port blocks, its last word out of the
            # write queue); the last layer writes the result, which must be free.
            image_ready = loaded.bit_select(run_slot, 1)
            if image_writable is not None:
                image_ready &= image_writable
            with m.If(Mux(layer == 0, image_ready, 1) &
                      Mux(last_layer, ~self.result.valid, 1)):
                m.d.comb += [read_en.eq(1), read_column.eq(0)]
                m.d.sync += [running.eq(1), tile.eq(0), column.eq(0), rsub.eq(0),
                             row_base.eq(0)]
        with m.If(fire):
            bad = (beat.payload.count != lanes) | \
                (beat.payload.last != (rsub_last & column_last & tile_last))
            with m.If(bad):
                m.d.sync += self.error.bad_beat.eq(1)
            with m.If(rsub_last):
                m.d.sync += rsub.eq(0)
                with m.If(column_last):
                    m.d.sync += column.eq(0)
                    with m.If(tile_last):
                        m.d.sync += [running.eq(0), draining.eq(1)]
                    with m.Else():
                        m.d.comb += [read_en.eq(1), read_column.eq(0)]
                        m.d.sync += [tile.eq(tile + 1), row_base.eq(row_base + layer_tile)]
                with m.Else():
                    m.d.comb += [read_en.eq(1), read_column.eq(column + 1)]
                    m.d.sync += column.eq(column + 1)
            with m.Else():
                m.d.sync += rsub.eq(rsub + 1)
        with m.If(layer_done):
            m.d.sync += [draining.eq(0), layer.eq(Mux(last_layer, 0, layer + 1))]
            with m.If(layer == 0):
                m.d.sync += [loaded.bit_select(run_slot, 1).eq(0), run_slot.eq(~run_slot)]
        m.d.comb += [image_read.en.eq(read_en & (layer == 0)),
                     image_read.addr.eq(Cat(read_column[:column_bits], run_slot))]
        if count > 1:
            m.d.comb += [hidden_read.en.eq(read_en & (layer != 0)),
                         hidden_read.addr.eq(Cat(read_column[:hidden_bits], ~layer[0]))]

        # The activations of the current column, per layer at that layer's width.
        act_bits = max(l.in_bits for l in layers)
        acts = [Signal(act_bits, name=f"act{i}") for i in range(nout)]
        with m.Switch(layer):
            for index, integer in enumerate(layers):
                source = image_read.data if index == 0 else hidden_read.data
                k = integer.in_bits
                with m.Case(index):
                    m.d.comb += [a.eq(source[i * k:(i + 1) * k]) for i, a in enumerate(acts)]
        # Stage 1 registers the beat and its activations, so that memory read, the layer's
        # selection of bits and the adder trees are not one path.
        q_acts = [Signal(act_bits, name=f"q_act{i}") for i in range(nout)]
        q_bits = Signal(lanes * nout)
        q_layer = Signal.like(layer)
        q_row_base = Signal.like(row_base)
        m.d.sync += q_valid.eq(fire)
        with m.If(fire):
            m.d.sync += [q_first.eq(first_column), q_final.eq(column_last),
                         q_tile_end.eq(column_last & rsub_last), q_layer.eq(layer),
                         q_row_base.eq(row_base), q_bits.eq(beat.payload.data)]
            m.d.sync += [q.eq(a) for q, a in zip(q_acts, acts)]
        # Stage 2: the lane sums.
        total = _tree_sum(q_acts)
        sum_shape = signed(bits_for(nout * (2 ** act_bits - 1)) + 1)
        p_sums = [Signal(sum_shape, name=f"p_sum{j}") for j in range(lanes)]
        p_layer = Signal.like(layer)
        p_row_base = Signal.like(row_base)
        m.d.sync += [p_valid.eq(q_valid), p_first.eq(q_first), p_final.eq(q_final),
                     p_tile_end.eq(q_tile_end), p_layer.eq(q_layer), p_row_base.eq(q_row_base)]
        for j in range(lanes):
            m.d.sync += p_sums[j].eq(lane_sum(q_bits[j * nout:(j + 1) * nout], q_acts, total))

        # Stage 3: the accumulator ring and the drain ring.
        acc_bits = self._requantizer.acc_bits
        tile_max = max(s.tile for s in specs)
        accs = [Signal(signed(acc_bits), name=f"acc{i}") for i in range(tile_max)]
        drain = [Signal(signed(acc_bits), name=f"drain{i}") for i in range(tile_max)]
        new = [Signal(signed(acc_bits), name=f"new{j}") for j in range(lanes)]
        m.d.comb += [n.eq(Mux(p_first, 0, accs[j]) + p_sums[j]) for j, n in enumerate(new)]

        def ring_step(ring, condition):
            """Rotate ``ring`` by one group of ``lanes``, ``new`` entering at the back of the
            current layer's tile."""
            with m.If(condition):
                with m.Switch(p_layer):
                    for index, spec in enumerate(specs):
                        with m.Case(index):
                            back = spec.tile - lanes
                            m.d.sync += [ring[i].eq(ring[i + lanes]) for i in range(back)]
                            m.d.sync += [ring[back + j].eq(new[j]) for j in range(lanes)]

        ring_step(accs, p_valid)
        drain_left = Signal(range(tile_max))
        drain_layer = Signal.like(layer)
        drain_row = Signal.like(row_base)
        with m.If(drain_busy):
            m.d.sync += [drain[i].eq(drain[i + 1]) for i in range(tile_max - 1)]
            m.d.sync += [drain_left.eq(drain_left - 1), drain_row.eq(drain_row + 1)]
            with m.If(drain_left == 0):
                m.d.sync += drain_busy.eq(0)
        with m.Else():
            ring_step(drain, p_valid & p_final)
        with m.If(p_valid & p_tile_end):
            m.d.sync += [drain_busy.eq(1), drain_layer.eq(p_layer), drain_row.eq(p_row_base)]
            with m.Switch(p_layer):
                for index, spec in enumerate(specs):
                    with m.Case(index):
                        m.d.sync += drain_left.eq(spec.tile - 1)

        # Drain -> requantizer: real rows only.
        outputs = Signal(range(max(l.outputs for l in layers) + 1))
        with m.Switch(drain_layer):
            for index, integer in enumerate(layers):
                with m.Case(index):
                    m.d.comb += outputs.eq(integer.outputs)
        m.d.comb += [requantizer.i.valid.eq(drain_busy & (drain_row < outputs)),
                     requantizer.i.payload.layer.eq(drain_layer),
                     requantizer.i.payload.row.eq(drain_row),
                     requantizer.i.payload.acc.eq(drain[0]),
                     requantizer.i.payload.last.eq(drain_row == outputs - 1)]
        out = requantizer.o
        m.d.comb += [self.trace.valid.eq(out.valid),
                     self.trace.payload.layer.eq(out.payload.layer),
                     self.trace.payload.row.eq(out.payload.row),
                     self.trace.payload.value.eq(out.payload.value),
                     layer_done.eq(out.valid & out.payload.last)]

        # Hidden outputs packed nout to a word; a layer's last word is written partial, its
        # unused activations zero (they meet the next layer's unused weight bits).
        if count > 1:
            pack_pos = Signal(range(nout))
            pack_column = Signal(range(max(self._hidden_columns, 2)))
            pack_word = Signal(hidden_width)
            packed = Signal(hidden_width)
            m.d.comb += packed.eq(pack_word)
            with m.Switch(out.payload.layer):
                for index, integer in enumerate(layers[:-1]):
                    k = integer.out_bits
                    with m.Case(index):
                        with m.Switch(pack_pos):
                            for pos in range(nout):
                                with m.Case(pos):
                                    m.d.comb += packed[pos * k:(pos + 1) * k].eq(
                                        out.payload.value[:k])
            with m.If(out.valid & (out.payload.layer != count - 1)):
                with m.If((pack_pos == nout - 1) | out.payload.last):
                    m.d.comb += [hidden_write.en.eq(1), hidden_write.data.eq(packed),
                                 hidden_write.addr.eq(Cat(pack_column[:hidden_bits],
                                                          out.payload.layer[0]))]
                    m.d.sync += [pack_word.eq(0), pack_pos.eq(0),
                                 pack_column.eq(Mux(out.payload.last, 0, pack_column + 1))]
                with m.Else():
                    m.d.sync += [pack_word.eq(packed), pack_pos.eq(pack_pos + 1)]

        # Last layer: logits shift in from the top (row 0 ends at the bottom), running argmax
        # with the lowest index kept on ties.
        bits = self._logit_bits
        best = Signal(signed(bits))
        best_row = Signal(range(max(self.classes, 2)))
        value = out.payload.value[:bits].as_signed()
        better = (out.payload.row == 0) | (value > best)
        logits = self.result.payload.logits
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += self.result.valid.eq(0)
        with m.If(out.valid & (out.payload.layer == count - 1)):
            if self.classes > 1:
                m.d.sync += logits.eq(Cat(logits[bits:], value))
            else:
                m.d.sync += logits.eq(value)
            with m.If(better):
                m.d.sync += [best.eq(value), best_row.eq(out.payload.row)]
            with m.If(out.payload.last):
                m.d.sync += [self.result.valid.eq(1),
                             self.result.payload.cls.eq(Mux(better, out.payload.row, best_row))]

        m.d.comb += [self.error.bad_config.eq(decryptor.error.bad_config),
                     self.error.zero_chunks.eq(decryptor.error.zero_chunks)]
        return m
