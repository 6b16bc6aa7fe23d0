"""SymbiYosys checks of the stream properties (hdl.formal.StreamHarness) of hdl.XorStage.

The good stage must pass bounded model checking, k-induction and cover; each broken variant
(one wrong line of handshake logic) must fail the property that names its bug.
"""

import gc
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from flexor import XorConfig
from hdl import XorStage
from hdl.formal import StreamHarness, matrix_function
from sim.formal import check_formal

pytestmark = pytest.mark.filterwarnings("ignore::flexor.xor_config.RankWarning")


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
        with pytest.raises(ValueError, match="capacity must be a positive integer, not 0"):
            StreamHarness(stage, capacity=0)
        with pytest.raises(ValueError, match="no stream member 'in'"):
            StreamHarness(stage, capacity=1, input="in")
        with pytest.raises(TypeError, match="dut must be"):
            StreamHarness("stage", capacity=1)
        del stage
        gc.collect()


def test_xor_stage_passes_bmc_induction_and_cover():
    results = check_formal(harness(XorStage, XorConfig.random(8, 10, 2, 0)))
    assert {task: result.status for task, result in results.items()} == \
        {"bmc": "PASS", "prove": "PASS", "cover": "PASS"}, results


@pytest.mark.parametrize("variant, property_text", [
    (AlwaysReady, "output valid/ready rule"),
    (StickyValid, "occupancy"),  # beats out exceed beats in
    (HalfRate, "no deadlock"),
])
def test_broken_stage_fails(variant, property_text):
    results = check_formal(harness(variant, XorConfig.random(8, 10, 2, 0)),
                           depths={"bmc": 8})
    assert results["bmc"].status == "FAIL", results
    assert any(property_text in failure for failure in results["bmc"].failures), results


@pytest.mark.slow
@pytest.mark.parametrize("spec", [(16, 20, 3, 7), (16, 20, "dense", 3), (19, 20, 2, 0)],
                         ids=["16-20-t3-s7", "16-20-dense", "19-20-t2"])
def test_xor_stage_deep_bmc_and_induction(spec):
    results = check_formal(harness(XorStage, XorConfig.random(*spec)),
                           depths={"bmc": 40, "prove": 4})
    assert all(result.passed for result in results.values()), results
