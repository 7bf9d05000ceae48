"""CLI: python -m weak3d.world --out ROOT [--seed N] [--set key=value ...] [--workers N]."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from weak3d.world.config import WorldConfig
from weak3d.world.generate import generate_world


def _parse_sets(items: list[str]) -> dict:
    """key=value pairs; values are parsed as JSON when possible (numbers), else kept as strings."""
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(WorldConfig))
    parser = argparse.ArgumentParser(
        prog="python -m weak3d.world", description=__doc__, epilog=f"WorldConfig keys and defaults: {fields}"
    )
    parser.add_argument("--out", required=True, help="root folder to create (replaced atomically)")
    parser.add_argument("--seed", type=int, help="world seed (same seed -> identical files)")
    parser.add_argument("--version", help="table folder name (default v1.0-weak3d)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any WorldConfig key")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    d = _parse_sets(args.set)
    if args.seed is not None:
        d["seed"] = args.seed
    if args.version is not None:
        d["version"] = args.version
    try:
        cfg = WorldConfig.from_dict(d)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    start = time.perf_counter()
    root = generate_world(args.out, cfg, workers=args.workers, progress=not args.quiet)
    print(f"world written to {root} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
