"""Every bad input of tests/bad_inputs.rs raises InputError with the command line's
message and field path."""

from __future__ import annotations

import json
import sys

import pytest

import atlas_mmm
from bad_cases import load
from conftest import REPO, run_cli

CASES = load(REPO / "tests" / "bad_inputs.rs")


def test_the_cases_were_read():
    assert len(CASES) >= 15
    assert all(contents for _, _, contents, _ in CASES)


def read_dict(path):
    """The file as a dict, for `Problem.from_dict`; None where Python cannot read it."""
    try:
        if path.suffix == ".toml" and sys.version_info >= (3, 11):
            import tomllib

            return tomllib.loads(path.read_text())
        if path.suffix == ".json":
            return json.loads(path.read_text())
    except ValueError:
        return None
    return None


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_input_error_like_the_cli(atlas_bin, tmp_path, case):
    name, file, contents, expected = case
    path = tmp_path / file
    path.write_text(contents)
    cli = run_cli(atlas_bin, "validate", str(path))
    assert cli.returncode == 2, cli.stderr
    message = cli.stderr.strip().removeprefix("error: ")

    with pytest.raises(atlas_mmm.InputError) as excinfo:
        atlas_mmm.Problem.from_file(str(path)).validate()
    err = excinfo.value
    assert isinstance(err, ValueError)
    assert str(err) == message
    assert err.path == str(path)
    # The field path is the one the command line names, right after the file.
    if err.field:
        assert message.startswith(f"{path}: {err.field}: ") or isinstance(
            err, atlas_mmm.InfeasibleError
        )
    for text in expected:
        assert text in str(err), text
    if isinstance(err, atlas_mmm.InfeasibleError):
        assert err.rules == [] or all(r in message for r in err.rules)

    # The same document as a dict: the same field and reason, without the file.
    d = read_dict(path)
    if d is not None:
        with pytest.raises(atlas_mmm.InputError) as from_dict:
            atlas_mmm.Problem.from_dict(d).validate()
        assert from_dict.value.field == err.field
        assert from_dict.value.path is None
        assert type(from_dict.value) is type(err)


def test_optimize_raises_the_same_error(tmp_path):
    name, file, contents, _ = next(c for c in CASES if c[1] == "p.toml")
    path = tmp_path / file
    path.write_text(contents)
    problem = atlas_mmm.Problem.from_file(str(path))
    with pytest.raises(atlas_mmm.InputError) as a:
        problem.validate()
    with pytest.raises(atlas_mmm.InputError) as b:
        atlas_mmm.optimize(problem)
    assert str(a.value) == str(b.value)
