"""SEEDS superpixels (Van den Bergh et al., ECCV 2012) in numba, step for step as OpenCV's ximgproc.

Why: OpenCV's SEEDS keeps a dense histogram of 10**3 float bins for every block of every level;
at 360x640 the 2x2-pixel bottom level alone has 57,600 blocks, so each image clears and sums
~300 MB of histograms, and that (not the hill climbing) is where its ~0.4 s per image goes. A
block's histogram has at most as many non-zero bins as the block has pixels, and every term a
block histogram contributes to SEEDS' energy is zero where the block's bin is zero; so here blocks
below the top level keep sparse (bin, count) lists and only the ~900 superpixels keep dense ones,
over the ~300 colour bins that occur rather than all 1000.

The pixel passes (10 iterations x a horizontal and a vertical pass, ~40k differing pairs each) are
most of the rest. Three things make them cheap without changing a single move: the vertical
pass runs as a horizontal pass over a transposed copy of the label and bin maps (rows instead of
columns); each line's differing pairs are listed up front without branches; and the move decision
and the move itself are computed without branches, since ~60 % of the pairs move a pixel and a
branch on that outcome is mispredicted about as often as not.

Same algorithm, same order of moves, same tie rules (the grid, the parent links of the levels,
the double-step block updates with confidence 0.1, the alternating forward/backward pixel sweeps,
the 3x4 / 4x3 neighbourhood prior, the border copy). All histogram counts are small integers held
exactly in float32, the sums of block intersections stay exact in any order, and the remaining
float32 products and quotients are done in float32 as OpenCV does, so the labels are meant to be
identical to OpenCV's; tests/stages/test_superpixels.py checks that they are.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

# Index cast of the hot loops: numba adds a negative-index wrap-around fix-up to every subscript
# with a signed index and none to an unsigned one; every index here is >= 0.
_ix = np.uint64
REQ_CONF = np.float32(0.1)  # confidence a double-step block move needs in its first pass
MIN_SUBLABELS = 1


def seeds_grid(width: int, height: int, num_superpixels: int, num_levels: int) -> tuple[int, int, int]:
    """(levels, block width, block height) of the bottom level, as OpenCV chooses them."""
    num_superpixels = max(num_superpixels, 10)
    num_levels = max(num_levels, 2)
    # float32 as in OpenCV (sqrtf of a float expression).
    f = np.float32(num_superpixels) * np.float32(height) / np.float32(width)
    sp_h = int(np.sqrt(np.float32(f)))
    sp_w = sp_h * width // height
    levels = num_levels + 1
    while True:
        levels -= 1
        wf = np.float32(width) / np.float32(sp_w) / np.float32(1 << (levels - 1))
        hf = np.float32(height) / np.float32(sp_h) / np.float32(1 << (levels - 1))
        if not (wf < 1.0 or hf < 1.0):
            break
    if levels < 2:
        raise ValueError(f"SEEDS needs >= 2 levels; {width}x{height} with {num_superpixels} gives {levels}")
    return levels, int(np.ceil(wf)), int(np.ceil(hf))


@lru_cache(maxsize=8)
def _geometry(width: int, height: int, num_superpixels: int, num_levels: int):
    """Block grid of every level, the bottom-level block of each pixel and the initial parents."""
    levels, seeds_w, seeds_h = seeds_grid(width, height, num_superpixels, num_levels)
    nr_w = np.empty(levels, np.int64)
    nr_h = np.empty(levels, np.int64)
    nr_w[0], nr_h[0] = width // seeds_w, height // seeds_h
    for lev in range(1, levels):
        nr_w[lev], nr_h[lev] = nr_w[lev - 1] // 2, nr_h[lev - 1] // 2
    off = np.zeros(levels + 1, np.int64)
    off[1:] = np.cumsum(nr_w * nr_h)
    parent_init, bottom = _init_parents(width, height, nr_w, nr_h, off)
    return levels, nr_w, nr_h, off, parent_init, bottom


@njit(cache=True)
def _block_label(lev, x, y, width, height, nr_w, nr_h):
    # Proportional grid: block column x * n_w // W (OpenCV 5; 4.x used x // (W // n_w), capped).
    return (y * nr_h[lev] // height) * nr_w[lev] + x * nr_w[lev] // width


@njit(cache=True)
def _init_parents(width, height, nr_w, nr_h, off):
    levels = len(nr_w)
    parent_init = np.zeros(off[levels], np.int32)
    # Each block's parent is the parent block of its last pixel in raster order.
    for lev in range(1, levels):
        for y in range(height):
            for x in range(width):
                child = _block_label(lev - 1, x, y, width, height, nr_w, nr_h)
                parent_init[off[lev - 1] + child] = _block_label(lev, x, y, width, height, nr_w, nr_h)
    bottom = np.empty(width * height, np.int32)
    for y in range(height):
        for x in range(width):
            bottom[y * width + x] = _block_label(0, x, y, width, height, nr_w, nr_h)
    return parent_init, bottom


@njit(cache=True)
def _sparse_histograms(bins, width, height, nr_w, nr_h, parent_init, off, n_hist):
    """CSR (ptr, bin, count) and pixel count of every block below the top level, plus the dense
    histograms and pixel counts of the top-level blocks.

    Bottom blocks are read straight off the proportional pixel grid; each upper block merges the
    sparse lists of its children (its pixels are exactly theirs, as in OpenCV's addBlock chain).
    """
    levels = len(off) - 1
    top = levels - 1
    n_sub = off[_ix(top)]
    ptr = np.zeros(n_sub + 1, np.int64)
    cap = width * height * top
    hbin = np.empty(cap, np.int32)
    hcnt = np.empty(cap, np.float32)
    tsub = np.zeros(n_sub, np.float32)
    scratch = np.zeros(n_hist, np.float32)
    touched = np.empty(n_hist + 1, np.int32)  # n_t is at most the bins seen before a write
    k = 0
    # Bottom level: block (r, c) holds rows ceil(r H / n_h) .. and columns ceil(c W / n_w) ..
    ys = np.empty(nr_h[_ix(0)] + 1, np.int64)
    xs = np.empty(nr_w[_ix(0)] + 1, np.int64)
    for r in range(nr_h[_ix(0)] + 1):
        ys[_ix(r)] = (r * height + nr_h[_ix(0)] - 1) // nr_h[_ix(0)]
    for c in range(nr_w[_ix(0)] + 1):
        xs[_ix(c)] = (c * width + nr_w[_ix(0)] - 1) // nr_w[_ix(0)]
    for r in range(nr_h[_ix(0)]):
        for c in range(nr_w[_ix(0)]):
            g = r * nr_w[_ix(0)] + c
            n_t = 0
            for y in range(ys[_ix(r)], ys[_ix(r + 1)]):
                for x in range(xs[_ix(c)], xs[_ix(c + 1)]):
                    b = bins[_ix(y * width + x)]
                    # Append b to the block's bins if it is new (no branch: colours repeat at random).
                    touched[_ix(n_t)] = b
                    n_t += scratch[_ix(b)] == 0
                    scratch[_ix(b)] += np.float32(1.0)
            ptr[_ix(g)] = k
            for t in range(n_t):
                b = touched[_ix(t)]
                hbin[_ix(k)] = b
                hcnt[_ix(k)] = scratch[_ix(b)]
                scratch[_ix(b)] = 0
                k += 1
            tsub[_ix(g)] = np.float32((ys[_ix(r + 1)] - ys[_ix(r)]) * (xs[_ix(c + 1)] - xs[_ix(c)]))
    ptr[_ix(off[_ix(1)])] = k
    # Upper levels (and the dense top): children grouped by parent with a counting sort.
    htop = np.zeros((n_hist, off[_ix(levels)] - off[_ix(top)]), np.float32)
    ttop = np.zeros(off[_ix(levels)] - off[_ix(top)], np.float32)
    for lev in range(1, levels):
        n_child = off[_ix(lev)] - off[_ix(lev - 1)]
        n_blk = off[_ix(lev + 1)] - off[_ix(lev)]
        start = np.zeros(n_blk + 1, np.int64)
        for ch in range(n_child):
            start[_ix(parent_init[off[_ix(lev - 1)] + ch] + 1)] += 1
        for b in range(n_blk):
            start[_ix(b + 1)] += start[_ix(b)]
        fill = start[:-1].copy()
        kids = np.empty(n_child, np.int64)
        for ch in range(n_child):
            p = parent_init[off[_ix(lev - 1)] + ch]
            kids[_ix(fill[_ix(p)])] = off[_ix(lev - 1)] + ch
            fill[_ix(p)] += 1
        for b in range(n_blk):
            if lev == top:
                for j in range(start[_ix(b)], start[_ix(b + 1)]):
                    ch = kids[_ix(j)]
                    for e in range(ptr[_ix(ch)], ptr[_ix(ch + 1)]):
                        htop[_ix(hbin[_ix(e)]), _ix(b)] += hcnt[_ix(e)]
                    ttop[_ix(b)] += tsub[_ix(ch)]
                continue
            g = off[_ix(lev)] + b
            n_t = 0
            total = np.float32(0.0)
            for j in range(start[_ix(b)], start[_ix(b + 1)]):
                ch = kids[_ix(j)]
                for e in range(ptr[_ix(ch)], ptr[_ix(ch + 1)]):
                    c = hbin[_ix(e)]
                    touched[_ix(n_t)] = c
                    n_t += scratch[_ix(c)] == 0
                    scratch[_ix(c)] += hcnt[_ix(e)]
                total += tsub[_ix(ch)]
            ptr[_ix(g)] = k
            for t in range(n_t):
                c = touched[_ix(t)]
                hbin[_ix(k)] = c
                hcnt[_ix(k)] = scratch[_ix(c)]
                scratch[_ix(c)] = 0
                k += 1
            tsub[_ix(g)] = total
        if lev < top:
            ptr[_ix(off[_ix(lev)] + n_blk)] = k
    return ptr, hbin, hcnt, tsub, htop, ttop


# The split tests are False when moving the centre a22 away would disconnect its superpixel.
# Bitwise & and | instead of `and` / `or`: the outcomes are data dependent, and branches on them
# are mispredicted about as often as not.


@njit(cache=True)
def _split_hf(a11, a12, a21, a22, a31, a32):
    # Horizontal pass, left pixel of the pair.
    return not (
        ((a22 != a21) & (a22 == a12) & (a22 == a32))
        | ((a22 != a11) & (a22 == a12) & (a22 == a21))
        | ((a22 != a31) & (a22 == a32) & (a22 == a21))
    )


@njit(cache=True)
def _split_hb(a12, a13, a22, a23, a32, a33):
    # Horizontal pass, right pixel of the pair.
    return not (
        ((a22 != a23) & (a22 == a12) & (a22 == a32))
        | ((a22 != a13) & (a22 == a12) & (a22 == a23))
        | ((a22 != a33) & (a22 == a32) & (a22 == a23))
    )


@njit(cache=True)
def _split_vf(a11, a12, a13, a21, a22, a23):
    # Vertical pass, upper pixel of the pair (the block updates; pixels use the transposed map).
    return not (
        ((a22 != a12) & (a22 == a21) & (a22 == a23))
        | ((a22 != a11) & (a22 == a21) & (a22 == a12))
        | ((a22 != a13) & (a22 == a23) & (a22 == a12))
    )


@njit(cache=True)
def _split_vb(a21, a22, a23, a31, a32, a33):
    # Vertical pass, lower pixel of the pair.
    return not (
        ((a22 != a32) & (a22 == a21) & (a22 == a23))
        | ((a22 != a31) & (a22 == a21) & (a22 == a32))
        | ((a22 != a33) & (a22 == a23) & (a22 == a32))
    )


@njit(cache=True, error_model="numpy")  # 0/0 gives NaN (no move), as in C
def _intersect_conf(htop, ttop, label_a, label_b, g, ptr, hbin, hcnt, tsub):
    """Intersection of block g with superpixel label_a minus that with label_b without g."""
    count1a = ttop[_ix(label_a)]
    count2 = tsub[_ix(g)]
    count1b = ttop[_ix(label_b)] - count2
    sum_a = np.float32(0.0)
    sum_b = np.float32(0.0)
    # Bins where the block is empty add exactly zero to both sums, so only its own bins are read.
    for j in range(ptr[_ix(g)], ptr[_ix(g + 1)]):
        n = hbin[_ix(j)]
        h2 = hcnt[_ix(j)]
        u = htop[_ix(n), _ix(label_a)] * count2
        v = h2 * count1a
        sum_a += u if u < v else v
        diff = htop[_ix(n), _ix(label_b)] - h2
        u = diff * count2
        v = h2 * count1b
        sum_b += u if u < v else v
    int_a = sum_a / (count1a * count2)
    int_b = sum_b / (count1b * count2)
    return int_a - int_b


@njit(cache=True)
def _move_block(htop, ttop, nr_part, parent, pidx, g, old, new, ptr, hbin, hcnt, tsub):
    for j in range(ptr[_ix(g)], ptr[_ix(g + 1)]):
        htop[_ix(hbin[_ix(j)]), _ix(old)] -= hcnt[_ix(j)]
        htop[_ix(hbin[_ix(j)]), _ix(new)] += hcnt[_ix(j)]
    ttop[_ix(old)] -= tsub[_ix(g)]
    ttop[_ix(new)] += tsub[_ix(g)]
    nr_part[_ix(old)] -= 1
    nr_part[_ix(new)] += 1
    parent[_ix(pidx)] = new


@njit(cache=True)
def _update_blocks(lev, req, nr_w, nr_h, off, parent, nr_part, htop, ttop, ptr, hbin, hcnt, tsub):
    """OpenCV's updateBlocks on level lev: a pass along the rows, then one down the columns.

    As in the pixel passes, a block changes only when the pass reaches its pair (or the pair just
    before it, which then skips it), so each line's differing pairs are listed up front.
    """
    step = nr_w[_ix(lev)]
    rows = nr_h[_ix(lev)]
    o = off[_ix(lev)]
    cand = np.empty(max(step, rows), np.int64)
    for y in range(1, rows - 1):
        n = 0
        for x in range(1, step - 2):
            cand[_ix(n)] = x
            n += parent[_ix(o + y * step + x)] != parent[_ix(o + y * step + x + 1)]
        nxt = 0
        for k in range(n):
            x = cand[_ix(k)]
            if x < nxt:
                continue
            sub = y * step + x
            la = parent[_ix(o + sub)]
            lb = parent[_ix(o + sub + 1)]
            a11 = parent[_ix(o + (y - 1) * step + x - 1)]
            a12 = parent[_ix(o + (y - 1) * step + x)]
            a21 = parent[_ix(o + y * step + x - 1)]
            a22 = parent[_ix(o + y * step + x)]
            a31 = parent[_ix(o + (y + 1) * step + x - 1)]
            a32 = parent[_ix(o + (y + 1) * step + x)]
            done = False
            if nr_part[_ix(la)] == 2 or (nr_part[_ix(la)] > 2 and _split_hf(a11, a12, a21, a22, a31, a32)):
                conf = _intersect_conf(htop, ttop, lb, la, o + sub, ptr, hbin, hcnt, tsub)
                if conf > req:
                    _move_block(htop, ttop, nr_part, parent, o + sub, o + sub, la, lb, ptr, hbin, hcnt, tsub)
                    done = True
            if not done and nr_part[_ix(lb)] > MIN_SUBLABELS:
                sub = y * step + x + 1
                a13 = parent[_ix(o + (y - 1) * step + x + 1)]
                a14 = parent[_ix(o + (y - 1) * step + x + 2)]
                a23 = parent[_ix(o + y * step + x + 1)]
                a24 = parent[_ix(o + y * step + x + 2)]
                a33 = parent[_ix(o + (y + 1) * step + x + 1)]
                a34 = parent[_ix(o + (y + 1) * step + x + 2)]
                if nr_part[_ix(lb)] <= 2 or (
                    nr_part[_ix(lb)] > 2 and _split_hb(a13, a14, a23, a24, a33, a34)
                ):
                    conf = _intersect_conf(htop, ttop, la, lb, o + sub, ptr, hbin, hcnt, tsub)
                    if conf > req:
                        _move_block(
                            htop, ttop, nr_part, parent, o + sub, o + sub, lb, la, ptr, hbin, hcnt, tsub
                        )
                        x += 1
            nxt = x + 1
    for x in range(1, step - 1):
        n = 0
        for y in range(1, rows - 2):
            cand[_ix(n)] = y
            n += parent[_ix(o + y * step + x)] != parent[_ix(o + (y + 1) * step + x)]
        nxt = 0
        for k in range(n):
            y = cand[_ix(k)]
            if y < nxt:
                continue
            sub = y * step + x
            la = parent[_ix(o + sub)]
            lb = parent[_ix(o + (y + 1) * step + x)]
            a11 = parent[_ix(o + (y - 1) * step + x - 1)]
            a12 = parent[_ix(o + (y - 1) * step + x)]
            a13 = parent[_ix(o + (y - 1) * step + x + 1)]
            a21 = parent[_ix(o + y * step + x - 1)]
            a22 = parent[_ix(o + y * step + x)]
            a23 = parent[_ix(o + y * step + x + 1)]
            done = False
            if nr_part[_ix(la)] == 2 or (nr_part[_ix(la)] > 2 and _split_vf(a11, a12, a13, a21, a22, a23)):
                conf = _intersect_conf(htop, ttop, lb, la, o + sub, ptr, hbin, hcnt, tsub)
                if conf > req:
                    _move_block(htop, ttop, nr_part, parent, o + sub, o + sub, la, lb, ptr, hbin, hcnt, tsub)
                    done = True
            if not done and nr_part[_ix(lb)] > MIN_SUBLABELS:
                sub = (y + 1) * step + x
                a31 = parent[_ix(o + (y + 1) * step + x - 1)]
                a32 = parent[_ix(o + (y + 1) * step + x)]
                a33 = parent[_ix(o + (y + 1) * step + x + 1)]
                a41 = parent[_ix(o + (y + 2) * step + x - 1)]
                a42 = parent[_ix(o + (y + 2) * step + x)]
                a43 = parent[_ix(o + (y + 2) * step + x + 1)]
                if nr_part[_ix(lb)] <= 2 or (
                    nr_part[_ix(lb)] > 2 and _split_vb(a31, a32, a33, a41, a42, a43)
                ):
                    conf = _intersect_conf(htop, ttop, la, lb, o + sub, ptr, hbin, hcnt, tsub)
                    if conf > req:
                        _move_block(
                            htop, ttop, nr_part, parent, o + sub, o + sub, lb, la, ptr, hbin, hcnt, tsub
                        )
                        y += 1
            nxt = y + 1


@njit(cache=True)
def _go_down(old, off, parent, nr_part):
    new = old - 1
    if new < 0:
        return -1
    nr_part[:] = 0
    # OpenCV counts 4 partitions per block on levels above the bottom, 1 on the bottom.
    parts = 4 if new > 0 else 1
    for label in range(off[new + 1] - off[new]):
        p = parent[off[old] + parent[off[new] + label]]
        parent[off[new] + label] = p
        nr_part[p] += parts
    return new


@njit(cache=True)
def _prior_table(prior):
    """OpenCV's prior factor p for window counts (c1, c2) in 0..10, computed in float32 as it does.

    Only 11 x 11 count pairs exist, so a lookup replaces a division and up to four squarings per
    candidate move, with the very same float32 values.
    """
    tab = np.ones((11, 11), np.float32)
    for c1 in range(11):
        for c2 in range(11):
            p = np.float32(1.0)
            if c2 != 0:
                p = np.float32(c1) / np.float32(c2)
            # OpenCV's fall-through switch: prior k squares p (k - 1) times.
            for _ in range(prior - 1):
                p = p * p
            tab[c1, c2] = p
    return tab


@njit(cache=True)
def _move_pixel(htop, ttop, lab, lab_t, color, i, j, old, new):
    # Pixel i of `lab` (j of its transposed copy `lab_t`) goes from superpixel old to new.
    htop[color, old] -= np.float32(1.0)
    ttop[old] -= np.float32(1.0)
    htop[color, new] += np.float32(1.0)
    ttop[new] += np.float32(1.0)
    lab[i] = new
    lab_t[j] = new


@njit(cache=True)
def _count10(label, a, b, c, d, e, f, g, h, i, j):
    # How many of the 10 window labels are `label` (no branches).
    return (
        (a == label) + (b == label) + (c == label) + (d == label) + (e == label)
        + (f == label) + (g == label) + (h == label) + (i == label) + (j == label)
    )  # fmt: skip


@njit(cache=True)
def _sweep(lab, bins, htop, ttop, n_col, n_row, prior, ptab, forward, vertical, cand, moved_j, moved_v):
    """One OpenCV pixel pass along the rows of `lab` (n_row rows of n_col). Returns how many
    pixels moved; their index in the transposed map and their new label are in moved_j, moved_v
    (the caller applies them to the transposed copy after the pass, not with a strided write per
    move). `cand` is scratch of n_col ints.

    OpenCV's vertical pass (x outer, y inner, 4x3 windows) is exactly this pass run on the
    transposed label and bin maps (`vertical`): its windows, split tests and move order map one
    to one, and it then reads memory along rows instead of down columns.

    About 60 % of the pairs examined move a pixel, each way about as often, so the decision and
    the move are computed without branches: both candidate moves read the same state, the
    outcome selects one, and a move that does not happen adds 0.0 to the (integer) counts.
    """
    n_moved = 0
    for y in range(1, n_row - 1):
        r0 = (y - 1) * n_col
        r1 = y * n_col
        r2 = (y + 1) * n_col
        # The pass changes a pixel of this row only when it reaches the pair at or just before
        # it, so the pairs that differ now are exactly those it will find differing: list them
        # without branches, then visit only those.
        n = 0
        for x in range(1, n_col - 2):
            cand[_ix(n)] = x
            n += lab[_ix(r1 + x)] != lab[_ix(r1 + x + 1)]
        nxt = 0
        for k in range(n):
            x = cand[_ix(k)]
            if x < nxt:  # the pixel was just moved by the previous pair: OpenCV skips it
                continue
            la = lab[_ix(r1 + x)]
            lb = lab[_ix(r1 + x + 1)]
            a11 = lab[_ix(r0 + x - 1)]
            a12 = lab[_ix(r0 + x)]
            a13 = lab[_ix(r0 + x + 1)]
            a14 = lab[_ix(r0 + x + 2)]
            a21 = lab[_ix(r1 + x - 1)]
            a24 = lab[_ix(r1 + x + 2)]
            a31 = lab[_ix(r2 + x - 1)]
            a32 = lab[_ix(r2 + x)]
            a33 = lab[_ix(r2 + x + 1)]
            a34 = lab[_ix(r2 + x + 2)]
            ia = r1 + x
            ca = bins[_ix(ia)]
            cb = bins[_ix(ia + 1)]
            ta = ttop[_ix(la)]
            tb = ttop[_ix(lb)]
            # Move A: pixel x from la to lb; move B: pixel x + 1 from lb to la. p*1 is OpenCV's
            # P(stay), p*2 its P(move), float32 products in its order.
            pa1 = htop[_ix(ca), _ix(la)] * tb
            pa2 = htop[_ix(ca), _ix(lb)] * ta
            pb1 = htop[_ix(cb), _ix(lb)] * ta
            pb2 = htop[_ix(cb), _ix(la)] * tb
            if prior > 0:
                # OpenCV's window of 10 around the pair: 3x4 (rows above and below, the ends of
                # the pair's row), or, vertically, its 4x3 whose middle rows read column x + 2,
                # not x + 1 (at the last column OpenCV's flat index wraps to the next image row).
                if vertical:
                    # Row y + 2 here is image column x + 2, which this pass has not reached yet.
                    if y + 2 < n_row:
                        c1 = lab[_ix((y + 2) * n_col + x)]
                        c2 = lab[_ix((y + 2) * n_col + x + 1)]
                    else:  # past the last column: the first pixel of the next image rows
                        c1 = lab[_ix(x + 1)]
                        c2 = lab[_ix(x + 2)]
                else:
                    c1 = a32
                    c2 = a33
                na = _count10(la, a11, a12, a13, a14, a21, a24, a31, c1, c2, a34)
                nb = _count10(lb, a11, a12, a13, a14, a21, a24, a31, c1, c2, a34)
                if prior >= 2:
                    pa1 = pa1 * tb
                    pa2 = pa2 * ta
                    pb1 = pb1 * ta
                    pb2 = pb2 * tb
                pa1 = pa1 * ptab[_ix(na), _ix(nb)]
                pb1 = pb1 * ptab[_ix(nb), _ix(na)]
            sa = _split_hf(a11, a12, a21, la, a31, a32)
            sb = _split_hb(a13, a14, lb, a24, a33, a34)
            win_a = pa2 > pa1
            win_b = pb2 > pb1
            # OpenCV tries the second pixel only where the first passed its split test and lost.
            if forward:
                mv_a = sa & win_a
                mv_b = sa & (not win_a) & sb & win_b
            else:
                mv_b = sb & win_b
                mv_a = sb & (not win_b) & sa & win_a
            # The move as arithmetic on 0/1, not `a if c else b`: LLVM turns some of those selects
            # back into branches.
            moved = mv_a | mv_b
            ib = np.int64(mv_b)
            i = ia + ib
            old = la + (lb - la) * ib
            new = lb + (la - lb) * ib
            c = ca + (cb - ca) * ib
            m = np.float32(moved)
            htop[_ix(c), _ix(old)] -= m
            ttop[_ix(old)] -= m
            htop[_ix(c), _ix(new)] += m
            ttop[_ix(new)] += m
            v = old + (new - old) * np.int64(moved)
            lab[_ix(i)] = v
            moved_j[_ix(n_moved)] = (x + ib) * n_row + y
            moved_v[_ix(n_moved)] = v
            n_moved += moved
            nxt = x + 1 + ib
    return n_moved


@njit(cache=True)
def _copy_border(lab, lab_t, bins, htop, ttop, width, height):
    # Border pixels take the label of their inner neighbour (rows first, then columns, as OpenCV).
    w = width
    for x in range(w):
        for i, src in ((x, w + x), ((height - 1) * w + x, (height - 2) * w + x)):
            if lab[i] != lab[src]:
                _move_pixel(htop, ttop, lab, lab_t, bins[i], i, (i % w) * height + i // w, lab[i], lab[src])
    for y in range(height):
        for i, src in ((y * w, y * w + 1), (y * w + w - 1, y * w + w - 2)):
            if lab[i] != lab[src]:
                _move_pixel(htop, ttop, lab, lab_t, bins[i], i, (i % w) * height + i // w, lab[i], lab[src])


@njit(cache=True)
def _update_pixels(
    lab, lab_t, bins, bins_t, htop, ttop, width, height, prior, ptab, forward, cand, moved_j, moved_v
):
    """OpenCV's updatePixels: the horizontal pass, the vertical pass, then the border copy."""
    n = _sweep(lab, bins, htop, ttop, width, height, prior, ptab, forward, False, cand, moved_j, moved_v)
    for k in range(n):
        lab_t[moved_j[k]] = moved_v[k]
    n = _sweep(lab_t, bins_t, htop, ttop, height, width, prior, ptab, forward, True, cand, moved_j, moved_v)
    for k in range(n):
        lab[moved_j[k]] = moved_v[k]
    _copy_border(lab, lab_t, bins, htop, ttop, width, height)


@njit(cache=True)
def _color_bins(image, n_bins):
    """Joint colour bin of every pixel of a uint8 (H, W, C) image (OpenCV's v * n_bins // 256 per
    channel), renumbered 0.. over the bins that occur, and how many occur.

    SEEDS only ever uses a bin as a histogram index, so any one-to-one renumbering gives the
    same labels; a real HSV image uses about 300 of the 1000 bins (8-bit hue stops at 179), and
    the dense superpixel histograms shrink by as much, and stay in cache.
    """
    height, width, channels = image.shape
    q = np.empty(256, np.int32)
    for v in range(256):
        q[_ix(v)] = v * n_bins // 256
    bins = np.empty(height * width, np.int32)
    seen = np.zeros(n_bins**channels, np.int32)
    for y in range(height):
        for x in range(width):
            b = 0
            for c in range(channels):
                b = b * n_bins + q[_ix(image[_ix(y), _ix(x), _ix(c)])]
            bins[_ix(y * width + x)] = b
            seen[_ix(b)] = 1
    # Ascending renumbering of the bins present.
    n_used = 0
    for b in range(len(seen)):
        k = seen[_ix(b)]
        seen[_ix(b)] = n_used
        n_used += k
    for i in range(height * width):
        bins[_ix(i)] = seen[_ix(bins[_ix(i)])]
    return bins, n_used


@njit(cache=True)
def _seeds(
    image, n_bins, width, height, nr_w, nr_h, off, parent_init, bottom, prior, double_step, iterations
):
    levels = len(nr_w)
    top = levels - 1
    bins, n_hist = _color_bins(image, n_bins)
    ptr, hbin, hcnt, tsub, htop, ttop = _sparse_histograms(
        bins, width, height, nr_w, nr_h, parent_init, off, n_hist
    )
    parent = parent_init.copy()
    nr_part = np.full(off[levels] - off[top], 4, np.int64)
    lev = levels - 2
    while lev >= 0:
        if double_step:
            _update_blocks(lev, REQ_CONF, nr_w, nr_h, off, parent, nr_part, htop, ttop, ptr, hbin, hcnt, tsub)
        _update_blocks(
            lev, np.float32(0.0), nr_w, nr_h, off, parent, nr_part, htop, ttop, ptr, hbin, hcnt, tsub
        )
        lev = _go_down(lev, off, parent, nr_part)
    labels = np.empty(width * height, np.int32)
    for i in range(width * height):
        labels[i] = parent[bottom[i]]
    # Transposed copies of the labels and bins: the vertical pass then reads rows too.
    labels_t = np.ascontiguousarray(labels.reshape(height, width).T).ravel()
    bins_t = np.ascontiguousarray(bins.reshape(height, width).T).ravel()
    ptab = _prior_table(prior)
    # Scratch of the passes, allocated once per image.
    cand = np.empty(max(width, height), np.int64)
    moved_j = np.empty(width * height, np.int64)
    moved_v = np.empty(width * height, np.int32)
    forward = True
    for _ in range(iterations):
        _update_pixels(
            labels,
            labels_t,
            bins,
            bins_t,
            htop,
            ttop,
            width,
            height,
            prior,
            ptab,
            forward,
            cand,
            moved_j,
            moved_v,
        )
        forward = not forward
    return labels


def seeds_numba(
    image: np.ndarray,
    num_superpixels: int,
    num_levels: int,
    prior: int = 2,
    n_bins: int = 5,
    double_step: bool = False,
    iterations: int = 4,
) -> np.ndarray:
    """int32 label map of a uint8 (H, W, C) image, as cv2.ximgproc.createSuperpixelSEEDS(W, H, C,
    num_superpixels, num_levels, prior, n_bins, double_step).iterate(image, iterations)."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"expected a uint8 (H, W, C) image, got {image.dtype} {image.shape}")
    height, width, _ = image.shape
    levels, nr_w, nr_h, off, parent_init, bottom = _geometry(width, height, num_superpixels, num_levels)
    labels = _seeds(
        image,
        n_bins,
        width,
        height,
        nr_w,
        nr_h,
        off,
        parent_init,
        bottom,
        min(prior, 5),
        bool(double_step),
        iterations,
    )
    return labels.reshape(height, width)
