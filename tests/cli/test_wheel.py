"""The wheel works without the checkout: built from the sources, installed into a fresh
virtualenv outside the repository, and run from another directory, ``gateway demo``,
``gateway validate`` and ``gateway verify`` find their schemas, fonts and templates inside the
installed package (importlib.resources).

The virtualenv gets the wheel alone (``--no-deps``); the dependencies come from the test run's
own environment through a ``.pth`` line, so the test needs no download beyond the build
backend that ``pip wheel`` fetches for its isolated build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
SOURCES = ("gateway", "pyproject.toml", "README.md", "LICENSE")
"""What a source distribution of the gateway holds: the package and its metadata files."""

BUILD_TIMEOUT_SECONDS = 600.0
DEMO_TIMEOUT_SECONDS = 600.0


def _run(*args: str | Path, cwd: Path, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH: the checkout must not leak into the installed gateway.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bin/`` of a fresh virtualenv holding the wheel built from the sources."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in SOURCES:
        origin = CHECKOUT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    dist = root / "dist"
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source,
        cwd=root, timeout=BUILD_TIMEOUT_SECONDS,
    )  # fmt: skip
    [wheel] = dist.glob("cis_exchange_gateway-*.whl")
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    target = Path(_run(venv / "bin" / "python", "-c", purelib, cwd=root).stdout.strip())
    # The dependencies, not the gateway: a path line in a .pth file adds the folder without
    # running its own .pth files (so the checkout's editable-install hook stays out).
    (target / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        sys.executable, "-m", "pip", "--python", venv / "bin" / "python",
        "install", "--no-deps", "--no-index", "-q", wheel,
        cwd=root,
    )  # fmt: skip
    return venv / "bin"


@pytest.mark.slow
def test_installed_wheel_runs_demo_validate_convert_verify(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(
        installed / "python", "-c",
        "import gateway.schemas as s; print(s.VALID_EXAMPLES_DIR)",
        cwd=elsewhere,
    ).stdout.strip()  # fmt: skip
    examples = Path(where)
    assert examples.is_relative_to(installed.parent), "the examples come from the installed wheel"
    assert not examples.is_relative_to(CHECKOUT)

    version = _run(installed / "gateway", "--version", cwd=elsewhere).stdout
    assert version.startswith("gateway 0.")

    valid = _run(
        installed / "gateway", "validate", examples / "cis-enforcement.Request.xml", cwd=elsewhere
    )
    assert "документ корректен" in valid.stdout
    converted = _run(
        installed / "gateway",
        "convert",
        "Request",
        examples / "cis-enforcement.Request.json",
        cwd=elsewhere,
    )
    assert converted.stdout.lstrip().startswith("<"), converted.stdout[:200]

    demo = _run(
        installed / "gateway",
        "demo",
        "--workdir",
        "out",
        cwd=elsewhere,
        timeout=DEMO_TIMEOUT_SECONDS,
    )
    assert "отклонено: 0" in demo.stdout, demo.stdout
    first = sorted((elsewhere / "out" / "exchanged").glob("01-*.xml"))[0]
    verified = _run(
        installed / "gateway", "verify", "--config", "out/KZ-MJ/node.toml", first, cwd=elsewhere
    )
    assert "TOTAL_PASSED" in verified.stdout
    assert sorted((elsewhere / "out" / "renditions").glob("*.pdf")), "PDFs use the packaged fonts"
