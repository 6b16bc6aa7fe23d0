"""The host side of the classify application: images to the board over a serial port, answers
back, every answer compared with the integer model (``python -m boards classify``).

One request at a time (the protocol is stop-and-wait, :mod:`boards.protocol`). A request whose
answer does not come within the timeout, comes garbled, or reports the request damaged is sent
again, up to ``retries`` times; then the run stops with one line saying which of the three it
was. Answers with another tag (late answers to an earlier copy) are skipped.
"""

import os
import sys
import time
from typing import NamedTuple

import numpy as np

from .protocol import BAD_REQUEST, ENGINE_ERROR, AnswerReader, encode_request

__all__ = ["BoardError", "BoardLink", "RunResult", "classify_images", "ProgressBar"]


class BoardError(RuntimeError):
    """The board cannot be reached or does not answer properly; the message says how."""


class BoardLink:
    """A serial connection to a board running the classify application.

    Parameters
    ----------
    port : str
        Serial device (``/dev/ttyUSB1``) or any pyserial URL.
    baud : int
    classes : int
        Logits per answer.
    timeout : float
        Seconds to wait for one answer.
    retries : int
        Times a request is sent again before giving up.
    """

    def __init__(self, port, *, baud, classes, timeout=2.0, retries=3):
        try:
            import serial
        except ImportError:
            raise BoardError("the host side needs pyserial: pip install -e '.[fpga]'") from None
        self.port, self.baud, self.timeout, self.retries = port, baud, timeout, retries
        self._classes = classes
        if "://" not in port and not os.path.exists(port):
            raise BoardError(f"no serial port {port}: is the board plugged in? (the iCEBreaker "
                             f"and the ULX3S show up as /dev/ttyUSB*)")
        try:
            self._serial = serial.serial_for_url(port, baudrate=baud, timeout=0.02)
        except (serial.SerialException, OSError, ValueError) as error:
            raise BoardError(f"cannot open {port}: {error}") from None
        self._serial.reset_input_buffer()
        self._reader = AnswerReader(classes)
        #: Requests sent again so far, by cause.
        self.resent = {"timeout": 0, "garbled": 0, "bad request": 0}

    def close(self):
        self._serial.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def classify(self, tag, pixels):
        """Send one image; return its :class:`~boards.protocol.Answer` (status ``OK``)."""
        frame = encode_request(tag, pixels)
        last_cause = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.resent[last_cause] += 1
            self._serial.write(frame)
            answer, last_cause, detail = self._await(tag)
            if answer is not None:
                return answer
        if last_cause == "garbled":
            raise BoardError(f"garbled answers from the board on {self.port}: {detail} "
                             f"(is it set to {self.baud} baud?)")
        if last_cause == "bad request":
            raise BoardError(f"the board on {self.port} found every copy of request {tag} "
                             f"damaged (is it set to {self.baud} baud?)")
        raise BoardError(f"no answer from the board on {self.port} within {self.timeout:g} s "
                         f"({self.retries} resends): is it programmed with the classify "
                         f"bitstream and set to {self.baud} baud?")

    def _await(self, tag):
        """Read until the answer to ``tag`` or a reason to resend: ``(answer, cause, detail)``."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            chunk = self._serial.read(max(1, self._serial.in_waiting))
            for item in self._reader.feed(chunk):
                if isinstance(item, ValueError):
                    return None, "garbled", str(item)
                if item.tag != tag:
                    continue
                if item.status == ENGINE_ERROR:
                    raise BoardError(f"the board on {self.port} reports an engine error: its "
                                     f"weight stream is malformed (rebuild the bitstream)")
                if item.status == BAD_REQUEST:
                    return None, "bad request", None
                return item, None, None
        return None, "timeout", None


class ProgressBar:
    """A one-line progress bar on a terminal (nothing when ``stream`` is not one)."""

    def __init__(self, total, stream=None, width=30):
        self._total, self._width = total, width
        self._stream = sys.stderr if stream is None else stream
        self._shown = hasattr(self._stream, "isatty") and self._stream.isatty()
        self._start = time.monotonic()

    def update(self, done, note=""):
        if not self._shown:
            return
        filled = self._width * done // max(1, self._total)
        rate = done / max(1e-9, time.monotonic() - self._start)
        self._stream.write(f"\r[{'#' * filled}{'.' * (self._width - filled)}] {done}/"
                           f"{self._total} images, {rate:.1f}/s {note}")
        self._stream.flush()

    def close(self):
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()


class RunResult(NamedTuple):
    """What a run measured; arrays are per image."""
    labels: np.ndarray           # the data set's labels
    board_classes: np.ndarray
    board_logits: np.ndarray
    model_classes: np.ndarray    # the integer model's
    model_logits: np.ndarray
    seconds: float
    resent: dict

    @property
    def count(self):
        return len(self.labels)

    @property
    def accuracy(self):
        return float(np.mean(self.board_classes == self.labels))

    @property
    def model_accuracy(self):
        return float(np.mean(self.model_classes == self.labels))

    @property
    def same_class(self):
        return int(np.sum(self.board_classes == self.model_classes))

    @property
    def same_logits(self):
        return int(np.sum(np.all(self.board_logits == self.model_logits, axis=1)))

    @property
    def mismatches(self):
        """Indices of the images whose logits differ from the integer model's."""
        return np.flatnonzero(~np.all(self.board_logits == self.model_logits, axis=1))


def classify_images(link, images, labels, program, progress=None):
    """Classify ``images`` (``(N, inputs)`` ints 0..255) on the board behind ``link``.

    ``program`` is the :class:`flexor.integer.IntegerProgram` the board was built from; its
    logits are the expected answer. Returns a :class:`RunResult`.
    """
    images = np.asarray(images, dtype=np.int64)
    model_logits = program.logits(images)
    classes, logits = [], []
    start = time.monotonic()
    for index, image in enumerate(images):
        answer = link.classify(index % 256, image.tolist())
        classes.append(answer.label)
        logits.append(answer.logits)
        if progress is not None:
            progress.update(index + 1, f"{sum(link.resent.values())} resent")
    seconds = time.monotonic() - start
    return RunResult(np.asarray(labels), np.asarray(classes, dtype=np.int64),
                     np.asarray(logits, dtype=np.int64).reshape(len(images), -1),
                     model_logits.argmax(axis=1), model_logits, seconds, dict(link.resent))
