"""Every shell command the README shows still works: `make` targets exist (dry run), `tuneline` commands
parse with the options shown, and (slow) the product-from-the-shell commands run for real on a small model."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, age_files

README = PROJECT_ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent


def readme_commands() -> list[str]:
    """The lines of the README's ```bash blocks, without comments."""
    commands, inside = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash"
            continue
        command = line.split(" #")[0].strip()
        if inside and command and not command.startswith("#"):
            commands.append(command)
    return commands


def test_the_readme_shows_commands():
    commands = readme_commands()
    assert any(c.startswith("make demo") for c in commands) and any(c.startswith("make test") for c in commands)
    assert any("dagster asset materialize" in c for c in commands)
    assert not any(" -w " in c for c in commands if "dagster asset" in c), "dagster 1.13 has no -w there"


@pytest.mark.parametrize("command", [c for c in readme_commands() if c.startswith("make ")])
def test_make_targets_exist(command):
    target = shlex.split(command)[1]
    result = subprocess.run(["make", "-n", target], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", [c for c in readme_commands()
                                     if shlex.split(c)[0].endswith("tuneline") and "--help" not in c])
def test_tuneline_commands_parse(command):
    from tuneline.cli import build_parser

    build_parser().parse_args(shlex.split(command)[1:])  # argparse exits on an unknown command or option


@pytest.mark.parametrize("command", [c for c in readme_commands() if "python -m tuneline.training" in c])
def test_training_module_command_parses(command):
    result = subprocess.run([sys.executable, *shlex.split(command)[1:3], "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--config" in result.stdout


def test_pii_eval_commands_run(shared_data):
    commands = [c for c in readme_commands() if "pii-eval" in c]
    assert len(commands) == 2  # the held-out sets, then the dev sets
    for command in commands:
        argv = [str(VENV_BIN / "tuneline"), *shlex.split(command)[1:]]
        files = [a for a in argv[2:] if not a.startswith("-")]
        result = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.count("| OVERALL |") == len(files), "each file is reported apart"


@pytest.mark.slow
def test_a_product_from_the_shell_as_the_readme_says(tmp_path, tiny_model_dir):
    """generate -> products sync -> dagster asset materialize, exactly as shown, on a fresh storage root."""
    steps = [c for c in readme_commands() if " generate " in c or "products sync" in c or "asset materialize" in c]
    assert len(steps) == 3
    env = {**os.environ, "TUNELINE_HOME": str(tmp_path / ".tuneline"), "TUNELINE_MODEL_SOURCE": "local",
           "TUNELINE_MODEL": str(tiny_model_dir), "DAGSTER_HOME": str(tmp_path / ".tuneline" / "dagster_home")}
    env.pop("TUNELINE_LANDING", None)
    for command in steps:
        argv = shlex.split(command)
        argv[0] = str(VENV_BIN / Path(argv[0]).name)
        result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        if " generate " in command:
            age_files(tmp_path / ".tuneline" / "landing")
        # the tiny model cannot beat its base, so the blocking promotion gate stops registered_model (and the
        # command's exit code); with the embedded model the gate passes. Anything else is a failure.
        gate_only = "asset materialize" in command and "promotion_gate" in result.stderr and \
            result.stderr.count("STEP_FAILURE") <= 1 and "eval_report" in result.stderr
        assert result.returncode == 0 or gate_only, (command, result.stdout[-2000:], result.stderr[-4000:])
    assets = tmp_path / ".tuneline" / "assets"
    for asset in ("raw_tickets", "cleaned_conversations", "dataset_splits", "lora_adapter", "eval_report"):
        assert list((assets / asset).glob("billing.*")), asset
