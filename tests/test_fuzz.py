"""Hostile input: hypothesis fuzzing of the matrix file loader and of the ``python -m gen`` CLI.

The contract: every input either works or is refused with one ``ValueError`` (loader) or one
``python -m gen: error: ...`` line and exit status 2 (CLI); never another exception, never a
traceback, never a partial or stray output file.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings, strategies as st

import flexor
from flexor import XorConfig
from flexor.cli import run_cli
from gen.__main__ import main
from gen.verilog import sidecar_path


VALID_SIDECAR = json.loads(json.dumps({
    "kind": "xor_decoder", "top": "xor_decoder", "nin": 4, "nout": 3, "ntap": 2, "seed": 0,
    "rank": 3, "registered": False, "matrix": [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]}))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=5),
    max_leaves=30)


@st.composite
def mutated_sidecars(draw):
    """The valid sidecar with fields replaced, dropped or added, and matrix entries altered."""
    data = json.loads(json.dumps(VALID_SIDECAR))
    for key in draw(st.lists(st.sampled_from(sorted(data) + ["extra"]), max_size=3)):
        action = draw(st.sampled_from(["replace", "drop"]))
        if action == "drop":
            data.pop(key, None)
        else:
            data[key] = draw(json_values)
    if isinstance(data.get("matrix"), list) and draw(st.booleans()):
        matrix = data["matrix"]
        row = draw(st.integers(0, max(0, len(matrix) - 1)))
        if matrix and isinstance(matrix[row], list) and matrix[row]:
            column = draw(st.integers(0, len(matrix[row]) - 1))
            matrix[row][column] = draw(json_values)
    return json.dumps(data).encode()


def truncated(text):
    return st.integers(0, len(text)).map(lambda n: text[:n])


file_contents = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    mutated_sidecars(),
    truncated(json.dumps(VALID_SIDECAR).encode()),
)


def _load_in(directory, content):
    path = Path(directory) / "m.json"
    path.write_bytes(content)
    return XorConfig.load(str(path)), str(path)


@settings(max_examples=400)
@given(content=file_contents)
@example(content=b"[" * 100000)
@example(content=b'{"matrix": [[' + b"1" * 5000 + b"]]}")
def test_matrix_loader_accepts_or_raises_one_value_error(content):
    with tempfile.TemporaryDirectory() as directory:
        try:
            config, _ = _load_in(directory, content)
        except ValueError as error:
            event("refused")
            message = str(error)
            assert message and "\n" not in message, repr(message)
            assert message.startswith(str(Path(directory) / "m.json")), message
            return
    event("accepted")
    # Accepted: the result must be a well-formed matrix that decrypts like the reference.
    matrix = config.matrix
    assert matrix.ndim == 2 and matrix.size and set(np.unique(matrix)) <= {0, 1}
    x = np.random.default_rng(0).integers(0, 2, size=(5, config.nin), dtype=np.uint8)
    np.testing.assert_array_equal(flexor.decrypt(config, x),
                                  flexor.decrypt_reference(matrix, x))


# Tokens a user might type, right and wrong, for every gen option.
FLAGS = ["--nin", "--nout", "--ntap", "--seed", "--matrix", "--top", "--registered", "-o",
         "--output", "--check", "--bogus"]
VALUES = ["0", "1", "3", "8", "12", "-2", "x", "", "1.5", "dense", "0x10", " 4", "good.json",
          "garbage.json", "missing.json", "subdir", "out.v", "sub/missing/out.v", "out",
          "good.v", "lone.v", "1bad", "xor_decoder", "ok_name"]
# Weighted towards valid values, so that plenty of commands get as far as writing files.
numbers = st.sampled_from(["1", "2", "5", "8"] * 4 + ["0", "-1", "x", "dense"])


matrix_files = st.sampled_from(["good.json", "good.v"] * 3 + VALUES)


@st.composite
def plausible_argv(draw):
    """Mostly-right commands: each option present or not, in any order, values mostly valid."""
    groups = []
    for flag, values in (("--nin", numbers), ("--nout", numbers), ("--ntap", numbers),
                         ("--seed", numbers), ("--matrix", matrix_files),
                         ("--top", st.sampled_from(["ok_name", "1bad", "x y", ""]))):
        if draw(st.integers(0, 7)) if flag in ("--nin", "--nout") else not draw(st.integers(0, 3)):
            groups.append([flag, draw(values)])
    if draw(st.booleans()):
        groups.append(["--registered"])
    if draw(st.integers(0, 9)):
        groups.append(["-o", draw(st.sampled_from(["out.v", "out", "subdir",
                                                   "sub/missing/out.v"]))])
    return [token for group in draw(st.permutations(groups)) for token in group]


argv_lists = (st.lists(st.sampled_from(FLAGS) | st.sampled_from(VALUES), max_size=9)
              | plausible_argv())


@pytest.fixture(scope="module")
def cli_fixtures(tmp_path_factory):
    """A good matrix and decoder, garbage, a Verilog without sidecar, a directory."""
    directory = tmp_path_factory.mktemp("gen-fixtures")
    (directory / "garbage.json").write_bytes(b"\x00{not json")
    (directory / "subdir").mkdir()
    (directory / "lone.v").write_text("module lone(); endmodule\n")
    # good.v and its sidecar good.json, which is also a matrix file (gen refuses to write a
    # sidecar over the matrix it reads, so they are made from the seed).
    assert run_cli("python -m gen", main, ["--nin", "6", "--nout", "8", "--seed", "0",
                                           "-o", str(directory / "good.v")]) == 0
    return directory


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argv_lists)
@example(argv=["--nin", "4", "--nout", "5", "-o", "sub/missing/out.v"])
@example(argv=["--nin", "4", "--nout", "5", "-o", "subdir"])
@example(argv=["--matrix", "garbage.json", "-o", "out.v"])
@example(argv=["--matrix", "good.json", "--registered", "--top", "ok_name", "-o", "out"])
def test_gen_cli_works_or_fails_with_one_line(argv, cli_fixtures, capsys):
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "run"
        shutil.copytree(cli_fixtures, root)
        capsys.readouterr()
        before = {path: path.stat().st_mtime_ns for path in root.rglob("*")}
        cwd = os.getcwd()
        os.chdir(root)
        try:
            status = run_cli("python -m gen", main, argv)
        finally:
            os.chdir(cwd)
        out, err = capsys.readouterr()
        event(f"exit status {status}")
        after = {path: path.stat().st_mtime_ns for path in root.rglob("*")}
        assert not [p for p in after if p.name.startswith(".tmp-")], f"{argv}: stray temp file"
        if status == 2:
            lines = err.splitlines()
            errors = [line for line in lines if not line.startswith("python -m gen: warning:")]
            assert len(errors) == 1 and errors[0].startswith("python -m gen: error: "), (argv,
                                                                                         err)
            assert after == before, f"{argv}: files changed although the command failed"
            return
        assert status in ((0, 1) if "--check" in argv else (0,)), (argv, status, out, err)
        if "--check" not in argv:
            written = sorted(str(path) for path in after if before.get(path) != after[path])
            verilog = [path for path in written if sidecar_path(path) in written]
            assert len(written) == 2 and len(verilog) == 1, (argv, written)
            assert "endmodule" in Path(verilog[0]).read_text(), argv
            sidecar = json.loads(Path(sidecar_path(verilog[0])).read_text())
            XorConfig.from_dict(sidecar)
