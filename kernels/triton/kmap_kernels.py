"""Triton kernels that build kernel maps: coordinate keys, binary-search queries, table transpose.

Coordinates `(b, x, y, z)` are packed into one int64 key: 9 bits of batch, then 18 bits per axis
biased by 2**17, so sorting keys sorts `(b, x, y, z)` lexicographically, like the reference.
"""

from __future__ import annotations

import triton
import triton.language as tl

AXIS_BITS = 18
BIAS = 1 << (AXIS_BITS - 1)
BATCH_LIMIT = 1 << 9


@triton.jit
def _key(b, x, y, z):
    # All fields non-negative after the bias, so shifts and ors are exact.
    bias = 131072
    return (b << 54) | ((x + bias) << 36) | ((y + bias) << 18) | (z + bias)


@triton.jit(do_not_specialize=["n"])
def pack_keys_kernel(coords_ptr, keys_ptr, flag_ptr, n, sx, sy, sz, limit, batch_limit,
                     CHECK: tl.constexpr, BLOCK: tl.constexpr):
    """keys[i] = key(b, floor(x / sx), floor(y / sy), floor(z / sz)) of int32 coords [n, 4].

    CHECK: flag (int32, zeroed) becomes 1 if an axis is outside [-limit, limit) or a batch outside
    [0, batch_limit): the keys would not hold it.
    """
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    _pack_rows(coords_ptr, keys_ptr, flag_ptr, rows, n, sx, sy, sz, limit, batch_limit, CHECK)


@triton.jit(do_not_specialize=["n"])
def pack_levels_kernel(coords_ptr, keys_ptr, flag_ptr, strides_ptr, n, limit, batch_limit,
                       BLOCK: tl.constexpr):
    """pack_keys_kernel for every level at once: keys [L, n], level l = program_id(1) at the
    stride strides[l] (int32 [L, 3]); level 0 also checks the range (flag: int64, zeroed)."""
    level = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    sx = tl.load(strides_ptr + level * 3).to(tl.int64)
    sy = tl.load(strides_ptr + level * 3 + 1).to(tl.int64)
    sz = tl.load(strides_ptr + level * 3 + 2).to(tl.int64)
    keys_ptr += level.to(tl.int64) * n
    if level == 0:
        _pack_rows(coords_ptr, keys_ptr, flag_ptr, rows, n, sx, sy, sz, limit, batch_limit, True)
    else:
        _pack_rows(coords_ptr, keys_ptr, flag_ptr, rows, n, sx, sy, sz, limit, batch_limit, False)


@triton.jit
def _pack_rows(coords_ptr, keys_ptr, flag_ptr, rows, n, sx, sy, sz, limit, batch_limit, CHECK: tl.constexpr):
    ok = rows < n
    base = coords_ptr + rows.to(tl.int64) * 4
    b = tl.load(base, mask=ok, other=0).to(tl.int64)
    x = tl.load(base + 1, mask=ok, other=0).to(tl.int64)
    y = tl.load(base + 2, mask=ok, other=0).to(tl.int64)
    z = tl.load(base + 3, mask=ok, other=0).to(tl.int64)
    if CHECK:
        outside = (b < 0) | (b >= batch_limit) | (x < -limit) | (x >= limit) | (y < -limit) | (y >= limit)
        outside = ok & (outside | (z < -limit) | (z >= limit))
        tl.atomic_max(flag_ptr, tl.max(outside.to(flag_ptr.dtype.element_ty), axis=0))
    # floor division of possibly negative values: shift to non-negative first (truncation and
    # floor then agree on the GPU and in the interpreter).
    shift = 131072
    x = (x + shift * sx) // sx - shift
    y = (y + shift * sy) // sy - shift
    z = (z + shift * sz) // sz - shift
    tl.store(keys_ptr + rows, _key(b, x, y, z), mask=ok)


@triton.jit
def _unpack_store(coords_ptr, rows, key, ok):
    """coords[rows] = the (b, x, y, z) of int64 keys."""
    field = (1 << 18) - 1
    bias = 131072
    base = coords_ptr + rows.to(tl.int64) * 4
    tl.store(base, (key >> 54).to(tl.int32), mask=ok)
    tl.store(base + 1, (((key >> 36) & field) - bias).to(tl.int32), mask=ok)
    tl.store(base + 2, (((key >> 18) & field) - bias).to(tl.int32), mask=ok)
    tl.store(base + 3, ((key & field) - bias).to(tl.int32), mask=ok)


@triton.jit(do_not_specialize=["n"])
def unpack_keys_kernel(keys_ptr, coords_ptr, n, BLOCK: tl.constexpr):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = rows < n
    _unpack_store(coords_ptr, rows, tl.load(keys_ptr + rows, mask=ok, other=0), ok)


@triton.jit(do_not_specialize=["n_out", "n_in", "n_steps"])
def query_kernel(
    out_coords_ptr, offsets_ptr, weight_rows_ptr, keys_ptr, order_ptr, table_ptr, mask_ptr,
    n_out, n_in, n_steps, sx, sy, sz,
    K: tl.constexpr, RUN: tl.constexpr, HAS_ORDER: tl.constexpr, WRITE_MASK: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """table[o, k] = row of the input at `o * stride + offset[k]` (or -1), by binary search.

    Offsets come sorted by (x, y, z) (weight_rows[j]: the k of sorted offset j) in runs of RUN with
    the same x and y and z one apart: one binary search per run, since the keys of a run's
    queries are one apart too and the keys are unique, the lower bound of the next query is this
    one's plus 1 if this one was found. mask[o] gets bit k set when that neighbour exists (rows
    are later sorted by it).
    """
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = rows < n_out
    base = out_coords_ptr + rows.to(tl.int64) * 4
    b = tl.load(base, mask=ok, other=0).to(tl.int64)
    x = tl.load(base + 1, mask=ok, other=0).to(tl.int64) * sx
    y = tl.load(base + 2, mask=ok, other=0).to(tl.int64) * sy
    z = tl.load(base + 3, mask=ok, other=0).to(tl.int64) * sz
    bits = tl.zeros([BLOCK], dtype=tl.int32)
    for group in range(K // RUN):
        j0 = group * RUN
        dx = tl.load(offsets_ptr + j0 * 3).to(tl.int64)
        dy = tl.load(offsets_ptr + j0 * 3 + 1).to(tl.int64)
        dz = tl.load(offsets_ptr + j0 * 3 + 2).to(tl.int64)
        query = _key(b, x + dx, y + dy, z + dz)
        lo = tl.zeros([BLOCK], dtype=tl.int64)
        hi = tl.zeros([BLOCK], dtype=tl.int64) + n_in
        for _ in range(n_steps):  # lower_bound
            active = lo < hi
            mid = (lo + hi) >> 1
            value = tl.load(keys_ptr + mid, mask=ok & active, other=0)
            right = active & (value < query)
            lo = tl.where(right, mid + 1, lo)
            hi = tl.where(active & (value >= query), mid, hi)
        for step in tl.static_range(RUN):
            position = tl.minimum(lo, n_in - 1)
            found = ok & (tl.load(keys_ptr + position, mask=ok, other=-1) == query)
            if HAS_ORDER:
                index = tl.load(order_ptr + position, mask=found, other=-1).to(tl.int32)
            else:
                index = position.to(tl.int32)
            index = tl.where(found, index, -1)
            k = tl.load(weight_rows_ptr + j0 + step)
            tl.store(table_ptr + rows.to(tl.int64) * K + k, index, mask=ok)
            if WRITE_MASK:
                bits = bits | (found.to(tl.int32) << k)
            lo = lo + found.to(tl.int64)
            query = query + 1
    if WRITE_MASK:
        tl.store(mask_ptr + rows, bits, mask=ok)


@triton.jit(do_not_specialize=["n_rows"])
def transpose_table_kernel(
    table_ptr, table_t_ptr, mask_t_ptr, n_rows,
    K: tl.constexpr, WRITE_MASK: tl.constexpr, BLOCK: tl.constexpr,
):
    """table_t[table[r, k], k] = r. Within one offset the map is injective: no two writes collide."""
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = rows < n_rows
    for k in range(K):
        index = tl.load(table_ptr + rows.to(tl.int64) * K + k, mask=ok, other=-1)
        hit = index >= 0
        target = tl.where(hit, index, 0).to(tl.int64)
        tl.store(table_t_ptr + target * K + k, rows.to(tl.int32), mask=hit)
        if WRITE_MASK:
            # Integer OR commutes: the result does not depend on the order of the atomics.
            tl.atomic_or(mask_t_ptr + target, tl.full([BLOCK], 1, tl.int32) << k, mask=hit)


@triton.jit
def _present(table_ptr, n_rows, K: tl.constexpr, K_POW2: tl.constexpr, BLOCK: tl.constexpr):
    """(rows, ks, table tile [BLOCK, K_POW2], present) of this program's block of table rows."""
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ks = tl.arange(0, K_POW2)
    ok = (rows < n_rows)[:, None] & (ks < K)[None, :]
    entries = tl.load(table_ptr + rows[:, None].to(tl.int64) * K + ks[None, :], mask=ok, other=-1)
    return rows, ks, entries, entries >= 0


@triton.jit(do_not_specialize=["n_rows"])
def count_pairs_kernel(table_ptr, counts_ptr, n_rows, K: tl.constexpr, K_POW2: tl.constexpr,
                       BLOCK: tl.constexpr):
    """counts[k, block] = the rows of this block with a neighbour at offset k ([K, blocks], so that
    one flat cumulative sum runs offset after offset)."""
    rows, ks, entries, present = _present(table_ptr, n_rows, K, K_POW2, BLOCK)
    tl.store(counts_ptr + ks * tl.num_programs(0) + tl.program_id(0), tl.sum(present.to(tl.int32), axis=0),
             mask=ks < K)


@triton.jit(do_not_specialize=["n_rows"])
def write_pairs_kernel(table_ptr, ends_ptr, rows_out_ptr, others_ptr, starts_ptr, n_rows, K: tl.constexpr,
                       K_POW2: tl.constexpr, BLOCK: tl.constexpr):
    """Offset k's pairs, in row order: rows_out[k, j] = the j-th table row with a neighbour at k,
    others[k, j] = that neighbour; starts[k] = the pairs of the offsets before k (starts[K]: all).
    ends: the inclusive cumulative sum of count_pairs_kernel's counts."""
    rows, ks, entries, present = _present(table_ptr, n_rows, K, K_POW2, BLOCK)
    block, blocks = tl.program_id(0), tl.num_programs(0)
    k_ok = ks < K
    flags = present.to(tl.int32)
    before = tl.cumsum(flags, axis=0) - flags  # earlier rows of this block with the same offset
    block_end = tl.load(ends_ptr + ks * blocks + block, mask=k_ok, other=0)
    k_start = tl.load(ends_ptr + ks * blocks - 1, mask=k_ok & (ks > 0), other=0)
    position = block_end - tl.sum(flags, axis=0) - k_start  # of this block's first pair within offset k
    dest = ks[None, :].to(tl.int64) * n_rows + position[None, :] + before
    tl.store(rows_out_ptr + dest, tl.broadcast_to(rows[:, None], [BLOCK, K_POW2]), mask=present)
    tl.store(others_ptr + dest, entries, mask=present)
    if block == 0:
        tl.store(starts_ptr + ks, k_start, mask=k_ok)
        tl.store(starts_ptr + K, tl.load(ends_ptr + K * blocks - 1))


@triton.jit(do_not_specialize=["n_rows"])
def mask_bit_counts_kernel(mask_ptr, counts_ptr, n_rows, K: tl.constexpr, K_POW2: tl.constexpr,
                           BLOCK: tl.constexpr):
    """counts[k] += the rows of this block whose bitmask has bit k (integer atomics: exact, so the
    counts do not depend on the order the programs run in)."""
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    masks = tl.load(mask_ptr + rows, mask=rows < n_rows, other=0)
    ks = tl.arange(0, K_POW2)
    bits = (masks[:, None] >> ks[None, :]) & 1
    tl.atomic_add(counts_ptr + ks, tl.sum(bits, axis=0), mask=ks < K)


@triton.jit(do_not_specialize=["n_rows", "high"])
def rarity_keys_kernel(mask_ptr, counts_ptr, keys_ptr, n_rows, high, K: tl.constexpr, K_POW2: tl.constexpr,
                       BLOCK: tl.constexpr):
    """keys[r] = the rank, in reflected Gray-code order, of row r's bitmask with its bits reordered
    by how many rows have them: the rarest offset becomes the most significant bit, the commonest
    the least (ties by offset index); `high` is or-ed in above them (the side's index when several
    sides are sorted together). Gray order puts next to each other masks that differ in one bit
    where plain binary order jumps (0111 -> 1000): fewer offsets per tile where groups of equal
    masks meet."""
    ks = tl.arange(0, K_POW2)
    valid = ks < K
    counts = tl.load(counts_ptr + ks, mask=valid, other=0)
    # rank[k] = the number of offsets more common than k (equal counts: the lower index first).
    mine, other = counts[:, None], counts[None, :]
    before = (other > mine) | ((other == mine) & (ks[None, :] < ks[:, None]))
    rank = tl.sum((before & valid[None, :]).to(tl.int32), axis=1)
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = rows < n_rows
    masks = tl.load(mask_ptr + rows, mask=ok, other=0)
    bits = tl.where(valid[None, :], (masks[:, None] >> ks[None, :]) & 1, 0)
    keys = tl.sum(bits << rank[None, :], axis=1)
    for shift in tl.static_range(5):  # Gray code -> rank: every bit XOR-ed with all bits above it
        keys ^= keys >> (1 << shift)
    keys = keys | high
    tl.store(keys_ptr + rows, keys.to(keys_ptr.dtype.element_ty), mask=ok)


@triton.jit(do_not_specialize=["n_rows", "base"])
def sort_table_kernel(
    table_ptr, perm_ptr, mask_ptr, sorted_table_ptr, sorted_mask_ptr, perm_out_ptr, n_rows, base,
    K: tl.constexpr, BLOCK: tl.constexpr,
):
    """With rows = perm[base + s] - base (perm: a sort of several sides' keys, this side's at
    [base, base + n_rows)): perm_out[s] = rows (int32), sorted_table[k, s] = table[rows, k] and
    sorted_mask[s] = mask[rows]: the implicit GEMM's layout, where a tile's column of neighbours is
    one contiguous load."""
    slots = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = slots < n_rows
    rows = tl.load(perm_ptr + base + slots, mask=ok, other=base).to(tl.int64) - base
    tl.store(perm_out_ptr + slots, rows.to(tl.int32), mask=ok)
    tl.store(sorted_mask_ptr + slots, tl.load(mask_ptr + rows, mask=ok, other=0), mask=ok)
    for k in range(K):
        tl.store(sorted_table_ptr + k * n_rows + slots, tl.load(table_ptr + rows * K + k, mask=ok, other=-1),
                 mask=ok)


@triton.jit(do_not_specialize=["n", "count", "cap", "run_base"])
def fill_level_kernel(
    src_ptr, run_ptr, coords_ptr, keys_ptr, n, count, cap, run_base, pad_x0, pad_batch,
    WITH_KEYS: tl.constexpr, PAD_SPACING: tl.constexpr, BLOCK: tl.constexpr,
):
    """One down-sampled stride in one launch: its `count` distinct voxels, from the sorted `src`
    (n int64 keys; run[i] - run_base = the number of distinct keys among src[:i + 1]), unpacked
    into coords (and copied to keys), then padding rows `[count, cap)`: voxels (pad_batch,
    pad_x0 + PAD_SPACING * j, 0, 0), j = 0, 1, ..., larger than any real key and in order.
    """
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    _store_distinct(src_ptr, run_ptr, coords_ptr, keys_ptr, i, n, run_base, WITH_KEYS)
    pad = count + i
    pad_ok = pad < cap
    _store_padding(coords_ptr, keys_ptr, pad, pad_ok, i, pad_x0, pad_batch, WITH_KEYS, PAD_SPACING, BLOCK)


@triton.jit
def _store_distinct(src_ptr, run_ptr, coords_ptr, keys_ptr, i, n, run_base, WITH_KEYS: tl.constexpr):
    """The distinct keys among the sorted src[i] (the first of each run), unpacked into coords (and
    copied to keys) at row run[i] - run_base - 1."""
    ok = i < n
    run = tl.load(run_ptr + i, mask=ok, other=0) - run_base
    previous = tl.load(run_ptr + i - 1, mask=ok & (i > 0), other=run_base) - run_base
    first = ok & (run != previous)  # the first of a run of equal keys
    key = tl.load(src_ptr + i, mask=first, other=0)
    _unpack_store(coords_ptr, run - 1, key, first)
    if WITH_KEYS:
        tl.store(keys_ptr + run - 1, key, mask=first)


@triton.jit
def _store_padding(coords_ptr, keys_ptr, pad, pad_ok, i, pad_x0, pad_batch, WITH_KEYS: tl.constexpr,
                   PAD_SPACING: tl.constexpr, BLOCK: tl.constexpr):
    """Padding voxel i (batch pad_batch, x = pad_x0 + PAD_SPACING * i) into row `pad`."""
    pad_key = _key(tl.full([BLOCK], 0, tl.int64) + pad_batch, pad_x0 + PAD_SPACING * i.to(tl.int64),
                   tl.zeros([BLOCK], tl.int64), tl.zeros([BLOCK], tl.int64))
    _unpack_store(coords_ptr, pad, pad_key, pad_ok)
    if WITH_KEYS:
        tl.store(keys_ptr + pad, pad_key, mask=pad_ok)


@triton.jit(do_not_specialize=["n"])
def run_starts_kernel(keys_ptr, first_ptr, info_ptr, n, BLOCK: tl.constexpr):
    """first[l, i] = 1 where the sorted keys [L, n] of level l = program_id(1) start a run of equal
    keys, else 0; info[1 + l] += their number (integer atomics: the same sum in any order)."""
    level = tl.program_id(1)
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < n
    base = level.to(tl.int64) * n
    key = tl.load(keys_ptr + base + i, mask=ok, other=0)
    previous = tl.load(keys_ptr + base + i - 1, mask=ok & (i > 0), other=0)
    first = ok & ((i == 0) | (key != previous))
    tl.store(first_ptr + base + i, first.to(first_ptr.dtype.element_ty), mask=ok)
    tl.atomic_add(info_ptr + 1 + level, tl.sum(first.to(tl.int64), axis=0))


@triton.jit(do_not_specialize=["n", "c_feats", "ignore_index"])
def fill_levels_kernel(
    coords_src_ptr, feats_src_ptr, labels_src_ptr, keys_ptr, order_ptr, runs_ptr, table_ptr,
    coords_ptr, out_keys_ptr, order_out_ptr, feats_ptr, labels_ptr, mask_ptr, count_ptr,
    n, c_feats, ignore_index, pad_batch,
    WITH_LABELS: tl.constexpr, WITH_MASK: tl.constexpr, PAD_SPACING: tl.constexpr, BLOCK: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Every stride of a padded scan (kernels.graphs) in one launch; level l = program_id(1).

    table [L, 2] (int64): the level's first row in the flat outputs (coords [R, 4], keys [R],
    mask [R]) and its capacity. keys, order, runs [L, n]: `SortedLevels` of the n input voxels;
    level l has runs[l, n - 1] - runs[l - 1, n - 1] distinct keys (read here: no host values).
    Level 0 (the input, distinct voxels): coords copied in row order, with their sorted keys and
    the rows of those (order_out, int32), the features [n, c_feats] and (WITH_LABELS) the labels;
    padding rows get zero features and `ignore_index`. Levels > 0: the distinct keys, unpacked.
    Padding rows of every level as in fill_level_kernel (x from 0 at level 0, from 3 after).
    WITH_MASK: mask = 1 on real rows, 0 on padding, and count[l, 0] (float64) = the real rows.
    """
    level = tl.program_id(1)
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    row0 = tl.load(table_ptr + level * 2)
    cap = tl.load(table_ptr + level * 2 + 1)
    base = level.to(tl.int64) * n
    end = tl.load(runs_ptr + base + n - 1)
    start = tl.load(runs_ptr + base - 1, mask=level > 0, other=0)
    count = end - start
    coords_ptr += row0 * 4
    out_keys_ptr += row0
    if level == 0:
        ok = i < n
        rows = i.to(tl.int64)
        for axis in range(4):
            value = tl.load(coords_src_ptr + rows * 4 + axis, mask=ok, other=0)
            tl.store(coords_ptr + rows * 4 + axis, value, mask=ok)
        tl.store(out_keys_ptr + i, tl.load(keys_ptr + i, mask=ok, other=0), mask=ok)
        tl.store(order_out_ptr + i, tl.load(order_ptr + i, mask=ok, other=0).to(tl.int32), mask=ok)
        pad = n + i
        tl.store(order_out_ptr + pad, pad.to(tl.int32), mask=pad < cap)
        in_cap = i < cap
        cols = tl.arange(0, BLOCK_C)
        f_ok = ok[:, None] & (cols < c_feats)[None, :]
        f_offsets = rows[:, None] * c_feats + cols[None, :]
        f = tl.load(feats_src_ptr + f_offsets, mask=f_ok, other=0.0)
        tl.store(feats_ptr + f_offsets, f, mask=in_cap[:, None] & (cols < c_feats)[None, :])
        if WITH_LABELS:
            label = tl.load(labels_src_ptr + i, mask=ok, other=0)
            tl.store(labels_ptr + i, tl.where(ok, label, ignore_index).to(labels_ptr.dtype.element_ty),
                     mask=in_cap)
    else:
        _store_distinct(keys_ptr + base, runs_ptr + base, coords_ptr, out_keys_ptr, i, n, start, True)
    pad_x0 = tl.where(level == 0, 0, 3)
    pad = count + i
    _store_padding(coords_ptr, out_keys_ptr, pad, pad < cap, i, pad_x0, pad_batch, True, PAD_SPACING, BLOCK)
    if WITH_MASK:
        tl.store(mask_ptr + row0 + i, (i < count).to(tl.float32), mask=i < cap)
        if tl.program_id(0) == 0:
            tl.store(count_ptr + level * 2, count.to(tl.float64))
