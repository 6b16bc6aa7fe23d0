"""A test-only stand-in for a board running the classify application, behind a pseudo-terminal.

It answers requests with the integer model, in Python, on the pty's master side, so the host
tool can be tested through a real serial device path: timeouts, garbled answers, resends. The
real board logic is tested through the same kind of pty in ``tests/test_boards_classify.py``.
"""

import os
import select
import threading
import tty
import zlib

import numpy as np

from boards.protocol import BAD_REQUEST, OK, Answer, encode_answer, request_length
from boards.slip import SlipReader


class PtyBoardModel:
    """Answers classify requests on a pty with ``program``'s logits.

    ``behaviour``: ``"ok"``; ``"silent"`` (never answers); ``"garbled"`` (answers with a broken
    CRC); ``"off by one"`` (logit 0 one too high: a wrong board); ``"drop first"`` (loses the
    first request's answer, then behaves). ``path`` is the device the host opens.
    """

    def __init__(self, program, behaviour="ok"):
        self.program, self.behaviour = program, behaviour
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)         # as pyserial will; no echo before the host opens it
        self.path = os.ttyname(self._slave)
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self):
        self._stop.set()
        self._thread.join()
        os.close(self.master)
        os.close(self._slave)

    def _serve(self):
        frames = SlipReader()
        size = request_length(self.program.inputs)
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.02)[0]:
                continue
            for payload, intact in frames.feed(os.read(self.master, 4096)):
                self.requests += 1
                ok = intact and len(payload) == size and \
                    zlib.crc32(payload[:-4]) == int.from_bytes(payload[-4:], "little")
                self._answer(payload, ok)

    def _answer(self, payload, ok):
        if self.behaviour == "silent" or (self.behaviour == "drop first" and
                                          self.requests == 1):
            return
        pixels = np.frombuffer(payload[1:1 + self.program.inputs], dtype=np.uint8)
        logits = [0] * self.program.classes
        if ok:
            logits = [int(v) for v in self.program.logits(pixels[None].astype(np.int64))[0]]
            if self.behaviour == "off by one":
                logits[0] += 1
        label = int(np.argmax(logits))
        frame = encode_answer(Answer(payload[0], OK if ok else BAD_REQUEST, label, logits))
        if self.behaviour == "garbled":
            frame = frame[:5] + bytes([frame[5] ^ 0x10]) + frame[6:]
        os.write(self.master, frame)
