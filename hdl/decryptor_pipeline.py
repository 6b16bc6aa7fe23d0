"""The pipelined decryptor (``Decryptor(pipeline=True)``): the same ports and protocol, its
control cut into short register-to-register steps so that it runs about as fast as its XOR
network. Structure::

    desc ─> intake ─> desc queue ─> planner ─> beat queue ─┐ fire
    data ───────────────────────> word FIFO ───────────────┴──> snapshot ─> lanes ─> XOR ─> out

* The **intake** register keeps the halves of the descriptor's tests that two levels of logic
  give (which groups of at most 16 bits of ``chunks`` are non-zero, the low bits' compares);
  the **desc queue** (two entries) completes them as each descriptor enters (zero chunks,
  index out of range, first beat's size and final flags), so no 32-bit test lies behind a
  handshake; ``desc.ready`` is one gate of registers. Its head is dispatched: a good layer to
  the planner and a ``keep`` entry to the *kind queue*, a bad index with chunks to the kind
  queue as ``skip``, a zero-chunk descriptor nowhere (both set their sticky ``error`` bit).
* The **word FIFO** holds whole memory words in fixed slots (no placing shifter): the data side
  writes the word at the write pointer when the kind queue's head says ``keep`` and a slot is
  free, drops it on ``skip``, and pops the kind queue on ``last``. Its occupancy is a
  thermometer code, so "a slot is free" and "the beat's words are in" are single bits.
* The **planner** walks a layer a beat at a time, ahead of the data: each beat's bit offset in
  its first word, how many words it spans, how many words it frees (the final beat frees the
  layer's last word with its padding, so the next layer starts on a fresh word), its chunk count
  and ``last``. It is the only loop with arithmetic: the chunk counter and the adder of the
  beat's end (offset plus bits), which adds registers only: the next beat's bits are planned a
  beat ahead.
* A beat **fires** when the beat queue's head is valid, the FIFO holds the words it spans, and
  the output side can take it (``go``, a register). The **snapshot** captures the spanned words
  and the lanes step's selects (a flag per reachable offset, and per configuration and lane one
  for "holds a chunk"); the **lanes** step shifts by the offset (an AND-OR over the offset
  flags) and zeroes chunks past ``count`` and the other configurations' lanes; the **XOR** step
  computes every configuration's networks and XORs them (all but one are zero) into the output.
* The **output** register has a skid register behind it, so the pipeline's enable ``go`` is a
  register (the skid is empty), not a function of ``out.ready``.
* **Timing.** Only valid flags and pointers are reset: data registers are ``reset_less``, so
  their wide enables carry no reset (on the iCE40 a synchronous reset joins the enable, and
  nextpnr drives wide enables through global buffers, which alone take about 7 ns), and the
  FIFO slot at the write pointer, the queues' spare entries, the snapshot and the skid load
  whenever their contents are don't-care, so their enables are registers or one gate of them.
  The valid flags are written as plain logic, not under ``If``: Yosys then finds no enable in
  them to join their reset.
"""

from math import gcd
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.utils import bits_for, exact_log2

from flexor.stream import CHUNKS_BITS, count_width

from .xor_network import network_rows

__all__ = ["PIPELINE_LATENCY", "PIPELINE_WORD_LATENCY", "PIPELINE_WORD_START",
           "pipeline_spans", "elaborate_pipelined"]

#: Descriptor accepted -> first beat: intake, queue, planner, beat queue, snapshot, lanes,
#: output.
PIPELINE_LATENCY = 7
#: The word that completes a beat accepted -> the beat: FIFO, snapshot, lanes, output.
PIPELINE_WORD_LATENCY = 4
#: Cycles after its descriptor's acceptance at which a layer's first word can be accepted:
#: the intake register, then its entry in the kind queue.
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
    multiple of ``gcd(nin_k, width)`` below ``width``. Two slots more than the widest span let
    a word enter every cycle while a beat waits for its last word: "a slot is free" is a
    register, so it does not see the slots a firing beat frees in the same cycle."""
    span = max(-(-(width - gcd(c.nin, width) + lanes * c.nin) // width) for c in configs)
    return span, span + 2


def _queue2(m, name, fields, in_valid, incoming, take):
    """A two-entry queue of registers: ``(in_ready, head_valid, head, spare_valid, spare)``.
    ``in_ready`` is a register (the second entry, ``spare``, is empty); ``head`` is a register;
    ``take`` pops the head."""
    # Entries are don't-care while their valid flag is low, so only the flags are reset: the
    # data registers' enables (on the iCE40 often global buffers) then carry no reset.
    head = {key: Signal(shape, name=f"{name}_{key}", reset_less=True)
            for key, shape in fields.items()}
    spare = {key: Signal(shape, name=f"{name}_spare_{key}", reset_less=True)
             for key, shape in fields.items()}
    head_valid = Signal(name=f"{name}_valid")
    spare_valid = Signal(name=f"{name}_spare_valid")
    in_ready = ~spare_valid
    accepted = in_valid & in_ready
    # The flags as plain logic (no If): Yosys then finds no enable in them, and on the iCE40
    # a flag's reset would otherwise join its enable, one more level of logic.
    m.d.sync += [head_valid.eq((head_valid & ~take) | spare_valid | accepted),
                 spare_valid.eq(head_valid & ~take & (spare_valid | in_valid))]
    with m.If(~head_valid | take):
        for key in fields:
            m.d.sync += head[key].eq(Mux(spare_valid, spare[key], incoming[key]))
    # An empty spare loads whatever is offered, accepted or not, so that its wide enable is a
    # register, not the pop.
    with m.If(~spare_valid):
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
        # The last configuration is the default: an index out of range is a bad descriptor
        # whose need is never used, and a constant there would become a reset in Yosys's
        # mapping (a reset pin with logic before it on the ECP5).
        with m.Switch(config):
            for index, xor_config in enumerate(configs[:-1]):
                with m.Case(index):
                    m.d.comb += need.eq(count * xor_config.nin)
            with m.Default():
                m.d.comb += need.eq(count * configs[-1].nin)
        return need

    # Intake register: the descriptor as it came, plus the halves of its tests that two levels
    # of logic give (which groups of `chunks` are non-zero, the low bits' compares with lanes,
    # 2 * lanes, 3 * lanes, the index check), so that the full tests are one level each as
    # they enter the queues.
    payload = dut.desc.payload
    low_bits = 4 * -(-bits_for(3 * lanes) // 4)          # whole nibbles
    # The planner's chunk counter keeps `counter_bits` low bits in binary and the rest in
    # nibble digits whose borrows ripple one digit per cycle: no carry chain of 32 bits.
    counter_bits = max(low_bits, 4 * -(-bits_for(16 * lanes - 1) // 4))
    # Groups of at most 16 bits, split at low_bits and counter_bits: each group's "non-zero"
    # is two levels of LUT4 from the payload, and every test below reads at most four groups.
    edges = sorted({0, low_bits, counter_bits, CHUNKS_BITS,
                    *range(counter_bits, CHUNKS_BITS, 16)})
    groups = list(zip(edges, edges[1:]))
    r_valid = Signal()
    r_chunks = Signal(CHUNKS_BITS, reset_less=True)
    r_config = Signal(config_shape, reset_less=True)
    r_groups = Signal(len(groups), reset_less=True)         # group n of chunks is non-zero
    r_low = Signal(3, reset_less=True)                      # chunks[:low_bits] <= (j+1) * lanes
    r_config_ok = Signal(reset_less=True)
    fields = {"chunks": CHUNKS_BITS, "config": config_shape, "zero": 1, "bad_config": 1,
              "final": 1, "f1": 1, "f2": 1, "digits_zero": 1, "need_last": range(lanes * 64 + 1),
              "need_full": range(lanes * 64 + 1)}
    moves = Signal()
    m.d.comb += dut.desc.ready.eq(~r_valid | moves)
    with m.If(dut.desc.ready):
        m.d.sync += [r_chunks.eq(payload.chunks),
                     r_config.eq(payload.config),
                     r_groups.eq(Cat(payload.chunks[start:stop] != 0
                                     for start, stop in groups)),
                     r_low.eq(Cat(payload.chunks[:low_bits] <= j * lanes for j in (1, 2, 3))),
                     r_config_ok.eq(_at_most(payload.config, len(configs) - 1))]

    # As the queues' flags below: plain logic, not under If (see _queue2).
    m.d.sync += r_valid.eq((dut.desc.ready & dut.desc.valid) | (r_valid & ~moves))

    def none_from(bit):
        """The chunk count has no bit set from ``bit`` up (``bit`` is a group edge)."""
        return ~Cat(r_groups[n] for n, (start, _) in enumerate(groups) if start >= bit).any()

    high_zero = none_from(low_bits)
    zero = none_from(0)
    incoming = {"chunks": r_chunks, "config": r_config, "zero": zero, "bad_config": ~r_config_ok,
                "final": high_zero & r_low[0], "f1": high_zero & r_low[1],
                "f2": high_zero & r_low[2], "digits_zero": none_from(counter_bits),
                "need_last": need_of(r_config, r_chunks[:count_bits]),
                "need_full": need_of(r_config, lanes)}
    # From the intake, every descriptor enters both queues at once: the kind queue (for the
    # data side) and the planner's queue. Each side passes over what is not its own (a
    # zero-chunk entry has no words, a bad one no beats).
    pop = Signal()
    kind_pop = Signal()
    desc_ready, head_valid, head, _, _ = _queue2(m, "desc", fields, moves, incoming, pop)
    kind_ready, kind_valid, kind, _, _ = _queue2(
        m, "kind", {"keep": 1, "none": 1}, moves,
        {"keep": ~zero & r_config_ok, "none": zero}, kind_pop)
    m.d.comb += moves.eq(r_valid & desc_ready & kind_ready)
    m.d.sync += [dut.error.bad_config.eq(dut.error.bad_config | (moves & ~r_config_ok)),
                 dut.error.zero_chunks.eq(dut.error.zero_chunks | (moves & zero))]
    head_good = ~head.zero & ~head.bad_config

    # Planner: the layer being cut into beats.
    planning = Signal()
    p_config = Signal(config_shape, reset_less=True)
    # Chunks not yet planned, this beat's included: p_low + 2**counter_bits * (the digits,
    # nibble j worth 16**j, minus a borrow pending into each digit). The digits reach their
    # value up to `digits + 1` cycles after the borrow that empties them, and p_digits_zero
    # rises three cycles after that (see p_settled); from that borrow the count needs at least
    # 2**counter_bits / lanes - 5 >= 11 beats, so 12 cycles, to reach 4 * lanes, where p_f2
    # reads p_digits_zero: in time for up to 7 digits.
    p_low = Signal(counter_bits, reset_less=True)
    digits = (CHUNKS_BITS - counter_bits) // 4
    p_digits = [Signal(4, name=f"p_digit{j}", reset_less=True) for j in range(digits)]
    p_pending = Signal(max(digits, 1), reset_less=True)
    p_digits_zero = Signal(reset_less=True)
    # Two registered steps towards p_digits_zero, each at most two levels of logic: which digits
    # were zero and whether no borrow was pending (a cycle ago), and whether all of that held
    # for this layer's digits (no pop in the last two cycles, whose digits are not loaded yet).
    p_digit_zero = Signal(max(digits, 1), reset_less=True)
    p_none_pending = Signal(reset_less=True)
    p_popped = Signal(reset_less=True)
    p_settled = Signal(reset_less=True)
    p_final = Signal(reset_less=True)        # p_remaining <= lanes
    p_f1 = Signal(reset_less=True)           # p_remaining <= 2 * lanes
    p_f2 = Signal(reset_less=True)           # p_remaining <= 3 * lanes
    p_count = Signal(range(lanes + 1), reset_less=True)
    p_offset = Signal(word_bits, reset_less=True)        # this beat's first bit in its word
    # Where this beat ends (offset + its bits) and the bits of the next beat, both registers:
    # the next end is one adder from registers, not the offset adder after the need's.
    p_end = Signal(range(width + lanes * 64), reset_less=True)
    p_need_next = Signal(range(lanes * 64 + 1), reset_less=True)

    emit = Signal()
    beat_ready = Signal()
    m.d.comb += emit.eq(planning & beat_ready)
    # The planner takes the head when it is free; a head that is not good only passes.
    m.d.comb += pop.eq(head_valid & (~planning | (p_final & beat_ready)))

    after_count = Mux(p_f1, (p_low - lanes)[:count_bits], lanes)
    # The beat after the next: final with remaining - 2 * lanes chunks when remaining <= 3 *
    # lanes (p_low is then the whole count), none when remaining <= 2 * lanes (don't-care).
    need_after_next = need_of(p_config, Mux(p_f2, (p_low - 2 * lanes)[:count_bits], lanes))
    # A new layer's second beat: final with chunks - lanes chunks when chunks <= 2 * lanes.
    second_count = Mux(head.f1, (head.chunks[:count_bits] - lanes)[:count_bits], lanes)
    need_second = need_of(head.config, second_count)
    borrow = emit & (p_low < lanes)
    m.d.sync += [p_digit_zero.eq(Cat(digit == 0 for digit in p_digits)),
                 p_none_pending.eq(~p_pending.any()), p_popped.eq(pop),
                 p_settled.eq(p_digit_zero.all() & p_none_pending & ~pop & ~p_popped)]
    # Within a layer the digits only go down: once all zero, they stay so.
    with m.If(p_settled):
        m.d.sync += p_digits_zero.eq(1)
    for j, digit in enumerate(p_digits):
        with m.If(p_pending[j]):
            m.d.sync += digit.eq(digit - 1)
    m.d.sync += p_pending.eq(Cat(borrow, *(p_pending[j] & (p_digits[j] == 0)
                                           for j in range(digits - 1))))
    with m.If(pop):
        m.d.sync += [planning.eq(head_good), p_config.eq(head.config),
                     p_low.eq(head.chunks[:counter_bits]), p_pending.eq(0),
                     p_digits_zero.eq(head.digits_zero),
                     *(digit.eq(head.chunks[counter_bits + 4 * j:counter_bits + 4 * j + 4])
                       for j, digit in enumerate(p_digits)),
                     p_final.eq(head.final), p_f1.eq(head.f1), p_f2.eq(head.f2),
                     p_count.eq(Mux(head.final, head.chunks[:count_bits], lanes)),
                     p_end.eq(Mux(head.final, head.need_last, head.need_full)),
                     p_need_next.eq(need_second), p_offset.eq(0)]
    with m.Elif(emit):
        m.d.sync += [p_low.eq(p_low - lanes), p_final.eq(p_f1), p_f1.eq(p_f2),
                     p_f2.eq(p_digits_zero & (p_low <= 4 * lanes)), p_count.eq(after_count),
                     p_offset.eq(p_end[:word_bits]),
                     p_end.eq(p_end[:word_bits] + p_need_next),
                     p_need_next.eq(need_after_next)]
        with m.If(p_final):
            m.d.sync += planning.eq(0)

    # The beat as planned: words spanned from the offset, words freed when it fires.
    span = (p_end + width - 1)[word_bits:]
    # The span as the beat queue keeps it: one-hot (bit k: k + 1 words), from compares of p_end
    # with constants, so that "the words are in" is one gate of registers.
    span_one_hot = Cat((p_end > k * width) & (p_end <= (k + 1) * width)
                       for k in range(span_max))
    beat_fields = {"span": span_max, "drop": range(span_max + 1),
                   "offset": word_bits, "count": range(lanes + 1), "last": 1,
                   "config": config_shape}
    planned = {"span": span_one_hot, "drop": Mux(p_final, span, p_end[word_bits:]),
               "offset": p_offset, "count": p_count, "last": p_final, "config": p_config}
    fire = Signal()
    beat_in_ready, beat_valid, beat, _, _ = _queue2(m, "beat", beat_fields, emit, planned, fire)
    m.d.comb += beat_ready.eq(beat_in_ready)

    # Word FIFO: slot k holds a word when have[k] (thermometer: held >= k + 1).
    fifo = [Signal(width, name=f"slot{k}", reset_less=True) for k in range(slots)]
    have = Signal(slots)
    write_at = Signal(slots, init=1)         # one-hot
    read_at = Signal(range(slots))
    room = ~have[-1]
    # `keep` entries always have words (`none` is only set with `keep` clear): `take` is one
    # gate of four registers, as it drives every slot's enable.
    m.d.comb += dut.data.ready.eq(kind_valid & Mux(kind.keep, room, ~kind.none))
    word = dut.data.valid & dut.data.ready
    take = Signal()
    m.d.comb += take.eq(dut.data.valid & kind_valid & kind.keep & room)
    m.d.comb += kind_pop.eq((kind_valid & kind.none) | (word & dut.data.payload.last))
    # The slot at the write pointer is free while there is room, so it may take whatever is on
    # the bus, accepted or not: its enable is one gate of two registers, not the handshake.
    for k, slot in enumerate(fifo):
        with m.If(room & write_at[k]):
            m.d.sync += slot.eq(dut.data.payload.data)
    with m.If(take):
        m.d.sync += write_at.eq(write_at.rotate_left(1))

    # Output side: `go` is high while the skid register is empty.
    skid_valid = Signal()
    go = ~skid_valid
    enough = (beat.span & have[:span_max]).any()
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

    # Snapshot: the words the beat spans, oldest first, and the lanes step's selects: one
    # flag per reachable offset (compared on the offset's bits that can be non-zero), one per
    # configuration and lane for "this lane holds a chunk of the beat's configuration".
    offsets = sorted({o for c in configs for o in range(0, width, gcd(c.nin, width))})
    low_zero = exact_log2(gcd(*offsets, width))      # a power of two, as the width is
    s_valid = Signal()
    s_words = Signal(span_max * width, reset_less=True)
    s_at = Signal(len(offsets), reset_less=True)
    s_keep = [Signal(lanes, name=f"s_keep{index}", reset_less=True)
              for index in range(len(configs))]
    s_count = Signal(range(lanes + 1), reset_less=True)
    s_last = Signal(reset_less=True)
    rotated = Signal(span_max * width)
    with m.Switch(read_at):
        for start in range(slots):
            with m.Case(start):
                m.d.comb += rotated.eq(Cat(*(fifo[(start + k) % slots]
                                             for k in range(span_max))))
    # Without `fire` the snapshot is don't-care (s_valid low): its wide enable is `go` alone.
    with m.If(go):
        m.d.sync += [s_words.eq(rotated),
                     s_at.eq(Cat(beat.offset[low_zero:] == offset >> low_zero
                                 for offset in offsets)),
                     s_count.eq(beat.count), s_last.eq(beat.last)]
        for index, keep in enumerate(s_keep):
            m.d.sync += keep.eq(Cat((beat.config == index) & (beat.count > lane)
                                    for lane in range(lanes)))

    # Lanes: shift by the offset (an AND-OR over the offset flags), keep the chunks of the
    # beat's configuration below count.
    x_valid = Signal()
    x_count = Signal(range(lanes + 1), reset_less=True)
    x_last = Signal(reset_less=True)
    x_lanes = [[Signal(c.nin, name=f"x{index}_lane{lane}", reset_less=True)
                for lane in range(lanes)]
               for index, c in enumerate(configs)]
    with m.If(go):
        m.d.sync += [x_count.eq(s_count), x_last.eq(s_last)]
        for index, c in enumerate(configs):
            for lane in range(lanes):
                bits = [s_at[k].replicate(c.nin)
                        & (s_words >> offset)[lane * c.nin:(lane + 1) * c.nin]
                        for k, offset in enumerate(offsets)]
                shifted = bits[0]
                for more in bits[1:]:
                    shifted = shifted | more
                m.d.sync += x_lanes[index][lane].eq(
                    shifted & s_keep[index][lane].replicate(c.nin))

    # XOR networks of every configuration; all but the beat's own see zeros.
    result = Signal(dut.out.payload.shape())
    lane_outputs = []
    for lane in range(lanes):
        rows = [Const(0, 1)] * nout
        for index in range(len(configs)):
            network = network_rows(m, configs[index], dut.programs[index],
                                   x_lanes[index][lane], f"xor{index}_lane{lane}")
            rows = [a ^ b for a, b in zip(rows, network)]
        lane_outputs.append(Cat(*rows))
    m.d.comb += [result.data.eq(Cat(*lane_outputs)), result.count.eq(x_count),
                 result.last.eq(x_last)]

    skid = Signal(dut.out.payload.shape(), reset_less=True)
    out = dut.out
    # The flags of the last three steps as plain logic too (`go` is ~skid_valid, and `fire`
    # includes `go`).
    m.d.sync += [s_valid.eq(fire | (skid_valid & s_valid)),
                 x_valid.eq((go & s_valid) | (skid_valid & x_valid)),
                 out.valid.eq((out.valid & ~out.ready) | skid_valid | x_valid),
                 skid_valid.eq(out.valid & ~out.ready & (skid_valid | x_valid))]
    with m.If(~out.valid | out.ready):
        m.d.sync += out.payload.eq(Mux(skid_valid, skid.as_value(), result.as_value()))
    # As the queues' spare entries: an empty skid loads every cycle, enabled by a register.
    with m.If(go):
        m.d.sync += skid.eq(result)
    return m
