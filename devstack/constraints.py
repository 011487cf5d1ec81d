"""``make constraints``: pin every package of both virtualenvs, as resolved today.

pyproject.toml pins what we import; what those packages pull in is resolved at install time.
A warm machine keeps the versions it resolved once, a new machine gets that day's releases,
and with ``filterwarnings = error`` one new deprecation is a red CI run that no change made.
So both virtualenvs (the dev one and the MLflow server's) install with ``-c`` a constraints file
of everything they hold, and this regenerates the two files from fresh virtualenvs.

Standard library only (run as ``python3 -m devstack.constraints`` from the checkout): it
runs before any virtualenv exists.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devstack import versions

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / "constraints" / "dev.txt"
MLFLOW_SERVER = REPO / "constraints" / "mlflow-server.txt"


def _freeze(venv: Path, *install: str) -> list[str]:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "--quiet", *install], check=True, cwd=REPO)
    return subprocess.run([*pip, "freeze", "--exclude-editable"], check=True,
                          capture_output=True, text=True).stdout.splitlines()


def _write(path: Path, header: str, lines: list[str]) -> None:
    day = time.strftime("%Y-%m-%d")
    path.write_text("".join(f"# {line}\n" for line in header.format(day=day).splitlines())
                    + "\n".join(lines) + "\n")
    print(f"[constraints] {path.relative_to(REPO)}: {len(lines)} packages")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _write(DEV, "Every package of the dev virtualenv (.venv), as resolved on {day} from "
               "pyproject.toml's\npins: make venv installs with -c this file, so a new machine "
               "gets what CI last passed with.\nRegenerate with `make constraints` after "
               "changing a pin, and commit it.",
               _freeze(Path(tmp) / "dev", "-e", ".[dev]"))
        _write(MLFLOW_SERVER, "Every package of the MLflow server's virtualenv "
               f"(mlflow=={versions.MLFLOW_SERVER} and what it pulled), as\nresolved on "
               "{day}; devstack.build installs with -c this file. `make constraints`\n"
               "regenerates it (after bumping versions.MLFLOW_SERVER).",
               _freeze(Path(tmp) / "mlflow", f"mlflow=={versions.MLFLOW_SERVER}"))


if __name__ == "__main__":
    main()
