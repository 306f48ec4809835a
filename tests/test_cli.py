import subprocess
import sys

from click.testing import CliRunner

from dali_ba import __version__
from dali_ba.cli import main


def test_version_and_short_help():
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(main, ["-h"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_python_dash_m_runs_the_same_cli():
    done = subprocess.run([sys.executable, "-m", "dali_ba", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in done.stdout
