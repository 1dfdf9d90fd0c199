"""One installed package, a public API at the top, --version, and what a wheel contains."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import gru_edge
from gru_edge.cli import app
from gru_edge.runtime import errors
from gru_edge.trainer.config import TrainConfig, TrainOptions

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    # From a folder of its own: the repository's runtime/, trainer/ and exporter/ must never
    # stand in for the installed gru_edge package.
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_the_public_api_is_at_the_top():
    from gru_edge import GenerationOptions, Generator, GruEdgeError
    from gru_edge.runtime.generator import Generator as RuntimeGenerator
    from gru_edge.runtime.options import GenerationOptions as RuntimeOptions

    assert Generator is RuntimeGenerator and GenerationOptions is RuntimeOptions
    assert GruEdgeError is errors.GruEdgeError
    domain = {
        n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)
    }
    assert domain <= set(gru_edge.__all__)  # every error a user may want to catch
    for name in gru_edge.__all__:
        assert getattr(gru_edge, name) is not None


def test_importing_the_package_loads_neither_onnxruntime_nor_numpy(tmp_path):
    code = (
        "import sys, gru_edge\n"
        "assert 'onnxruntime' not in sys.modules, 'import gru_edge loaded onnxruntime'\n"
        "assert 'numpy' not in sys.modules, 'import gru_edge loaded numpy'\n"
        "from gru_edge import Generator\n"
        "import gru_edge.runtime.generator\n"
        "assert Generator is gru_edge.runtime.generator.Generator\n"
        "print(gru_edge.__file__)\n"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    # the installed (editable) package, from the repository's gru_edge/ folder
    assert Path(done.stdout.strip()) == REPO / "gru_edge" / "__init__.py"


@pytest.mark.parametrize("name", ["runtime", "trainer", "exporter"])
def test_the_bare_folder_names_are_not_installed(tmp_path, name):
    done = _python(f"import {name}", tmp_path)
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


def test_version_everywhere_is_the_one_version():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"gru-edge {gru_edge.__version__}\n"
    assert version("gru-edge") == gru_edge.__version__


def test_py_typed_ships_with_the_package():
    assert (Path(gru_edge.__file__).parent / "py.typed").is_file()


def test_train_options_name_only_train_config_fields():
    option_names = [f.name for f in dataclasses.fields(TrainOptions)]
    assert option_names == [f.name for f in dataclasses.fields(TrainConfig)]
    given = TrainOptions(units=64, samples=False)
    assert given.given() == {"units": 64, "samples": False}
    config = given.apply(TrainConfig())
    assert (config.units, config.samples, config.seq_len) == (64, False, 100)


def test_a_wheel_holds_only_the_gru_edge_package(tmp_path):
    # Built from a copy, so setuptools' build/ folder never lands in the repository;
    # --no-build-isolation: the [dev] extra brings setuptools>=77, nothing is downloaded.
    source = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        source.mkdir(exist_ok=True)
        shutil.copy(REPO / name, source / name)
    for folder in ("gru_edge", "runtime", "trainer", "exporter"):
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("gru_edge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"gru_edge", f"gru_edge-{gru_edge.__version__}.dist-info"}
    for module in ("runtime/generator.py", "trainer/train.py", "exporter/export.py", "py.typed"):
        assert f"gru_edge/{module}" in names
    from gru_edge.web import PAGE_FILES

    for page_file in PAGE_FILES:  # what `gru-edge web` writes, js/'s copies included
        assert f"gru_edge/webpage/{page_file}" in names
    assert not [n for n in names if n.startswith("gru_edge/") and "__pycache__" in n]
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_the_development_page_layout_names_every_module():
    readme = (REPO / "docs" / "development.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1].split("```", 2)[1]
    listed = {line.split()[0] for line in layout.splitlines() if line.strip()}
    modules = {
        f"{folder}/{path.name}"
        for folder in ("gru_edge", "runtime", "trainer", "exporter")
        for path in (REPO / folder).glob("*.py")
        if path.name != "__init__.py" or folder == "gru_edge"
    }
    assert sorted(modules - listed) == []
    assert sorted(m for m in listed if m.endswith(".py") and m not in modules) == []


def test_a_command_loads_only_its_own_command_module(tmp_path, small_model):
    code = (
        "import sys\n"
        "from gru_edge.cli import app\n"
        f"sys.argv = ['gru-edge', 'sample', {str(small_model)!r}, '--length', '3', '--seed', '1']\n"
        "try:\n"
        "    app()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(sorted(m for m in sys.modules if m.startswith('gru_edge.cli_')))\n"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "['gru_edge.cli_common', 'gru_edge.cli_runtime']"
