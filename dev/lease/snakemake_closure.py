"""Copy snakemake's dependency closure (minus what the GPU image has) for a Python 3.12 machine.

Pure-Python distributions are copied from this venv; compiled ones are downloaded as cp312 wheels.
    python dev/lease/snakemake_closure.py SITE_DIR WHEEL_DIR
"""

import importlib.metadata as md
import re
import shutil
import subprocess
import sys
from pathlib import Path

# On the lent image already (KINDS.md's package list).
ON_IMAGE = set(
    "attrs certifi charset-normalizer click filelock idna jinja2 markupsafe numpy packaging psutil "
    "pyyaml requests rich tabulate typing-extensions urllib3 wrapt zipp pygments markdown-it-py "
    "mdurl pluggy setuptools".split()
)


def closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # platform-only requirements (pyreadline on Windows, ...)
        seen.add(name)
        stack += [re.split(r"[ ;<>=!~\[(]", r)[0] for r in dist.requires or [] if "extra ==" not in r]
    return seen


def main(site: Path, wheels: Path) -> None:
    for name in sorted(closure(["snakemake", "jsonschema"]) - ON_IMAGE):
        dist = md.distribution(name)
        files = dist.files or []
        if any(str(f).endswith(".so") for f in files):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    "3.12",
                    "--implementation",
                    "cp",
                    "--platform",
                    "manylinux_2_28_x86_64",
                    "--platform",
                    "manylinux_2_17_x86_64",
                    "--platform",
                    "manylinux2014_x86_64",
                    "-d",
                    str(wheels),
                    f"{name}=={dist.version}",
                ],
                check=True,
            )
            continue
        for f in files:
            src = Path(dist.locate_file(f))
            if src.is_file() and "__pycache__" not in str(f) and not str(f).startswith(".."):
                (site / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, site / f)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
