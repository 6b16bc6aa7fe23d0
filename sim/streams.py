"""Drive and check valid/ready streams one clock cycle at a time, in any simulator.

A testbench that feeds several streams of one block and checks its outputs runs one loop per
clock cycle: each :class:`StreamSource` and :class:`StreamSink` first *drives* its inputs for the
cycle (``valid`` and the payload, or ``ready``), then, once the signals have settled, *settles*:
the source counts a transfer, the sink returns the payload it took and checks the stream rule
(a payload offered and not taken is offered again unchanged in the next cycle). Gaps come from
pause generators, as in cocotbext-axi: an iterator of booleans, ``True`` for a cycle in which a
source withholds a new payload or a sink withholds ``ready`` (:func:`random_pause`, or
``itertools.cycle([1, 1, 0])``). A source obeys the rule itself: once it offers a payload it
keeps offering it until it is taken.

The same objects serve Amaranth's simulator (:func:`amaranth_port`) and cocotb
(:func:`cocotb_port`); this module imports neither.
"""

import itertools

__all__ = ["random_pause", "StreamSource", "StreamSink", "amaranth_port", "cocotb_port"]


def random_pause(rng, probability):
    """A pause generator: each cycle paused with ``probability``, drawn from ``rng``
    (a :class:`random.Random`)."""
    while True:
        yield rng.random() < probability


def _never():
    return itertools.repeat(False)


class StreamSource:
    """Offers ``items`` in order on ``port``, pausing when ``pause`` says so.

    Parameters
    ----------
    port : object
        The stream's signals, from :func:`amaranth_port` or :func:`cocotb_port`.
    items : sequence
        Payloads (an ``int``, or a tuple of ``int`` for a port whose payload is several signals).
    pause : iterator of bool, optional
        Drawn once per cycle in which the source has no payload on offer; ``True`` keeps
        ``valid`` low for that cycle. Default: never.
    """

    def __init__(self, port, items, *, pause=None):
        self.port = port
        self.items = items
        self.pause = _never() if pause is None else pause
        self.restart()

    def restart(self):
        """Start over from the first item (after a reset); drops any offer."""
        self.sent = 0
        self.offering = False
        self.port.set_valid(0)

    @property
    def done(self):
        return self.sent == len(self.items)

    def drive(self):
        """Set ``valid`` and the payload for this cycle."""
        if not self.offering and not self.done and not next(self.pause):
            self.offering = True
        self.port.set_valid(int(self.offering))
        if self.offering:
            self.port.set_payload(self.items[self.sent])

    def settle(self):
        """After the signals settled: ``True`` if the payload on offer was taken this cycle."""
        taken = self.offering and bool(self.port.ready())
        if taken:
            self.sent += 1
            self.offering = False
        return taken


class StreamSink:
    """Takes payloads from ``port``, withholding ``ready`` when ``pause`` says so, and checks
    that a payload offered while ``ready`` was low is offered again unchanged.

    Parameters
    ----------
    port : object
        The stream's signals, from :func:`amaranth_port` or :func:`cocotb_port`.
    pause : iterator of bool, optional
        Drawn every cycle; ``True`` keeps ``ready`` low for that cycle. Default: never.
    """

    def __init__(self, port, *, pause=None):
        self.port = port
        self.pause = _never() if pause is None else pause
        self.restart()

    def restart(self):
        """Forget a held payload (after a reset)."""
        self.held = None
        self.ready = False

    def drive(self):
        """Set ``ready`` for this cycle."""
        self.ready = not next(self.pause)
        self.port.set_ready(int(self.ready))

    def settle(self, where=""):
        """After the signals settled: the payload taken this cycle, or ``None``.

        Raises ``AssertionError`` (message prefixed by ``where``) when the payload offered last
        cycle and not taken changed or was withdrawn.
        """
        valid = bool(self.port.valid())
        payload = self.port.payload() if valid else None
        if self.held is not None:
            assert valid and payload == self.held, \
                f"{where}: payload changed or dropped while ready was low"
        self.held = payload if valid and not self.ready else None
        return payload if valid and self.ready else None


class _Port:
    def __init__(self, get, put, valid, ready, payload):
        self._get, self._put = get, put
        self._valid, self._ready, self._payload = valid, ready, payload

    def valid(self):
        return self._get(self._valid)

    def ready(self):
        return self._get(self._ready)

    def set_valid(self, value):
        self._put(self._valid, value)

    def set_ready(self, value):
        self._put(self._ready, value)

    def payload(self):
        if isinstance(self._payload, tuple):
            return tuple(self._get(signal) for signal in self._payload)
        return self._get(self._payload)

    def set_payload(self, value):
        if isinstance(self._payload, tuple):
            for signal, item in zip(self._payload, value):
                self._put(signal, item)
        else:
            self._put(self._payload, value)


def amaranth_port(ctx, stream):
    """The signals of ``stream`` (a ``lib.stream`` interface) in Amaranth's simulator, through
    the testbench context ``ctx``; a structured payload is read and written as one integer."""
    payload = stream.payload
    payload = payload.as_value() if hasattr(payload, "as_value") else payload
    return _Port(ctx.get, ctx.set, stream.valid, stream.ready, payload)


def cocotb_port(valid, ready, payload):
    """A stream of cocotb handles: ``payload`` is one handle or a tuple of them (``tdata``,
    ``tlast``...), whose values then form a tuple of ``int``."""
    def get(handle):
        return int(handle.value)

    def put(handle, value):
        handle.value = int(value)

    return _Port(get, put, valid, ready, payload)
