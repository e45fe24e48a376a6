"""Malformed sweep configs: each gives ONE line naming the file, the field, the value and the fix,
and exit code 2 through the CLI.

Every ``tests/data/configs/bad_*.yaml`` starts with ``# expect: A | B | ...``: substrings the
error line must contain (field path, offending value, what is allowed).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from energybench.cli import main
from energybench.errors import ConfigError
from energybench.config import load_config

DATA = Path(__file__).parent / "data" / "configs"
BAD = sorted(DATA.glob("bad_*.yaml"))


def expectations(path: Path) -> list[str]:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first.startswith("# expect:"), f"{path.name} needs a '# expect: ...' first line"
    return [part.strip() for part in first.removeprefix("# expect:").split("|") if part.strip()]


def test_there_are_enough_malformed_fixtures() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_malformed_config_one_line_error(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = info.value.one_line()
    assert "\n" not in str(info.value)
    assert str(path) in line, line  # names the file
    for part in expectations(path):
        assert part in line, f"{part!r} not in {line!r}"
    assert info.value.exit_code == 2


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_malformed_config_cli_exit_2(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["config", "validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("energybench: error: ")
    for part in expectations(path):
        assert part in lines[0]


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(missing)
    assert main(["config", "validate", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and len(err.strip().splitlines()) == 1


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file; needs POSIX permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "secret.yaml"
    shutil.copy(DATA / "valid_minimal.yaml", p)
    p.chmod(0)
    try:
        with pytest.raises(ConfigError, match="permission denied") as info:
            load_config(p)
        assert str(p) in info.value.one_line()
    finally:
        p.chmod(0o644)


def test_non_string_key(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("models: [synthetic:tiny]\n1: 2\n")
    with pytest.raises(ConfigError, match="key 1 is not a name"):
        load_config(p)


def test_several_errors_counted(tmp_path: Path) -> None:
    p = tmp_path / "many.yaml"
    p.write_text("models: [synthetic:tiny]\nwarmup: -1\norder: sideways\nmax_failures: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    line = info.value.one_line()
    assert line.startswith(f"{p}: warmup = -1: ")
    assert line.endswith("(and 2 more)")


def test_error_message_names_closest_key_at_any_depth(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("models: [synthetic:tiny]\ngrid:\n  prompt:\n    sutes: [short_dialogue]\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    line = info.value.one_line()
    assert "unknown key 'sutes' in grid.prompt" in line
    assert "did you mean 'suites'?" in line
    assert "allowed keys: n_prompt, suites, prompt_ids, text" in line
