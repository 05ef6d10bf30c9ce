"""The wheel carries what a non-editable install needs: the configs, every module, the licence.

Builds the wheel from a copy of the build inputs (so nothing stale in the checkout's build/
leaks in and nothing is written to it). Installing the wheel and training is .ci/run's job.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CONF_DIR, REPO

# What setuptools reads to build; src/ is copied with any __pycache__ in it, to prove none ships.
BUILD_INPUTS = ["setup.py", "setup.cfg", "pyproject.toml", "README.md", "LICENSE", "src", "conf"]


def console_scripts() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    scripts = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    return [line.split("=")[0].strip() for line in scripts]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"
    tree.mkdir()
    for name in BUILD_INPUTS:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, tree / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps",
         "--no-build-isolation", "--quiet", "--wheel-dir", str(tmp / "dist")],
        check=True,
    )
    (path,) = (tmp / "dist").glob("flexunet-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_wheel_carries_every_config_and_module(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "flexunet/conf/train.yaml" in names
    assert "flexunet/conf/model/flexunet_cpu.yaml" in names
    configs = {p.relative_to(CONF_DIR).as_posix() for p in CONF_DIR.rglob("*.yaml")}
    assert {f"flexunet/conf/{c}" for c in configs} <= names
    src = REPO / "src"
    modules = {p.relative_to(src).as_posix() for p in (src / "flexunet").rglob("*.py")}
    assert modules <= names


def test_wheel_has_no_stray_files(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert {n.split("/")[0] for n in names} == {"flexunet", "flexunet-0.1.0.dist-info"}
    stray = [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".egg-info"))
             or (n.startswith("flexunet/") and not n.endswith((".py", ".yaml")))]
    assert not stray


def test_wheel_metadata_has_licence_and_commands(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    (licence,) = [n for n in names if ".dist-info/" in n and n.endswith("/LICENSE")]
    assert "Copyright (c) 2026 The FlexUNet authors" in wheel.read(licence).decode()
    metadata = wheel.read("flexunet-0.1.0.dist-info/METADATA").decode()
    assert "License: MIT" in metadata and "License-File: LICENSE" in metadata
    entry_points = wheel.read("flexunet-0.1.0.dist-info/entry_points.txt").decode()
    assert all(f"{name} = " in entry_points for name in console_scripts())


def test_unpacked_wheel_reads_its_own_configs(wheel: zipfile.ZipFile, tmp_path: Path) -> None:
    """Where cli.py looks in a non-editable install: the package's conf/, not a checkout's."""
    wheel.extractall(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", "from flexunet.commands import CONFIG_DIR; print(CONFIG_DIR)"],
        env={"PYTHONPATH": str(tmp_path)}, cwd=tmp_path, capture_output=True, text=True,
        check=True,
    ).stdout.strip()
    assert Path(out) == tmp_path / "flexunet" / "conf"


def test_python_m_flexunet_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "flexunet"], capture_output=True, text=True,
                         check=True).stdout
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    for name in console_scripts():
        assert name in lines, f"{name}: reinstall after editing setup.cfg"
        assert len(lines[name].split()) > 2  # a description follows the name
