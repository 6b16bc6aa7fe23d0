"""The sidecar: ``X.json`` beside every generated ``X.v``, saying exactly what was built.

Every sidecar holds ``kind`` (``xor_decoder``, ``decryptor``, ``engine``...), ``top`` (the
Verilog module), the top's own fields, ``ports`` and ``tools``, then its matrices: ``matrix``
for a single network, ``configs`` (one entry per configuration, each with its ``matrix``) for a
configuration table. A new Verilog top describes itself by adding fields; tools and testbenches
read every sidecar with :meth:`Sidecar.load`. This module is pure data (no Amaranth): cocotb
testbenches import it inside the simulator.
"""

import json
import os

from .xor_config import XorConfig, dumps_config_json, load_matrix_file

__all__ = ["Sidecar", "sidecar_path"]


def sidecar_path(verilog_path):
    """``decoder.v`` -> ``decoder.json`` (any other name gets ``.json`` appended)."""
    root, extension = os.path.splitext(verilog_path)
    return (root if extension == ".v" else verilog_path) + ".json"


class Sidecar(dict):
    """The fields of one sidecar, in the order they are written (a ``dict``).

    Write one with :meth:`dumps` (two-space JSON, one matrix row per line, byte-stable), read
    one with :meth:`load`.
    """

    def dumps(self):
        """The sidecar's text."""
        return dumps_config_json(self)

    def files(self, verilog_path, verilog):
        """``{verilog_path: verilog, sidecar path: text}``, the files of one generated top."""
        return {verilog_path: verilog, sidecar_path(verilog_path): self.dumps()}

    @classmethod
    def load(cls, path):
        """Read the sidecar at ``path``.

        Raises ``ValueError`` (one line naming the file) when it cannot be read, is not JSON, has
        a duplicate key or is not a JSON object.
        """
        fields = load_matrix_file(path)
        if not isinstance(fields, dict):
            raise ValueError(f"{path}: sidecar must be a JSON object")
        return cls(fields)

    @classmethod
    def loads(cls, text):
        """The sidecar whose text is ``text`` (as :meth:`dumps` wrote it)."""
        return cls(json.loads(text))

    @classmethod
    def beside(cls, verilog_path):
        """:meth:`load` the sidecar of the Verilog file ``verilog_path``."""
        return cls.load(sidecar_path(str(verilog_path)))

    @property
    def configs(self):
        """The configuration table (``configs``) as a list of :class:`~flexor.XorConfig`."""
        return [XorConfig.from_matrix(config["matrix"]) for config in self["configs"]]
