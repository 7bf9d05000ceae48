"""The summary's ablation table: iter0 without the association loss beside iter0."""

from __future__ import annotations

from weak3d.summary import ablation_table


def test_ablation_row_shows_the_change_against_its_reference_run() -> None:
    mious = {"iter0": {"miou": 60.0, "miou_full_scan": 50.0}}
    ablations = {"iter0_noassoc": {"miou": 57.5, "miou_full_scan": None}}
    table = ablation_table(mious, ablations).splitlines()
    assert len(table) == 3
    assert table[2] == "| Iter0 without the association loss | 57.5 | n/a | -2.5 |"
