"""The inference engine as a Verilog top with AXI4-Stream port names, plus its sidecar.

The sidecar (``X.json`` beside ``X.v``) holds everything needed to drive the module and to check
it without the container: the decryptor's parameters and matrices, every layer's shape, tile,
widths and integer constants, the stream layouts and the timing figures (``docs/engine.md``).
"""

from amaranth.hdl import Module, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from flexor.stream import DESCRIPTOR_WIDTH
from hdl import InferenceEngine

from .verilog import top_files

__all__ = ["DEFAULT_ENGINE_TOP", "EngineTop", "engine_files", "engine_sidecar"]

DEFAULT_ENGINE_TOP = "flexor_engine"


class EngineTop(wiring.Component):
    """:class:`hdl.InferenceEngine` with flat AXI4-Stream port names for use outside Amaranth.

    Parameters are those of :class:`hdl.InferenceEngine`.

    Members
    -------
    s_desc_tdata, s_desc_tvalid : ``In``; s_desc_tready : ``Out(1)``
        Weight layer descriptors (``docs/stream-protocol.md``).
    s_axis_tdata, s_axis_tvalid, s_axis_tlast : ``In``; s_axis_tready : ``Out(1)``
        Encrypted weight words.
    s_img_tdata, s_img_tvalid : ``In``; s_img_tready : ``Out(1)``
        Raw inputs, one per beat, ``inputs`` beats per image.
    m_res_tdata, m_res_tvalid : ``Out``; m_res_tready : ``In(1)``
        One beat per image: class in the low bits, then every logit.
    error : ``Out(3)``
        Sticky: bad configuration index, zero chunk count, weight stream out of step.
    trace_valid, trace_layer, trace_row, trace_value : ``Out``
        Every requantized output (for testbenches).
    """

    def __init__(self, *, network, width, lanes, image_single_port_blocks=0,
                 constant_memory_rows=None):
        self._engine = InferenceEngine(network=network, width=width, lanes=lanes,
                                       image_single_port_blocks=image_single_port_blocks,
                                       constant_memory_rows=constant_memory_rows)
        engine = self._engine
        trace = engine.trace.payload.shape()
        super().__init__({
            "s_desc_tdata": In(DESCRIPTOR_WIDTH), "s_desc_tvalid": In(1), "s_desc_tready": Out(1),
            "s_axis_tdata": In(width), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "s_img_tdata": In(network.program.input_bits), "s_img_tvalid": In(1),
            "s_img_tready": Out(1),
            "m_res_tdata": Out(engine.result.payload.shape().size), "m_res_tvalid": Out(1),
            "m_res_tready": In(1),
            "error": Out(engine.error.shape().size),
            "trace_valid": Out(1), "trace_layer": Out(trace["layer"].shape),
            "trace_row": Out(trace["row"].shape), "trace_value": Out(trace["value"].shape),
        })

    @property
    def engine(self):
        return self._engine

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = core = self._engine
        m.d.comb += [
            core.desc.payload.eq(self.s_desc_tdata), core.desc.valid.eq(self.s_desc_tvalid),
            self.s_desc_tready.eq(core.desc.ready),
            core.data.payload.data.eq(self.s_axis_tdata),
            core.data.payload.last.eq(self.s_axis_tlast),
            core.data.valid.eq(self.s_axis_tvalid), self.s_axis_tready.eq(core.data.ready),
            core.image.payload.eq(self.s_img_tdata), core.image.valid.eq(self.s_img_tvalid),
            self.s_img_tready.eq(core.image.ready),
            self.m_res_tdata.eq(core.result.payload), self.m_res_tvalid.eq(core.result.valid),
            core.result.ready.eq(self.m_res_tready),
            self.error.eq(core.error),
            self.trace_valid.eq(core.trace.valid), self.trace_layer.eq(core.trace.payload.layer),
            self.trace_row.eq(core.trace.payload.row),
            self.trace_value.eq(core.trace.payload.value),
        ]
        return m


def engine_sidecar(top_component):
    """The sidecar fields of an :class:`EngineTop` (after ``kind`` and ``top``) and its
    configuration table: ``(fields, tables)``."""
    engine = top_component.engine
    network = engine.network
    result = engine.result.payload.shape()
    fields = {
        "width": engine.width,
        "lanes": engine.lanes,
        "nout": network.nout,
        "nin": [config.nin for config in network.configs],
        "inputs": network.program.inputs,
        "input_bits": network.program.input_bits,
        "classes": engine.classes,
        "logit_bits": engine.logit_bits,
        "result": {"port": "m_res_tdata", "width": result.size,
                   "cls": {"lsb": 0, "width": Shape.cast(result["cls"].shape).width},
                   "logits": {"lsb": Shape.cast(result["cls"].shape).width,
                              "bits": engine.logit_bits,
                              "meaning": "logit i in bits [lsb + i*bits, lsb + (i+1)*bits), "
                                         "two's complement"}},
        "error": {"port": "error", "bits": {"0": "bad_config", "1": "zero_chunks",
                                            "2": "bad_beat"}, "sticky": "until rst"},
        "layer_overhead": engine.layer_overhead,
        "layer_cycles": [engine.layer_cycles(i) for i in range(len(network.layers))],
        "cycle_bound": engine.cycle_bound(),
        "buffers": {name: {"depth": depth, "width": width}
                    for name, (depth, width) in engine.buffers.items()},
        # Only with the memory options of hdl.InferenceEngine, so default sidecars stay as
        # they were.
        **({"single_port_buffers": {name: {"depth": depth, "width": width}
                                    for name, (depth, width)
                                    in engine.single_port_buffers.items()}}
           if engine.single_port_buffers else {}),
        **({"constant_logic_rows": engine.constant_logic_rows}
           if engine.constant_logic_rows else {}),
        "layers": [{"config": layer.config, "inputs": layer.integer.inputs,
                    "outputs": layer.integer.outputs, "tile": layer.tile,
                    "chunks": layer.chunks, "in_bits": layer.integer.in_bits,
                    "out_bits": layer.integer.out_bits, "shift": layer.integer.shift,
                    "acc_bits": layer.integer.acc_bits, "sum_bits": layer.integer.sum_bits,
                    "mult": [int(v) for v in layer.integer.mult[0]],
                    "offset": [int(v) for v in layer.integer.offset]}
                   for layer in network.layers],
    }
    configs = [{"index": index, **config.to_dict()} for index, config in enumerate(network.configs)]
    return fields, {"configs": configs}


def engine_files(network, verilog_path, *, width, lanes=1, top=DEFAULT_ENGINE_TOP,
                 image_single_port_blocks=0, constant_memory_rows=None, platform=None):
    """Generate the engine for ``network`` (a :class:`flexor.network.StreamedNetwork`):
    ``{verilog_path: text, sidecar_path: text}``. Raises ``TypeError``/``ValueError`` (one
    line) for parameters :class:`hdl.InferenceEngine` refuses. The memory options are
    :class:`hdl.InferenceEngine`'s; ``platform`` is passed to elaboration (an iCE40 UltraPlus
    one instantiates ``SB_SPRAM256KA`` for single-port blocks)."""
    component = EngineTop(network=network, width=width, lanes=lanes,
                          image_single_port_blocks=image_single_port_blocks,
                          constant_memory_rows=constant_memory_rows)
    fields, tables = engine_sidecar(component)
    return top_files(component, verilog_path, kind="engine", top=top, fields=fields,
                     tables=tables, platform=platform)
