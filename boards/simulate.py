"""Run the board self-test in Amaranth's simulator and read its UART like a terminal would.

What runs here is :class:`~boards.top.SelfTest`, the whole of the board's logic; only the pin
buffers of :class:`~boards.top.BoardTop` are left out. The UART runs at a few cycles per bit
(``divisor``) so that a run takes thousands of cycles, not millions.
"""

from typing import NamedTuple

from amaranth.sim import Simulator

from .report import REPORT_LENGTH
from .top import SelfTest
from .uart import decode_uart

__all__ = ["SimulationResult", "simulate_selftest"]

#: UART cycles per bit in simulation.
SIMULATION_DIVISOR = 4


class SimulationResult(NamedTuple):
    """What the board showed: the UART text and the LEDs at the end of the run."""
    text: str
    running: bool
    passed: bool
    failed: bool
    cycles: int


def simulate_selftest(image, *, lanes=1, divisor=SIMULATION_DIVISOR, restart_at=None):
    """Simulate a self-test run until its report line has been sent.

    Parameters
    ----------
    image : :class:`~boards.image.WeightImage`
    lanes : int
    divisor : int
        UART cycles per bit.
    restart_at : int, optional
        Hold ``restart`` high for one cycle at this cycle (to check that a run starts over).

    Returns a :class:`SimulationResult`; its ``cycles`` is the simulated cycle count.
    """
    selftest = SelfTest(image=image, lanes=lanes, divisor=divisor)
    # A byte takes 10 bit times plus a cycle or two of hand-over between bytes.
    line_cycles = (REPORT_LENGTH + 2) * (10 * divisor + 2)
    budget = selftest.timeout + line_cycles + (restart_at or 0)
    levels = []
    state = {}

    async def testbench(ctx):
        end = budget
        for cycle in range(budget):
            if cycle == restart_at:
                ctx.set(selftest.restart, 1)
            elif cycle == (restart_at or 0) + 1:
                ctx.set(selftest.restart, 0)
            await ctx.tick()
            levels.append(ctx.get(selftest.tx))
            # The line starts right after the verdict; stop once it has had time to finish.
            if end == budget and cycle > (restart_at or 0) and not ctx.get(selftest.running):
                end = cycle + line_cycles
            if cycle >= end:
                break
        state.update(running=ctx.get(selftest.running), passed=ctx.get(selftest.passed),
                     failed=ctx.get(selftest.failed))

    simulator = Simulator(selftest)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    text = decode_uart(levels, divisor).decode("ascii", errors="replace")
    return SimulationResult(text, bool(state["running"]), bool(state["passed"]),
                            bool(state["failed"]), len(levels))
