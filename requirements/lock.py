"""Compile and check requirements/images.txt, the lock file the docker images install from.

    make lock                                   # after changing pyproject.toml's dependencies
    .venv/bin/python requirements/lock.py --check   # what CI runs (offline)

The lock pins every package the images need (the core dependencies and the ``s3`` extra)
with its hashes, for the images' Python and platform (linux/amd64), so a rebuild next
month installs the CTranslate2 that the GPU image's CUDA base was chosen for
(docker/README.md).
Its first line records a digest of the requirements it was compiled from: ``--check``
fails, without the network, when pyproject.toml changed since, or when a pin no longer
satisfies a requirement.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements" / "images.txt"
# The images' interpreter: python:3.12-slim (CPU) and Ubuntu 24.04's python3.12 (GPU).
PYTHON_VERSION = "3.12"
# Both images are linux/amd64 with glibc >= 2.36; CTranslate2's wheels need 2.28.
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
EXTRAS = ("s3",)
IMAGE_ENVIRONMENT = {
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}
DIGEST_PREFIX = "# requirements-sha256: "
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)


def image_requirements(pyproject: Path = PYPROJECT) -> list[Requirement]:
    """Return the requirements the images install: core dependencies and EXTRAS."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in EXTRAS:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def requirements_digest(requirements: list[Requirement]) -> str:
    """Return a digest of the requirements, independent of their order and comments."""
    text = "\n".join(sorted(str(r) for r in requirements))
    text += f"\npython {PYTHON_VERSION} on {PYTHON_PLATFORM}\n"
    return hashlib.sha256(text.encode()).hexdigest()


def locked_pins(lock_text: str) -> dict[str, str]:
    """Return ``{canonical name: version}`` for every ``name==version`` line of a lock."""
    return {canonicalize_name(name): version for name, version in _PIN.findall(lock_text)}


def lock_problems(lock_text: str, requirements: list[Requirement]) -> list[str]:
    """Return what is wrong with a lock for these requirements (nothing: it matches)."""
    problems = []
    first_line = lock_text.splitlines()[0] if lock_text else ""
    if first_line != DIGEST_PREFIX + requirements_digest(requirements):
        problems.append(
            "pyproject.toml's dependencies changed since the lock was compiled"
            if first_line.startswith(DIGEST_PREFIX)
            else "the lock has no requirements digest on its first line"
        )
    pins = locked_pins(lock_text)
    for requirement in requirements:
        if requirement.marker and not requirement.marker.evaluate(IMAGE_ENVIRONMENT):
            continue
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not pinned")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} does not satisfy {requirement}")
    return problems


def compile_lock() -> None:
    """Resolve the requirements with uv (needs PyPI) and write the lock with its digest."""
    command = [
        str(Path(sys.executable).parent / "uv"),
        "pip",
        "compile",
        str(PYPROJECT.relative_to(ROOT)),
        *[arg for extra in EXTRAS for arg in ("--extra", extra)],
        "--python-platform",
        PYTHON_PLATFORM,
        "--python-version",
        PYTHON_VERSION,
        "--generate-hashes",
        "--custom-compile-command",
        "make lock",
        "--quiet",
    ]
    compiled = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if compiled.returncode != 0:
        raise SystemExit(f"uv pip compile failed:\n{compiled.stderr}")
    digest = requirements_digest(image_requirements())
    LOCK.write_text(f"{DIGEST_PREFIX}{digest}\n{compiled.stdout}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check the lock, offline")
    args = parser.parse_args()
    if not args.check:
        compile_lock()
        return
    lock_text = LOCK.read_text(encoding="utf-8") if LOCK.is_file() else ""
    problems = lock_problems(lock_text, image_requirements())
    if problems:
        raise SystemExit(
            f"{LOCK.relative_to(ROOT)} does not match pyproject.toml: "
            + "; ".join(problems)
            + ". Run `make lock` (needs PyPI) and commit the result."
        )


if __name__ == "__main__":
    main()
