"""The weight-streaming decryptor as a Verilog top with AXI4-Stream port names, plus its sidecar.

The sidecar (``X.json`` beside ``X.v``) is enough to drive the module from the protocol alone
(``docs/stream-protocol.md``): every parameter, every matrix, and the bit layout of each stream.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from flexor.stream import CHUNKS_BITS, CONFIG_BITS, DESCRIPTOR_WIDTH, count_width
from hdl import Decryptor

from .verilog import top_files, xor2_sidecar

__all__ = ["DEFAULT_DECRYPTOR_TOP", "DecryptorTop", "decryptor_files", "latency_sidecar"]

DEFAULT_DECRYPTOR_TOP = "flexor_decryptor"


class DecryptorTop(wiring.Component):
    """:class:`hdl.Decryptor` with flat AXI4-Stream port names for use outside Amaranth.

    Parameters are those of :class:`hdl.Decryptor`.

    Members
    -------
    s_desc_tdata, s_desc_tvalid : ``In``; s_desc_tready : ``Out(1)``
        Descriptors: chunk count in ``tdata[31:0]``, configuration index in ``tdata[39:32]``.
    s_axis_tdata, s_axis_tvalid, s_axis_tlast : ``In``; s_axis_tready : ``Out(1)``
        Encrypted data words.
    m_axis_tdata, m_axis_tvalid, m_axis_tlast, m_axis_tuser : ``Out``; m_axis_tready : ``In(1)``
        Decrypted chunks; ``tuser`` = number of valid chunks in the beat.
    error : ``Out(2)``
        Sticky: bit 0 configuration index out of range, bit 1 zero chunk count.
    """

    def __init__(self, *, configs, width, lanes, pipeline=False, minimize=False):
        self._decryptor = Decryptor(configs=configs, width=width, lanes=lanes, pipeline=pipeline,
                                    minimize=minimize)
        super().__init__({
            "s_desc_tdata": In(DESCRIPTOR_WIDTH), "s_desc_tvalid": In(1), "s_desc_tready": Out(1),
            "s_axis_tdata": In(width), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(self._decryptor.nout * lanes), "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1), "m_axis_tlast": Out(1), "m_axis_tuser": Out(count_width(lanes)),
            "error": Out(2),
        })

    @property
    def decryptor(self):
        return self._decryptor

    def elaborate(self, platform):
        m = Module()
        m.submodules.decryptor = core = self._decryptor
        m.d.comb += [
            core.desc.payload.eq(self.s_desc_tdata), core.desc.valid.eq(self.s_desc_tvalid),
            self.s_desc_tready.eq(core.desc.ready),
            core.data.payload.data.eq(self.s_axis_tdata),
            core.data.payload.last.eq(self.s_axis_tlast),
            core.data.valid.eq(self.s_axis_tvalid), self.s_axis_tready.eq(core.data.ready),
            self.m_axis_tdata.eq(core.out.payload.data),
            self.m_axis_tlast.eq(core.out.payload.last),
            self.m_axis_tuser.eq(core.out.payload.count), self.m_axis_tvalid.eq(core.out.valid),
            core.out.ready.eq(self.m_axis_tready),
            self.error.eq(core.error),
        ]
        return m


def latency_sidecar(core):
    """The sidecar's ``latency``: the rule of ``docs/stream-protocol.md`` and its figures."""
    return {
        "descriptor": core.latency,
        "word": core.word_latency,
        "word_start": core.word_start,
        "rule": "with nothing stalled, a beat is valid `descriptor` cycles after its layer's "
                "descriptor is accepted and `word` cycles after the last data word it needs "
                "is accepted, whichever is later; a layer's first word is accepted at the "
                "earliest `word_start` cycles after its descriptor",
        "first_beat": [core.first_beat_latency(index) for index in range(len(core.configs))],
        "first_beat_meaning": "per configuration: cycles from the descriptor to the first "
                              "beat of a layer of at least `lanes` chunks whose words are "
                              "offered from the descriptor's cycle on",
    }


def decryptor_files(configs, verilog_path, *, width, lanes=1, top=DEFAULT_DECRYPTOR_TOP,
                    pipeline=False, minimize=False):
    """Generate the decryptor: ``{verilog_path: text, sidecar_path: text}``.

    Raises ``TypeError``/``ValueError`` (one line) for parameters :class:`hdl.Decryptor` refuses.
    """
    component = DecryptorTop(configs=configs, width=width, lanes=lanes, pipeline=pipeline,
                             minimize=minimize)
    core = component.decryptor
    nout = core.nout
    fields = {
        "width": width,
        "lanes": lanes,
        "nout": nout,
        "nin": [config.nin for config in core.configs],
        "pipeline": pipeline,
        "buffer_width": core.buffer_width,
        "latency": latency_sidecar(core),
        "layer_gap": core.layer_gap,
        "descriptor": {
            "port": "s_desc_tdata", "width": DESCRIPTOR_WIDTH,
            "fields": {"chunks": {"lsb": 0, "width": CHUNKS_BITS},
                       "config": {"lsb": CHUNKS_BITS, "width": CONFIG_BITS}},
            "malformed": "config >= len(configs) or chunks == 0: consumed, no output, sticky "
                         "error bit; a bad config with chunks > 0 discards its data words up to "
                         "and including the one with tlast",
        },
        "data": {
            "port": "s_axis_tdata", "width": width,
            "packing": "chunk j of a layer = stream bits j*nin .. j*nin+nin-1; stream bit b = "
                       "bit b % width of word b // width; each layer starts on a new word, its "
                       "last word is zero-padded and has tlast = 1",
        },
        "output": {
            "port": "m_axis_tdata", "width": nout * lanes,
            "chunk_bits": "chunk i of the beat in bits [i*nout, (i+1)*nout)",
            "tuser": {"port": "m_axis_tuser", "width": count_width(lanes),
                      "meaning": "number of valid chunks in the beat (lanes except on a "
                                 "layer's final beat); chunks past it are all zero"},
            "tlast": "on the final beat of every layer",
        },
        "error": {"port": "error", "bits": {"0": "bad_config", "1": "zero_chunks"},
                  "sticky": "until rst"},
    }
    configs = [{"index": index, "xor2": xor2_sidecar(core.programs[index], config, minimize),
                **config.to_dict()}
               for index, config in enumerate(core.configs)]
    return top_files(component, verilog_path, kind="decryptor", top=top, fields=fields,
                     tables={"configs": configs})
