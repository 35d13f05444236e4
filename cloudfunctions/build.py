"""Build the uploadable cloud-function zip: index.py and config.json at the top, `core/`, and every
dependency vendored as linux x86_64 / CPython 3.11 wheels, whatever machine builds it (CloudBase
installs no Python dependencies online).

    python cloudfunctions/build.py [--out dist/relay-function-<version>.zip]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from core import __version__  # noqa: E402

FUNCTION = ROOT / "cloudfunctions" / "relay"
WHEEL_TARGET = ["--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp",
                "--abi", "cp311", "--only-binary=:all:"]


def build(out: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-compile", "--target", str(stage), *WHEEL_TARGET,
                        "-r", str(FUNCTION / "requirements.txt")], check=True)
        shutil.copytree(ROOT / "core", stage / "core", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("index.py", "config.json"):
            shutil.copy(FUNCTION / name, stage / name)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(stage.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.parts[len(stage.parts)] != "bin":
                    archive.write(path, path.relative_to(stage).as_posix())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / f"relay-function-{__version__}.zip")
    out = build(parser.parse_args().out)
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB); handler: index.main_handler")


if __name__ == "__main__":
    main()
