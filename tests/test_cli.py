"""The command line in an installation without the stand-ins, such as the production image."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.helpers import base_env

if TYPE_CHECKING:
    from pathlib import Path

# Python as it runs where the standins package is not installed: importing it fails.
WITHOUT_STANDINS = (
    "import sys; sys.modules['standins'] = None; "
    "from bot.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("command", [["demo"], ["rhombus-sim", "--port", "8081"]])
def test_demo_and_simulator_without_the_standins_say_so_in_one_line(
    command: list[str], tmp_path: Path
) -> None:
    """`demo` and `rhombus-sim` without the stand-ins say why on stderr and exit with 2."""
    done = subprocess.run(  # noqa: S603 - this interpreter, with the arguments above
        [sys.executable, "-c", WITHOUT_STANDINS, *command],
        env=base_env(),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert 2 == done.returncode, done.stderr
    assert (
        "the demo and the simulators are not part of this installation; "
        "install the project from its source checkout\n"
    ) == done.stderr
    assert "" == done.stdout
