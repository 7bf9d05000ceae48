"""results/{ds}/summary.md: the seed's two tables (label statistics; mIoU per iteration) from our runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weak3d.classes import CLASSES
from weak3d.io import atomic_path, read_json
from weak3d.stages.weak_labels import statistics_table

RUN_TITLES = {"iter0": "Iter0", "iter1": "Iter1", "iter2": "Iter2", "full": "Full"}
# IUPC's published nuScenes mIoU (val, camera-visible points), for orientation only.
PAPER_MIOU = {"iter0": 77.1, "iter1": 77.3, "iter2": 77.5, "full": 78.8}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def miou_table(mious: dict[str, dict[str, Any]]) -> str:
    runs = list(mious)
    full = mious.get("full", {}).get("miou")
    lines = [
        "| | " + " | ".join(RUN_TITLES.get(r, r) for r in runs) + " |",
        "|---|" + "---:|" * len(runs),
        "| mIoU (FOV points) | " + " | ".join(_fmt(mious[r]["miou"]) for r in runs) + " |",
        "| mIoU (full scan) | " + " | ".join(_fmt(mious[r].get("miou_full_scan")) for r in runs) + " |",
    ]
    if full:
        lines.append(
            "| % of Full | " + " | ".join(_fmt(100 * (mious[r]["miou"] or 0) / full) for r in runs) + " |"
        )
    lines.append("| paper, real nuScenes | " + " | ".join(_fmt(PAPER_MIOU.get(r)) for r in runs) + " |")
    return "\n".join(lines)


def per_class_table(mious: dict[str, dict[str, Any]]) -> str:
    runs = list(mious)
    lines = [
        "| class | " + " | ".join(RUN_TITLES.get(r, r) for r in runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for name in CLASSES[1:]:
        lines.append(f"| {name} | " + " | ".join(_fmt(mious[r]["per_class"].get(name)) for r in runs) + " |")
    return "\n".join(lines)


def pseudo_table(qualities: list[dict[str, Any]]) -> str:
    lines = [
        "| E-step | pseudo-labelled points | precision (%) | coverage of its region (%) "
        "| coverage of FOV (%) |",
        "|---|---:|---:|---:|---:|",
    ]
    for q in qualities:
        lines.append(
            f"| iteration {q['iteration']} | {q.get('n_labelled', 'n/a')} | {_fmt(_pct(q.get('precision')))} "
            f"| {_fmt(_pct(q.get('coverage_region')))} | {_fmt(_pct(q.get('coverage_visible')))} |"
        )
    return "\n".join(lines)


ABLATION_TITLES = {"iter0_noassoc": "Iter0 without the association loss"}


def ablation_table(mious: dict[str, dict[str, Any]], ablations: dict[str, dict[str, Any]]) -> str:
    """Each ablation run beside the run it changes one setting of (iter0 for iter0_noassoc)."""
    lines = [
        "| run | mIoU (FOV points) | mIoU (full scan) | change vs. reference |",
        "|---|---:|---:|---:|",
    ]
    for run, result in ablations.items():
        reference = mious.get(run.split("_")[0], {})
        delta = None
        if result.get("miou") is not None and reference.get("miou") is not None:
            delta = result["miou"] - reference["miou"]
        lines.append(
            f"| {ABLATION_TITLES.get(run, run)} | {_fmt(result.get('miou'))} "
            f"| {_fmt(result.get('miou_full_scan'))} | {'n/a' if delta is None else f'{delta:+.1f}'} |"
        )
    return "\n".join(lines)


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def write_summary(
    out: str | Path,
    stats_file: str | Path,
    miou_files: list[str | Path],
    pseudo_dirs: list[str | Path],
    train_logs: list[str | Path],
    dataset: str,
    ablation_files: list[str | Path] | None = None,
) -> str:
    """Assemble summary.md from the stage outputs; returns the markdown."""
    mious = {Path(f).stem: read_json(f) for f in miou_files}
    qualities = [read_json(Path(d) / "quality.json") for d in pseudo_dirs]
    logs = {Path(f).parent.name: read_json(f) for f in train_logs}
    ablations = {Path(f).stem: read_json(f) for f in ablation_files or []}
    epochs = ", ".join(
        f"{RUN_TITLES.get(run, run)}: best epoch {log['best_epoch'] + 1} of {len(log['history'])}"
        for run, log in logs.items()
    )
    text = "\n\n".join(
        [
            f"# weak3d summary: {dataset}",
            "## Label statistics (training split)\n\nSparse rate over all scan points; propagated and "
            "candidate rates over camera-visible points, as the seed computes them.\n\n"
            + statistics_table(read_json(stats_file)),
            "## mIoU on the validation split\n\nCamera-visible (FOV) points as in the paper; the paper row "
            "is the published real-nuScenes result, not a target for this dataset.\n\n" + miou_table(mious),
            "## Pseudo-label quality\n\n" + pseudo_table(qualities),
            *(
                ["## Ablations\n\nSame seed and settings as the reference run except the named change.\n\n"
                 + ablation_table(mious, ablations)]
                if ablations
                else []
            ),
            "## Per-class IoU (FOV points)\n\n" + per_class_table(mious),
            "## Runs\n\n" + epochs + ". 3D networks are trained from random initialisation.",
        ]
    )
    with atomic_path(out) as tmp:
        tmp.write_text(text + "\n")
    return text
