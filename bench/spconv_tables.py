"""Markdown tables (per layer, whole network) from bench/spconv_compare.py's JSON results.

    python bench/spconv_tables.py [bench/results/spconv_compare.json ...]

One network table per file given after the first (runs of the networks alone, to show the spread)
is printed as a short table of graphed time, spconv time and their ratio.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

LAYER_NAMES = {"subm": "subm k3", "down": "down k2s2", "up": "up k2s2 (transposed)"}
MODES = (("inference", "inference, batch 1", "voxels", "floor_inference", "graph_captures"),
         ("train_step", "train step, batch 2", "train_voxels", "floor_train_step_estimate",
          "train_graph_captures"))


def _us(ms: float) -> str:
    return f"{1000 * ms:.0f}"


def layer_table(layers: list[dict[str, Any]]) -> list[str]:
    lines = ["| input | layer | pairs | floor | forward ours / spconv | input grad | weight grad |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in layers:
        floor = row["floor"]
        cells = []
        for direction in ("forward", "input_grad", "weight_grad"):
            t = row["times_ms"][direction]
            cells.append(f"{_us(t['ours'])} / {_us(t['spconv'])} µs = **{t['ours'] / t['spconv']:.2f}x**")
        name = f"{LAYER_NAMES[row['op']]} C{row['cin']}"
        floor_text = (f"{floor['floor_us']:.1f} µs ({floor['flops'] / 1e9:.2f} GFLOP, "
                      f"{floor['bytes'] / 1e6:.1f} MB)")
        lines.append(" | ".join([f"| {row['scan']}", name, str(row["pairs"]), floor_text, *cells]) + " |")
    return lines


def network_table(networks: list[dict[str, Any]]) -> list[str]:
    lines = ["| input | voxels | mode | ours eager | ours, CUDA graphs | spconv | eager / spconv | "
             "graphs / spconv | floor | peak mem eager / graphs / spconv |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for net in networks:
        for mode, label, voxels, floor, captures in MODES:
            ours, sp, graphed = net[mode]["ours"], net[mode]["spconv"], net[f"{mode}_graphed"]
            graphs = f"{net[captures]} graph{'s' if net[captures] != 1 else ''}"
            o, g, s = ours["median_ms"], graphed["median_ms"], sp["median_ms"]
            memory = " / ".join(f"{r['peak_mem_mib']:.0f}" for r in (ours, graphed, sp)) + " MiB"
            cells = [f"| {net['scan']}", str(net[voxels][0]), label, f"{o:.2f} ms", f"{g:.2f} ms ({graphs})",
                     f"{s:.2f} ms", f"**{o / s:.2f}x**", f"**{g / s:.2f}x**",
                     f"{net[floor]['floor_us']:.0f} µs", memory]
            lines.append(" | ".join(cells) + " |")
    return lines


def spread_table(networks: list[dict[str, Any]]) -> list[str]:
    lines = ["| input | mode | ours, CUDA graphs | spconv | graphs / spconv |",
             "| --- | --- | --- | --- | --- |"]
    for net in networks:
        for mode, label, *_ in MODES:
            graphed, sp = net[f"{mode}_graphed"]["median_ms"], net[mode]["spconv"]["median_ms"]
            lines.append(f"| {net['scan']} | {label} | {graphed:.2f} ms | {sp:.2f} ms | "
                         f"**{graphed / sp:.2f}x** |")
    return lines


def main() -> None:
    paths = sys.argv[1:] or [str(Path(__file__).resolve().parent / "results" / "spconv_compare.json")]
    first = json.loads(Path(paths[0]).read_text())
    if first.get("layers"):
        print("\n".join(layer_table(first["layers"])), end="\n\n")
    print("\n".join(network_table(first["networks"])))
    for path in paths[1:]:
        print(f"\n{path}:\n" + "\n".join(spread_table(json.loads(Path(path).read_text())["networks"])))


if __name__ == "__main__":
    main()
