"""cocotb testbench for a generated engine, driven only by its sidecar and a stimulus file.

The sidecar (``FLEXOR_SIDECAR``) gives the configurations, every layer's shape, tile, widths and
integer constants; the stimulus (``FLEXOR_STIMULUS``, JSON) the encrypted planes and images::

    {"layers": [{"config": 0, "chunks": 70, "packed": "<hex>"}, ...],
     "images": [[12, 0, 255, ...], ...], "seed": 0,
     "stall": {"desc": 0.3, "data": 0.3, "image": 0.3, "result": 0.3},
     "reset_at": null}                 # cycle of a reset in the middle of an image, or null

The network is rebuilt from the two (:meth:`flexor.network.StreamedNetwork.from_bits`), the
weight stream packed by :mod:`flexor.stream` and replayed once per image. Every traced output
is compared with the integer model as it appears (the first mismatch names image, layer and
output), every result beat too. A source never withdraws a beat it offered. With ``reset_at``
the streams are dropped at that cycle, ``rst`` is held two cycles and everything starts over.
"""

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from flexor.network import StreamedNetwork
from flexor.stream import layers_from_json, pack_stream
from sim.streams import StreamSink, StreamSource, cocotb_port, random_pause
from sim.testbench import load_inputs


def load_case():
    sidecar, stimulus = load_inputs()
    configs = sidecar.configs
    planes = layers_from_json(configs, stimulus["layers"])
    specs = [{**layer, "bits": plane.bits} for layer, plane in zip(sidecar["layers"], planes)]
    return sidecar, stimulus, StreamedNetwork.from_bits(configs, specs)


def signed(value, bits):
    return value - (1 << bits) if value >> (bits - 1) else value


@cocotb.test()
async def engine_matches_integer_model(dut):
    """Every output of every layer and every result equals the integer model."""
    sidecar, stimulus, network = load_case()
    images = np.asarray(stimulus["images"], dtype=np.int64)
    seed = stimulus.get("seed", 0)
    stall = {"desc": 0.0, "data": 0.0, "image": 0.0, "result": 0.0, **stimulus.get("stall", {})}
    reset_at = stimulus.get("reset_at")
    rng = random.Random(seed)
    width, lanes = sidecar["width"], sidecar["lanes"]
    packed = pack_stream(network.configs, network.stream_layers(), width=width, lanes=lanes)
    outputs = network.program.run_layers(images)
    expected = [(image, layer, row, int(outputs[layer][image, row]))
                for image in range(len(images)) for layer in range(len(outputs))
                for row in range(outputs[layer].shape[1])]
    logits = outputs[-1]
    classes, bits = sidecar["classes"], sidecar["logit_bits"]
    cls_width = sidecar["result"]["cls"]["width"]
    value_bits = next(p["width"] for p in sidecar["ports"] if p["name"] == "trace_value")

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    streams = [
        StreamSource(cocotb_port(dut.s_desc_tvalid, dut.s_desc_tready, dut.s_desc_tdata),
                     packed.descriptors * len(images), pause=random_pause(rng, stall["desc"])),
        StreamSource(cocotb_port(dut.s_axis_tvalid, dut.s_axis_tready,
                                 (dut.s_axis_tdata, dut.s_axis_tlast)),
                     list(zip(packed.words, packed.lasts)) * len(images),
                     pause=random_pause(rng, stall["data"])),
        StreamSource(cocotb_port(dut.s_img_tvalid, dut.s_img_tready, dut.s_img_tdata),
                     [int(p) for p in images.reshape(-1)], pause=random_pause(rng, stall["image"])),
        StreamSink(cocotb_port(dut.m_res_tvalid, dut.m_res_tready, dut.m_res_tdata),
                   pause=random_pause(rng, stall["result"])),
    ]

    async def reset():
        for stream in streams:
            stream.restart()
        dut.rst.value = 1
        await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        dut.rst.value = 0

    dut.m_res_tready.value = 0
    await reset()
    traced = results = 0
    limit = 40 * sidecar["cycle_bound"] * len(images) + 1000 + (reset_at or 0)
    for cycle in range(limit):
        if results == len(images):
            break
        if reset_at is not None and cycle == reset_at:
            await reset()
            traced, results = 0, 0
        for stream in streams:
            stream.drive()
        await ReadOnly()
        for source in streams[:-1]:
            source.settle()
        value = streams[-1].settle(f"cycle {cycle}, result {results} (seed {seed})")
        if int(dut.trace_valid.value):
            got = (int(dut.trace_layer.value), int(dut.trace_row.value),
                   signed(int(dut.trace_value.value), value_bits))
            assert traced < len(expected), f"cycle {cycle}: an extra output {got} (seed {seed})"
            image, layer, row, want = expected[traced]
            assert got == (layer, row, want), \
                (f"cycle {cycle}: image {image}, layer {layer}, output {row}: got {got[2]} "
                 f"(traced as layer {got[0]} output {got[1]}), want {want} (seed {seed})")
            traced += 1
        if value is not None:
            got = [signed((value >> (cls_width + i * bits)) & ((1 << bits) - 1), bits)
                   for i in range(classes)]
            assert got == [int(v) for v in logits[results]], \
                f"image {results}: logits {got}, want {list(logits[results])} (seed {seed})"
            cls = value & ((1 << cls_width) - 1)
            assert cls == int(logits[results].argmax()), \
                f"image {results}: class {cls}, want {int(logits[results].argmax())}"
            results += 1
        await RisingEdge(dut.clk)
    assert results == len(images), f"only {results} of {len(images)} results (seed {seed})"
    assert int(dut.error.value) == 0, f"error flags {int(dut.error.value):#b}"
    dut._log.info("checked %d outputs and %d results", traced, results)
