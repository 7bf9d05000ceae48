"""The conda environments pin the same versions as the venv that CI and `make` install."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def env_pins(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {name.lower(): version for name, version in (item.split("==") for item in pip)}


def test_every_env_pin_matches_requirements() -> None:
    required = requirement_pins(REPO / "requirements.txt")
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        for name, version in env_pins(env).items():
            if name == "torch":
                assert version == "2.13.0", f"{env.name}: torch {version} differs from the Makefile's pin"
                continue
            assert required.get(name) == version, (
                f"{env.name}: {name}=={version}, requirements.txt has {required.get(name)}"
            )


def test_every_rule_names_an_existing_env() -> None:
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for line in smk.read_text().splitlines():
            if line.strip().startswith('"../../envs/'):
                assert (smk.parent / line.strip().strip('",')).resolve().exists(), (
                    f"{smk.name}: {line.strip()}"
                )
