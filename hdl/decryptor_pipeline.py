"""The pipelined decryptor (``Decryptor(pipeline=True)``): the same ports and protocol, its
control cut into short register-to-register steps so that it runs about as fast as its XOR
network. Structure::

    desc ─> desc queue ─> planner ─> beat queue ─┐ fire
    data ─────────────> word FIFO ───────────────┴──> snapshot ─> lanes ─> XOR ─> out (+ skid)

* The **desc queue** (two entries, ``desc.ready`` a register) classifies each descriptor as it
  enters (zero chunks, index out of range, first beat's size and final flags), so no 32-bit test
  lies behind a handshake. Its head is dispatched: a good layer to the planner and a ``keep``
  entry to the *kind queue*, a bad index with chunks to the kind queue as ``skip``, a zero-chunk
  descriptor nowhere (both set their sticky ``error`` bit).
* The **word FIFO** holds whole memory words in fixed slots (no placing shifter): the data side
  writes the word at the write pointer when the kind queue's head says ``keep`` and a slot is
  free, drops it on ``skip``, and pops the kind queue on ``last``. Its occupancy is a
  thermometer code, so "a slot is free" and "the beat's words are in" are single bits.
* The **planner** walks a layer a beat at a time, ahead of the data: each beat's bit offset in
  its first word, how many words it spans, how many words it frees (the final beat frees the
  layer's last word with its padding, so the next layer starts on a fresh word), its chunk count
  and ``last``. It is the only loop with arithmetic: the offset adder and the chunk counter.
* A beat **fires** when the beat queue's head is valid, the FIFO holds the words it spans, and
  the output side can take it (``go``, a register). The **snapshot** captures the spanned words;
  the **lanes** step shifts by the offset (a multiplexer over the offsets the configurations can
  reach) and zeroes chunks past ``count`` and the other configurations' lanes; the **XOR** step
  computes every configuration's networks and XORs them (all but one are zero) into the output.
* The **output** register has a skid register behind it, so the pipeline's enable ``go`` is a
  register (the skid is empty), not a function of ``out.ready``.
"""

from math import gcd
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.utils import bits_for, exact_log2

from flexor.stream import CHUNKS_BITS, count_width

from .xor_network import xor_rows

__all__ = ["PIPELINE_LATENCY", "PIPELINE_WORD_LATENCY", "PIPELINE_WORD_START",
           "pipeline_spans", "elaborate_pipelined"]

#: Descriptor accepted -> first beat: queue, planner, beat queue, snapshot, lanes, output.
PIPELINE_LATENCY = 6
#: The word that completes a beat accepted -> the beat: FIFO, snapshot, lanes, output.
PIPELINE_WORD_LATENCY = 4
#: Cycles after its descriptor's acceptance at which a layer's first word can be accepted:
#: the descriptor passes the desc queue, then its ``keep`` entry the kind queue.
PIPELINE_WORD_START = 2


def _at_most(value, bound):
    """``value <= bound`` for a constant ``bound``, as a zero test of the high bits and a narrow
    compare (see :func:`hdl.decryptor._at_most`)."""
    low = bits_for(bound)
    if len(value) <= low:
        return value <= bound
    return (value[low:] == 0) & (value[:low] <= bound)


def pipeline_spans(configs, width, lanes):
    """``(most words a beat spans, FIFO slots)``: a beat of configuration ``k`` starts at a
    multiple of ``gcd(nin_k, width)`` below ``width``; one slot more than the widest span lets
    a word enter every cycle while a beat waits for its last word."""
    span = max(-(-(width - gcd(c.nin, width) + lanes * c.nin) // width) for c in configs)
    return span, span + 1


def _queue2(m, name, fields, in_valid, incoming, take):
    """A two-entry queue of registers: ``(in_ready, head_valid, head, spare_valid, spare)``.
    ``in_ready`` is a register (the second entry, ``spare``, is empty); ``head`` is a register;
    ``take`` pops the head."""
    head = {key: Signal(shape, name=f"{name}_{key}") for key, shape in fields.items()}
    spare = {key: Signal(shape, name=f"{name}_spare_{key}") for key, shape in fields.items()}
    head_valid = Signal(name=f"{name}_valid")
    spare_valid = Signal(name=f"{name}_spare_valid")
    in_ready = ~spare_valid
    accepted = in_valid & in_ready
    with m.If(~head_valid | take):
        m.d.sync += head_valid.eq(spare_valid | accepted)
        for key in fields:
            m.d.sync += head[key].eq(Mux(spare_valid, spare[key], incoming[key]))
        m.d.sync += spare_valid.eq(0)
    with m.Elif(accepted):
        m.d.sync += spare_valid.eq(1)
        for key in fields:
            m.d.sync += spare[key].eq(incoming[key])
    return in_ready, head_valid, SimpleNamespace(**head), spare_valid, SimpleNamespace(**spare)


def elaborate_pipelined(dut):
    """The module of :class:`hdl.Decryptor` ``dut`` built with ``pipeline=True``."""
    m = Module()
    configs, width, lanes, nout = dut.configs, dut.width, dut.lanes, dut.nout
    word_bits = exact_log2(width)
    count_bits = count_width(lanes)
    span_max, slots = pipeline_spans(configs, width, lanes)
    config_shape = range(max(len(configs), 2))

    def need_of(config, count):
        """Bits a beat of ``count`` chunks takes, for configuration index ``config``."""
        need = Signal(range(lanes * 64 + 1))
        with m.Switch(config):
            for index, xor_config in enumerate(configs):
                with m.Case(index):
                    m.d.comb += need.eq(count * xor_config.nin)
        return need

    # Descriptor queue: each entry classified on the way in.
    payload = dut.desc.payload
    chunks = payload.chunks
    zero = chunks == 0
    bad_config = ~_at_most(payload.config, len(configs) - 1)
    final0 = _at_most(chunks, lanes)
    fields = {"chunks": CHUNKS_BITS, "config": config_shape, "zero": 1, "bad_config": 1,
              "final": 1, "f1": 1, "f2": 1, "count": range(lanes + 1)}
    incoming = {"chunks": chunks, "config": payload.config,
                "zero": zero, "bad_config": bad_config, "final": final0,
                "f1": _at_most(chunks, 2 * lanes), "f2": _at_most(chunks, 3 * lanes),
                "count": Mux(final0, chunks[:count_bits], lanes)}
    pop = Signal()
    desc_ready, head_valid, head, spare_valid, spare = _queue2(m, "desc", fields,
                                                               dut.desc.valid, incoming, pop)
    m.d.comb += dut.desc.ready.eq(desc_ready)

    # Kind queue: one entry per layer with data words, keep (1) or skip (0) them. It is fed
    # from the desc queue as early as possible (the head, else the spare), so the data side can
    # run ahead of the planner; `*_kinded` mark the entries already fed.
    kind_pop = Signal()
    head_kinded = Signal()
    spare_kinded = Signal()
    from_head = head_valid & ~head.zero & ~head_kinded
    from_spare = spare_valid & ~spare.zero & ~spare_kinded & (head_kinded | head.zero)
    kind_ready, kind_valid, kind, _, _ = _queue2(
        m, "kind", {"keep": 1}, from_head | from_spare,
        {"keep": Mux(from_head, ~head.bad_config, ~spare.bad_config)}, kind_pop)
    head_fed = head_kinded | (from_head & kind_ready)
    spare_fed = spare_kinded | (from_spare & kind_ready)
    with m.If(~head_valid | pop):
        m.d.sync += [head_kinded.eq(spare_valid & spare_fed), spare_kinded.eq(0)]
    with m.Else():
        m.d.sync += [head_kinded.eq(head_fed), spare_kinded.eq(spare_valid & spare_fed)]
    head_good = ~head.zero & ~head.bad_config

    # Planner: the layer being cut into beats.
    planning = Signal()
    p_config = Signal(config_shape)
    p_remaining = Signal(CHUNKS_BITS)        # chunks not yet planned, this beat's included
    p_final = Signal()                       # p_remaining <= lanes
    p_f1 = Signal()                          # p_remaining <= 2 * lanes
    p_f2 = Signal()                          # p_remaining <= 3 * lanes
    p_count = Signal(range(lanes + 1))
    p_need = Signal(range(lanes * 64 + 1))
    p_offset = Signal(word_bits)

    emit = Signal()
    beat_ready = Signal()
    m.d.comb += emit.eq(planning & beat_ready)
    planner_free = ~planning | (p_final & emit)
    # A zero-chunk head leaves at once; another once its kind entry is in (or goes in now),
    # a good one when the planner is free.
    m.d.comb += pop.eq(head_valid & (head.zero | (head_fed & (~head_good | planner_free))))
    load = pop & head_good
    with m.If(pop):
        m.d.sync += [dut.error.bad_config.eq(dut.error.bad_config | head.bad_config),
                     dut.error.zero_chunks.eq(dut.error.zero_chunks | head.zero)]

    after_count = Mux(p_f1, (p_remaining - lanes)[:count_bits], lanes)
    with m.If(load):
        m.d.sync += [planning.eq(1), p_config.eq(head.config), p_remaining.eq(head.chunks),
                     p_final.eq(head.final), p_f1.eq(head.f1), p_f2.eq(head.f2),
                     p_count.eq(head.count), p_need.eq(need_of(head.config, head.count)),
                     p_offset.eq(0)]
    with m.Elif(emit):
        m.d.sync += [p_remaining.eq(p_remaining - lanes), p_final.eq(p_f1), p_f1.eq(p_f2),
                     p_f2.eq(_at_most(p_remaining, 4 * lanes)), p_count.eq(after_count),
                     p_need.eq(need_of(p_config, after_count)),
                     p_offset.eq((p_offset + p_need)[:word_bits])]
        with m.If(p_final):
            m.d.sync += planning.eq(0)

    # The beat as planned: words spanned from the offset, words freed when it fires.
    end = Signal(range(width + lanes * 64 + 1))
    m.d.comb += end.eq(p_offset + p_need)
    span = (end + width - 1)[word_bits:]
    beat_fields = {"span": range(span_max + 1), "drop": range(span_max + 1),
                   "offset": word_bits, "count": range(lanes + 1), "last": 1,
                   "config": config_shape}
    planned = {"span": span, "drop": Mux(p_final, span, end[word_bits:]), "offset": p_offset,
               "count": p_count, "last": p_final, "config": p_config}
    fire = Signal()
    beat_in_ready, beat_valid, beat, _, _ = _queue2(m, "beat", beat_fields, emit, planned, fire)
    m.d.comb += beat_ready.eq(beat_in_ready)

    # Word FIFO: slot k holds a word when have[k] (thermometer: held >= k + 1).
    fifo = [Signal(width, name=f"slot{k}") for k in range(slots)]
    have = Signal(slots)
    write_at = Signal(slots, init=1)         # one-hot
    read_at = Signal(range(slots))
    room = ~have[-1]
    m.d.comb += dut.data.ready.eq(kind_valid & (~kind.keep | room))
    word = dut.data.valid & dut.data.ready
    take = word & kind.keep
    m.d.comb += kind_pop.eq(word & dut.data.payload.last)
    for k, slot in enumerate(fifo):
        with m.If(take & write_at[k]):
            m.d.sync += slot.eq(dut.data.payload.data)
    with m.If(take):
        m.d.sync += write_at.eq(write_at.rotate_left(1))

    # Output side: `go` is high while the skid register is empty.
    skid_valid = Signal()
    go = ~skid_valid
    enough = Signal()
    with m.Switch(beat.span):
        for words in range(1, span_max + 1):
            with m.Case(words):
                m.d.comb += enough.eq(have[words - 1])
    m.d.comb += fire.eq(beat_valid & enough & go)

    # Occupancy: held + take - (fire ? drop : 0), as a shift of the thermometer code.
    freed = Mux(fire, beat.drop, 0)
    extended = Cat(Const(1, 1), have, Const(0, span_max + 1))   # extended[n] = held >= n
    with m.Switch(Cat(take, freed)):
        for taken in (0, 1):
            for drop in range(span_max + 1):
                with m.Case(taken | drop << 1):
                    shift = drop - taken             # have'[k] = held - shift >= k + 1
                    m.d.sync += have.eq(extended[1 + shift:1 + shift + slots])
    with m.If(fire):
        m.d.sync += read_at.eq(Mux(read_at + beat.drop >= slots,
                                   read_at + beat.drop - slots, read_at + beat.drop))

    # Snapshot: the words the beat spans, oldest first.
    s_valid = Signal()
    s_words = Signal(span_max * width)
    s_offset = Signal(word_bits)
    s_count = Signal(range(lanes + 1))
    s_last = Signal()
    s_config = Signal(config_shape)
    rotated = Signal(span_max * width)
    with m.Switch(read_at):
        for start in range(slots):
            with m.Case(start):
                m.d.comb += rotated.eq(Cat(*(fifo[(start + k) % slots]
                                             for k in range(span_max))))
    with m.If(go):
        m.d.sync += s_valid.eq(fire)
        with m.If(fire):
            m.d.sync += [s_words.eq(rotated), s_offset.eq(beat.offset), s_count.eq(beat.count),
                         s_last.eq(beat.last), s_config.eq(beat.config)]

    # Lanes: shift by the offset, keep the chunks of the beat's configuration below count.
    offsets = sorted({o for c in configs for o in range(0, width, gcd(c.nin, width))})
    shifted = Signal(span_max * width)
    with m.Switch(s_offset):
        for offset in offsets[:-1]:
            with m.Case(offset):
                m.d.comb += shifted.eq(s_words >> offset)
        with m.Default():
            m.d.comb += shifted.eq(s_words >> offsets[-1])
    x_valid = Signal()
    x_count = Signal(range(lanes + 1))
    x_last = Signal()
    x_lanes = [[Signal(c.nin, name=f"x{index}_lane{lane}") for lane in range(lanes)]
               for index, c in enumerate(configs)]
    with m.If(go):
        m.d.sync += [x_valid.eq(s_valid), x_count.eq(s_count), x_last.eq(s_last)]
        for index, c in enumerate(configs):
            for lane in range(lanes):
                keep = (s_config == index) & (s_count > lane)
                bits = shifted[lane * c.nin:(lane + 1) * c.nin]
                m.d.sync += x_lanes[index][lane].eq(Mux(keep, bits, 0))

    # XOR networks of every configuration; all but the beat's own see zeros.
    result = Signal(dut.out.payload.shape())
    lane_outputs = []
    for lane in range(lanes):
        rows = [Const(0, 1)] * nout
        for index, c in enumerate(configs):
            rows = [a ^ b for a, b in zip(rows, xor_rows(c, x_lanes[index][lane]))]
        lane_outputs.append(Cat(*rows))
    m.d.comb += [result.data.eq(Cat(*lane_outputs)), result.count.eq(x_count),
                 result.last.eq(x_last)]

    skid = Signal(dut.out.payload.shape())
    out = dut.out
    with m.If(~out.valid | out.ready):
        m.d.sync += [out.valid.eq(skid_valid | (x_valid & go)),
                     out.payload.eq(Mux(skid_valid, skid.as_value(), result.as_value())),
                     skid_valid.eq(0)]
    with m.Elif(x_valid & go):
        m.d.sync += [skid.eq(result), skid_valid.eq(1)]
    return m
