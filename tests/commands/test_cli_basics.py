"""`td-detr --version`, help texts and the package's type marker."""

from importlib.metadata import version
from pathlib import Path

import pytest

import td_detr
from td_detr.cli import build_parser, main


def test_version_flag_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"td-detr {version('td-detr')}"


def test_every_flag_of_every_command_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    missing = [f"{name} {action.option_strings[0]}"
               for name, sub in subparsers.choices.items()
               for action in sub._actions
               if action.option_strings and action.dest != "help" and not action.help]
    assert not missing


def test_package_ships_the_py_typed_marker():
    assert (Path(td_detr.__file__).parent / "py.typed").is_file()
