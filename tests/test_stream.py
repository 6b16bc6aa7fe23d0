"""The stream packer and golden beats against a naive bit-by-bit model of the protocol."""

import json

import numpy as np
import pytest

from flexor import XorConfig, decrypt_reference
from flexor.stream import (
    DESCRIPTOR_WIDTH, Layer, as_layer, check_stream_parameters, decode_descriptor,
    descriptor_word, layers_from_json, layers_to_json, pack_stream,
)
from tests.stream_stimulus import make_configs, random_layers

NOUT = 20


def naive_pack(configs, layers, width, lanes):
    """The protocol written out bit by bit, as docs/stream-protocol.md states it."""
    descriptors, words, lasts, beats = [], [], [], []
    for config_index, chunks, bits in layers:
        descriptors.append(chunks + config_index * 2 ** 32)
        stream = [int(b) for row in bits for b in row]
        while len(stream) % width:
            stream.append(0)
        for start in range(0, len(stream), width):
            words.append(sum(bit << i for i, bit in enumerate(stream[start:start + width])))
            lasts.append(start + width == len(stream))
        decrypted = decrypt_reference(configs[config_index], bits)
        nout = configs[config_index].nout
        for first in range(0, chunks, lanes):
            data = 0
            group = decrypted[first:first + lanes]
            for lane, row in enumerate(group):
                for r, bit in enumerate(row):
                    data |= int(bit) << (lane * nout + r)
            beats.append((data, len(group), first + lanes >= chunks))
    return descriptors, words, lasts, beats


@pytest.mark.parametrize("width", [8, 16, 32, 64])
@pytest.mark.parametrize("lanes", [1, 2, 3])
def test_pack_stream_matches_naive_model(width, lanes):
    seed = width * 10 + lanes
    configs = make_configs(12, 7, 19, 40)
    # 1 chunk; counts not a multiple of lanes; 8 x 12 = 96 bits, a multiple of every width.
    counts = [(0, 1), (1, 5), (2, 7), (0, 8), (3, 3), (1, 16), (2, 1)]
    layers = random_layers(configs, counts, seed)
    packed = pack_stream(configs, layers, width=width, lanes=lanes)
    descriptors, words, lasts, beats = naive_pack(configs, layers, width, lanes)
    assert packed.descriptors == descriptors, f"seed {seed}"
    assert packed.words == words, f"seed {seed}"
    assert packed.lasts == lasts, f"seed {seed}"
    assert [(b.data, b.count, b.last) for b in packed.beats] == beats, f"seed {seed}"
    assert sum(1 for b in packed.beats if b.last) == len(layers)
    assert len(packed.words) == sum(-(-c * configs[k].nin // width) for k, c, _ in layers)


def test_beat_positions_name_layer_and_chunk():
    configs = make_configs(12)
    packed = pack_stream(configs, random_layers(configs, [(0, 5), (0, 2)], 3), width=32,
                         lanes=2)
    assert [(b.layer, b.chunk, b.count) for b in packed.beats] == \
        [(0, 0, 2), (0, 2, 2), (0, 4, 1), (1, 0, 2)]


def test_flat_packed_bytes_equal_bit_array():
    """A container layer (flat packed bytes, stray bits past the end) packs like its bits."""
    configs = make_configs(12, 7)
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, (9, 7), dtype=np.uint8)
    flat = np.packbits(bits.reshape(-1), bitorder="little")
    flat[-1] |= 0x80  # 63 bits in 8 bytes: the 64th bit must be ignored
    from_bits = pack_stream(configs, [(1, 9, bits)], width=16, lanes=2)
    from_bytes = pack_stream(configs, [(1, 9, flat)], width=16, lanes=2)
    from_raw = pack_stream(configs, [(1, 9, flat.tobytes())], width=16, lanes=2)
    assert from_bits == from_bytes == from_raw


def test_layers_json_round_trip():
    configs = make_configs(12, 19)
    layers = [as_layer(configs, layer)
              for layer in random_layers(configs, [(0, 3), (1, 11)], 9)]
    text = json.dumps(layers_to_json(layers))
    again = layers_from_json(configs, json.loads(text))
    assert all(a.config == b.config and np.array_equal(a.bits, b.bits)
               for a, b in zip(layers, again))


def test_descriptor_fields():
    assert DESCRIPTOR_WIDTH == 40
    assert descriptor_word(3, 1000) == 1000 | 3 << 32
    assert decode_descriptor(descriptor_word(255, 2 ** 32 - 1)) == (255, 2 ** 32 - 1)
    assert descriptor_word(0, 0) == 0   # malformed on purpose is allowed here
    with pytest.raises(ValueError, match="config must fit in 8 bits"):
        descriptor_word(256, 1)
    with pytest.raises(ValueError, match="chunks must fit in 32 bits"):
        descriptor_word(0, 2 ** 32)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"width": 24}, ValueError, "width must be one of 8, 16, 32, 64, not 24"),
    ({"width": True}, ValueError, "width must be one of"),
    ({"lanes": 0}, ValueError, "lanes must be an integer >= 1, not 0"),
    ({"lanes": 1.5}, TypeError, "lanes must be an integer, not 1.5"),
    ({"configs": []}, ValueError, "at least one"),
    ({"configs": "x"}, TypeError, "configs\\[0\\] must be a flexor.XorConfig"),
    ({"configs": make_configs(12) + make_configs(8, nout=16)}, ValueError,
     "configs\\[1\\] has nout 16, configs\\[0\\] has 20"),
    ({"configs": make_configs(65)}, ValueError, "configs\\[0\\] has nin 65, more than the "
                                                "supported 64"),
])
def test_bad_parameters(kwargs, error, message):
    arguments = {"configs": make_configs(12), "width": 32, "lanes": 2, **kwargs}
    with pytest.raises(error, match=message):
        check_stream_parameters(arguments["configs"], arguments["width"], arguments["lanes"])


@pytest.mark.parametrize("layer, message", [
    ((2, 1, np.zeros((1, 12), np.uint8)), "index 2 is out of range for 1"),
    ((0, 0, np.zeros((0, 12), np.uint8)), "layer chunks must be an integer >= 1, not 0"),
    ((0, 2, np.zeros((3, 12), np.uint8)), "shape \\(2, 12\\), not \\(3, 12\\)"),
    ((0, 2, np.full((2, 12), 2, np.uint8)), "only 0 and 1"),
    ((0, 2, np.zeros(4, np.uint8)), "needs 3 bytes, not 4"),
    ((0, 2), "must be \\(config index, chunks, bits\\)"),
])
def test_bad_layers(layer, message):
    with pytest.raises((TypeError, ValueError), match=message):
        pack_stream(make_configs(12), [layer], width=32, lanes=1)


def test_layer_tuple_accepted_back():
    configs = make_configs(7)
    layer = as_layer(configs, (0, 2, np.ones((2, 7), np.uint8)))
    assert isinstance(layer, Layer) and layer.chunks == 2
    again = as_layer(configs, layer)
    assert again.config == 0 and np.array_equal(again.bits, layer.bits)


def test_worked_example_of_the_protocol_doc():
    """docs/stream-protocol.md's example, values worked out by hand."""
    configs = [XorConfig.from_matrix([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 0, 0]]),
               XorConfig.from_matrix([[1, 0, 0, 0, 1], [0, 1, 1, 0, 0], [0, 0, 1, 1, 1],
                                      [1, 1, 0, 0, 0]])]
    layers = [(0, 3, np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]], np.uint8)),
              (1, 2, np.array([[1, 1, 0, 0, 1], [0, 0, 1, 1, 1]], np.uint8))]
    packed = pack_stream(configs, layers, width=8, lanes=2)
    assert packed.descriptors == [0x0_00000003, 0x1_00000002]
    assert packed.words == [0b10011101, 0b00000001, 0b10010011, 0b00000011]
    assert packed.lasts == [False, True, False, True]
    assert [(b.data, b.count, b.last) for b in packed.beats] == \
        [(0b1110_1011, 2, False), (0b0000_0101, 1, True), (0b0111_0110, 2, True)]
