"""Exact shortest paths on a grid of costs: the search behind :mod:`qamar.rover.plan`.

Graph. Nodes are pixel centres; a move goes to one of the 8 neighbours, or also to one of the
8 knight's-move cells (16-connected). A move costs the line integral of the cost ``w`` (per
pixel step, per pixel) along its straight segment: a straight or diagonal move spends half
its length L (1 or sqrt 2 pixels) in each end pixel, ``L (w_a + w_b) / 2`` (the metric of
scikit-image's MCP_Geometric); a knight's move (L = sqrt 5) a quarter in each of the four
pixels it crosses, and is allowed only if all four are drivable. A diagonal passes through a
corner only, so it is allowed between two blocked pixels that touch there.

Lower bound. The cheapest pixel of each 8 x 8 block bounds the cost of every metre driven in
the block. On the lattice of block corners, a Dijkstra from the end's block gives H with
neighbouring corners (b pixels apart) differing by at most b m / sqrt 2, m the cheaper of the
two blocks along that edge; interpolated linearly on the two triangles of each block, h then
has a gradient of at most m per pixel (|dh/dx|, |dh/dy| <= m / sqrt 2) in each block. A move
spends each part of its segment in a pixel of cost >= m of that pixel's block, so h never
drops along a move by more than the move costs: h is a consistent potential, wherever the
end is (Goldberg & Harrelson 2005, the condition for exact A*). Blocks whose corners the
lattice search cannot reach from an end cannot reach it at fine scale either (a drivable
pixel connects its block's four corners), so their pixels are dropped.

Search. Bidirectional Dijkstra on reduced costs, one search from the start and one from the
goal (or from every goal pixel), with the average potential p = s (h_goal - h_start) / 2 (Ikeda
et al. 1994): every reduced move costs at least (1 - s) of the move, s = 0.99. Each side keeps
a bucket queue (Dial 1969) of width just under the cheapest reduced move, so every pixel in
the current bucket is final (Dinitz 1978) and expands once; improved pixels are pushed again
and older entries skipped. With free (cost 0) pixels the buckets are as wide as the cheapest
move that costs something, and pixels joined by free moves may expand again (still exact). A side stops when the two current bucket floors sum to mu, the
cheapest start-to-goal cost it has seen through a pixel labelled by both sides (no path through
a pixel neither side has settled is cheaper), or when either side has stopped or run out.

Two threads. The sides run at once, one per thread (each labels its own slot of the shared
records and reads the other's). Reads of the other side's labels and bucket floor may be
stale, which only delays a stop; and a meeting both sides miss in the same instant is found
afterwards: of an optimal path, either a pixel was settled by neither side (so it costs at
least the stopping bound, hence mu), or its goal end was settled forward, or a pixel the
backward side settled (its start end, or the first after the pixels settled forward) carries
the forward label through the path. So the cheapest g_start + g_goal over the meetings seen,
the ends and the backward side's settled pixels, taken after both threads end, is the exact
optimum. Which of several equally cheap paths comes out may change from run to run.

Memory. A search over 2.5 M pixels is bound by memory latency, not arithmetic: each pixel's
two labels, its cost and its potential share one 32-byte record (half a cache line), and the
records around the next pixel in the bucket are prefetched while the current one expands.
On the 1600 x 1600 ridge DEM, corner to corner, 8-connected (docs/benchmarks.md): 1.29 M
pixels expanded in 0.08 s of wall clock, 0.15 s of CPU; the octile-distance potential of the
single-threaded search before it expanded 1.52 M in 0.21 s.
"""

from __future__ import annotations

import heapq
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from qamar.errors import ModelConfigError

PAD = 2  # inf border around the grid: moves of up to 2 pixels need no bounds checks
_BLOCK_SHIFT = 3  # lower-bound blocks of 2**3 = 8 pixels square
_POTENTIAL_SHARE = 0.99  # s above: closer to 1, tighter potentials but narrower buckets
_WIDTH_MARGIN = 1e-6  # bucket width this much under the cheapest reduced move, against rounding
_ROUNDING_ULPS = 64  # bound on the potentials' rounding (lattice sums, interpolation), in ulps of the largest
_MAX_BUCKETS = 1 << 20  # per queue ring: the ring heads take at most 8 MB each
_COST, _POTENTIAL = 2, 3  # record slots: label of side s (0 forward, 1 backward) at slot s, then cost, potential
_NO_MOVE = 31  # parent byte of a search's origin (moves are 0..15)
_STOPPED = np.iinfo(np.int64).max // 4  # bucket floor a side posts when it stops


@dataclass(frozen=True)
class GridPath:
    """An optimal grid path: pixel ``rows``/``cols`` (int, start to goal), its ``cost`` (the sum
    of move costs, in the grid's cost units), pixels ``expanded``; cost inf and empty arrays if
    no path exists."""

    rows: np.ndarray
    cols: np.ndarray
    cost: float
    expanded: int


def moves(connectivity: int) -> np.ndarray:
    """(dr, dc) of the moves, int64 (n, 2): 8 neighbours, then the 8 knight's moves."""
    if connectivity not in (8, 16):
        raise ModelConfigError(f"connectivity must be 8 or 16, got {connectivity}")
    steps = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
    if connectivity == 16:
        steps += [(dr, dc) for dr in (-2, -1, 1, 2) for dc in (-2, -1, 1, 2) if abs(dr) != abs(dc)]
    return np.array(steps, dtype=np.int64)


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to load the cache line of ``array[index]`` (1-D) for reading (LLVM prefetch)."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte_ptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        read, high_locality, data_cache = ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), byte_ptr), read, high_locality, data_cache])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@njit(cache=True, nogil=True)
def _cost_range(w):
    """(smallest finite cost, smallest positive one, largest, whether any is NaN or negative,
    block minima of the cost grid ``w`` (ny, nx): inf where a block is all blocked)."""
    ny, nx = w.shape
    b = 1 << _BLOCK_SHIFT
    block_min = np.full(((ny + b - 1) // b, (nx + b - 1) // b), np.inf)
    low, low_positive, high, bad = np.inf, np.inf, 0.0, False
    for r in range(ny):
        for c in range(nx):
            x = w[r, c]
            if x < np.inf:
                low = min(low, x)
                low_positive = min(low_positive, x) if x > 0.0 else low_positive
                high = max(high, x)
                block_min[r >> _BLOCK_SHIFT, c >> _BLOCK_SHIFT] = min(block_min[r >> _BLOCK_SHIFT, c >> _BLOCK_SHIFT], x)
            bad |= not x >= 0.0
    return low, low_positive, high, bad, block_min


@njit(cache=True, nogil=True)
def _corner_bound(block_min, seed_rows, seed_cols):
    """H on the block-corner lattice (cy + 1, cx + 1): Dijkstra from the corners of the seed
    pixels' blocks over edges of cost b m / sqrt 2 (m the cheaper block along the edge; inf
    between two all-blocked blocks). Unreached corners are inf. See the module docstring."""
    cy, cx = block_min.shape
    scale = (1 << _BLOCK_SHIFT) / math.sqrt(2.0)
    h = np.full((cy + 1, cx + 1), np.inf)
    heap = [(0.0, np.int64(0))]
    heap.pop()
    for k in range(seed_rows.size):
        i, j = seed_rows[k] >> _BLOCK_SHIFT, seed_cols[k] >> _BLOCK_SHIFT
        for a in range(2):
            for b in range(2):
                if h[i + a, j + b] > 0.0:
                    h[i + a, j + b] = 0.0
                    heap.append((0.0, np.int64((i + a) * (cx + 1) + j + b)))
    done = np.zeros((cy + 1, cx + 1), np.bool_)
    while heap:
        d, node = heapq.heappop(heap)
        i, j = node // (cx + 1), node % (cx + 1)
        if done[i, j]:
            continue
        done[i, j] = True
        for di, dj in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            ni, nj = i + di, j + dj
            if not (0 <= ni <= cy and 0 <= nj <= cx) or done[ni, nj]:
                continue
            if di == 0:  # a row edge borders the blocks above and below it
                jj = min(j, nj)
                m = min(block_min[i - 1, jj] if i > 0 else np.inf, block_min[i, jj] if i < cy else np.inf)
            else:  # a column edge borders the blocks left and right of it
                ii = min(i, ni)
                m = min(block_min[ii, j - 1] if j > 0 else np.inf, block_min[ii, j] if j < cx else np.inf)
            nd = d + scale * m
            if nd < h[ni, nj]:
                h[ni, nj] = nd
                heapq.heappush(heap, (nd, np.int64(ni * (cx + 1) + nj)))
    return h


@njit(cache=True, nogil=True)
def _fill_records(w, lattice, rec, first_row, end_row):
    """Fill rows ``first_row``..``end_row`` (padded) of the records ``rec`` (n, 4) for the cost
    grid ``w`` (ny, nx) with a border of PAD blocked pixels: labels inf, cost, and the
    potential, ``lattice`` (block corners) interpolated at the pixel centre on its block's
    upper-right or lower-left triangle. Pixels of blocks with a corner that is not finite
    (unreached from an end) are blocked."""
    ny, nx = w.shape
    ncols = nx + 2 * PAD
    inv_b = 1.0 / (1 << _BLOCK_SHIFT)
    low_bits = (1 << _BLOCK_SHIFT) - 1
    for rp in range(first_row, end_row):
        r = rp - PAD
        for cp in range(ncols):
            u = rp * ncols + cp
            c = cp - PAD
            rec[u, 0] = rec[u, 1] = np.inf
            rec[u, _COST], rec[u, _POTENTIAL] = np.inf, 0.0
            if 0 <= r < ny and 0 <= c < nx:
                i, j = r >> _BLOCK_SHIFT, c >> _BLOCK_SHIFT
                fy, fx = ((r & low_bits) + 0.5) * inv_b, ((c & low_bits) + 0.5) * inv_b
                h00, h11 = lattice[i, j], lattice[i + 1, j + 1]
                corner = lattice[i, j + 1] if fx >= fy else lattice[i + 1, j]
                p = h00 + max(fx, fy) * (corner - h00) + min(fx, fy) * (h11 - corner)
                if abs(p) < np.inf:
                    rec[u, _COST], rec[u, _POTENTIAL] = w[r, c], p


@njit(cache=True, nogil=True)
def _grow(side, rec, parents, ncols, origins, moves, width, max_w, base, floors, best, node, nxt, entry_g, settled):
    """One side of the bidirectional search (module docstring) on the padded flat records
    ``rec``: side 0 from the pixels ``origins`` towards the goal, side 1 from the goal pixels
    back. ``parents`` (2 n bytes) receives the move that last improved each pixel (side s at
    2 v + s); ``node``/``nxt``/``entry_g`` are this side's pool of queue entries (pixel, next
    entry in its bucket, label when queued); ``settled`` receives the pixels this side expands.
    Shared with the other side: ``base`` (the smallest key of each side's origins), ``floors``
    (each side's current bucket, _STOPPED once it stops) and ``best`` (the cheapest meeting
    each side has seen, at 2 s, and its pixel, at 2 s + 1). Returns the pixels expanded, or -1
    if the pool or ``settled`` ran out."""
    other = 1 - side
    sign = 1.0 if side == 0 else -1.0
    key0 = base[side]
    flat = rec.ravel()
    nmoves = moves.shape[0]
    reach = 2 if nmoves > 8 else 1
    off = np.empty(nmoves, np.int64)
    weight = np.empty(nmoves)  # move length over the number of pixels sharing it
    via1 = np.zeros(nmoves, np.int64)  # the two pixels a knight's move crosses, as indices of the first 8 moves
    via2 = np.zeros(nmoves, np.int64)
    for k in range(nmoves):
        dr, dc = moves[k, 0], moves[k, 1]
        off[k] = dr * ncols + dc
        weight[k] = 0.5 * math.sqrt(dr * dr + dc * dc)
        if abs(dr) + abs(dc) == 3:
            weight[k] *= 0.5
            r1, c1, r2, c2 = (0, dc // 2, dr, dc // 2) if abs(dc) == 2 else (dr // 2, 0, dr // 2, dc)
            for j in range(8):
                if moves[j, 0] == r1 and moves[j, 1] == c1:
                    via1[k] = j
                if moves[j, 0] == r2 and moves[j, 1] == c2:
                    via2[k] = j
    nb = 4
    while nb * width < 4.0 * math.sqrt(5.0) * max_w + 4.0 * width:  # > the largest reduced move
        nb *= 2
    ring = nb - 1
    head = np.full(nb, -1, np.int32)  # first entry of each bucket
    inv_width = 1.0 / width
    wn = np.empty(8)
    used = 0
    for v in origins:
        rec[v, side] = 0.0
        parents[2 * v + side] = _NO_MOVE
        slot = np.int64((sign * rec[v, _POTENTIAL] - key0) * inv_width) & ring
        node[used], nxt[used], entry_g[used], head[slot] = v, head[slot], 0.0, used
        used += 1
    entries = used
    free = -1  # recycled entries
    mu = best[2 * side]
    cur = 0
    expanded = 0
    while entries > 0:
        while head[cur & ring] < 0:
            cur += 1
        floors[side] = cur
        if floors[other] == _STOPPED or (cur + floors[other]) * width + base[0] + base[1] >= min(mu, best[2 * other]):
            break
        slot = cur & ring
        while head[slot] >= 0:
            e = head[slot]
            u = node[e]
            gu = entry_g[e]
            head[slot] = nxt[e]
            nxt[e] = free
            free = e
            entries -= 1
            if gu != rec[u, side]:  # an older entry of a pixel improved since
                continue
            if expanded == settled.size:  # pixels expanded again (wide buckets): the caller retries
                floors[side] = _STOPPED
                return -1
            settled[expanded] = u
            expanded += 1
            if head[slot] >= 0:  # the next pixel's neighbourhood, while this one expands
                ahead = 4 * node[head[slot]]
                for dr in range(-reach, reach + 1):
                    _prefetch(flat, ahead + 4 * (dr * ncols - reach))
                    _prefetch(flat, ahead + 4 * (dr * ncols + reach))
            wu = rec[u, _COST]
            for k in range(nmoves):  # the 8 neighbours, then the knight's moves
                v = u + off[k]
                if k < 8:
                    wn[k] = rec[v, _COST]
                    gv = gu + weight[k] * (wu + wn[k])
                else:
                    gv = gu + weight[k] * (wu + wn[via1[k]] + wn[via2[k]] + rec[v, _COST])
                if gv < rec[v, side]:  # false for blocked pixels (inf)
                    rec[v, side] = gv
                    if gv + rec[v, other] < mu:
                        mu = gv + rec[v, other]
                        best[2 * side], best[2 * side + 1] = mu, v
                    b = max(np.int64((gv + sign * rec[v, _POTENTIAL] - key0) * inv_width), cur)
                    if free >= 0:
                        f = free
                        free = nxt[f]
                    elif used < node.size:
                        f = used
                        used += 1
                    else:  # the caller retries with a larger pool
                        floors[side] = _STOPPED
                        return -1
                    node[f] = v
                    entry_g[f] = gv
                    nxt[f] = head[b & ring]
                    head[b & ring] = f
                    parents[2 * v + side] = k
                    entries += 1
    floors[side] = _STOPPED
    return expanded


@njit(cache=True, nogil=True)
def _meeting(rec, candidates):
    """(pixel, g_start + g_goal) of the cheapest of ``candidates`` (flat padded pixels), on the
    final labels; (-1, inf) if none is labelled by both sides."""
    meet, cost = -1, np.inf
    for v in candidates:
        if rec[v, 0] + rec[v, 1] < cost:
            meet, cost = v, rec[v, 0] + rec[v, 1]
    return meet, cost


@njit(cache=True, nogil=True)
def _trace(parents, moves, ncols, meet):
    """Pixels (flat, padded) of the path through ``meet``: back to the start along the
    forward parent moves (``parents[2 v]``), on to a goal along the backward ones."""
    length = np.zeros(2, np.int64)
    for side in range(2):
        u = meet
        while parents[2 * u + side] != _NO_MOVE:
            k = parents[2 * u + side]
            u -= moves[k, 0] * ncols + moves[k, 1]
            length[side] += 1
    path = np.empty(length[0] + length[1] + 1, np.int64)
    path[length[0]] = meet
    for side, step in ((0, -1), (1, 1)):
        u, i = meet, length[0]
        for _ in range(length[side]):
            k = parents[2 * u + side]
            u -= moves[k, 0] * ncols + moves[k, 1]
            i += step
            path[i] = u
    return path


def _both(pool: ThreadPoolExecutor, fn, args_a: tuple, args_b: tuple):
    """``fn(*args_a)`` in a worker thread and ``fn(*args_b)`` in this one; both results."""
    future = pool.submit(fn, *args_a)
    result_b = fn(*args_b)
    return future.result(), result_b


def shortest_path(w: np.ndarray, start: tuple[int, int], goal: tuple[int, int] | np.ndarray,
                  connectivity: int = 16) -> GridPath:
    """Optimal path on a grid of costs per pixel step ``w`` (ny, nx; >= 0, inf = blocked)
    from pixel ``start`` (row, col) to pixel ``goal`` or to the nearest of the pixels set in a
    bool mask ``goal`` (ny, nx), in two threads. The metric is in the module docstring. Raises
    ModelConfigError for negative or NaN costs, a bad connectivity or a start outside the grid."""
    w = np.ascontiguousarray(w, dtype=np.float64)
    step_moves = moves(connectivity)
    ny, nx = w.shape
    if not (0 <= start[0] < ny and 0 <= start[1] < nx):
        raise ModelConfigError(f"start pixel {start} is outside the {ny} x {nx} grid")
    low, low_positive, high, bad, block_min = _cost_range(w)
    if bad:
        raise ModelConfigError("path costs must be 0 or more (inf for blocked pixels), without NaN")
    no_path = GridPath(np.empty(0, int), np.empty(0, int), math.inf, 0)
    if not np.isfinite(w[start]):
        return no_path
    rows, cols = np.nonzero(goal) if isinstance(goal, np.ndarray) else (np.array([goal[0]]), np.array([goal[1]]))
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    if np.any((rows == start[0]) & (cols == start[1])):
        return GridPath(np.array([start[0]]), np.array([start[1]]), 0.0, 0)
    ncols, nrows = nx + 2 * PAD, ny + 2 * PAD
    # Large arrays come from NumPy, which backs them with huge pages: fewer page faults and TLB
    # misses than numba's own allocations (three times faster to fill here).
    rec = np.empty((nrows * ncols, 4))
    with ThreadPoolExecutor(1) as pool:
        # Potentials aim at one goal pixel; a set of goals is searched with plain bidirectional
        # Dijkstra (their potentials would spread the backward origins over more buckets than a ring holds).
        share = _POTENTIAL_SHARE if low > 0.0 and rows.size == 1 else 0.0
        lattice = np.zeros((block_min.shape[0] + 1, block_min.shape[1] + 1))
        slack = 0.0  # how much rounding may lower a reduced move below (1 - share) of the move
        if share:
            to_goal, to_start = _both(pool, _corner_bound, (block_min, rows, cols),
                                      (block_min, np.array([start[0]]), np.array([start[1]])))
            with np.errstate(invalid="ignore"):  # inf - inf: blocks cut off from both ends
                lattice = share / 2.0 * (to_goal - to_start)
            finite = np.concatenate([to_goal[np.isfinite(to_goal)], to_start[np.isfinite(to_start)]])
            slack = _ROUNDING_ULPS * np.finfo(float).eps * float(finite.max(initial=0.0))
        _both(pool, _fill_records, (w, lattice, rec, 0, nrows // 2), (w, lattice, rec, nrows // 2, nrows))
        start_i = (start[0] + PAD) * ncols + start[1] + PAD
        goals = (rows + PAD) * ncols + cols + PAD
        goals = goals[np.isfinite(rec[goals, _COST])]
        if not goals.size or not np.isfinite(rec[start_i, _COST]):
            return no_path
        # Buckets as wide as the cheapest reduced move, so each pixel expands once. With free pixels
        # (cost 0) as wide as the cheapest move that costs something (at least half the cheapest
        # positive pixel), and with a cost range wider than a ring holds, wider: some pixels then
        # expand again, still exact.
        exact_width = (1.0 - share) * low - slack if low > 0.0 else 0.5 * low_positive
        width = max(exact_width * (1.0 - _WIDTH_MARGIN), 4.0 * math.sqrt(5.0) * high / _MAX_BUCKETS) or 1.0
        origins = (np.array([start_i]), goals)
        base = np.array([rec[start_i, _POTENTIAL], np.min(-rec[goals, _POTENTIAL])])
        parents = np.empty(2 * rec.shape[0], np.uint8)  # read only along the path, where the search wrote them
        # Queue entries per side: the origins, then the live ones, a few per pixel of a wavefront; each
        # pixel expands once unless buckets are wide. Both grow if they run out.
        cap, settled_cap = max(rec.shape[0] // 2, goals.size) + 1024, rec.shape[0]
        while True:
            floors, best = np.zeros(2, np.int64), np.array([np.inf, -1.0, np.inf, -1.0])
            settled = np.empty(settled_cap, np.int32), np.empty(settled_cap, np.int32)
            expanded = _both(pool, _grow, *(
                (side, rec, parents, ncols, origins[side], step_moves, width, high, base, floors, best,
                 np.empty(cap, np.int32), np.empty(cap, np.int32), np.empty(cap), settled[side])
                for side in range(2)))
            if min(expanded) >= 0:
                break
            rec[:, :2] = np.inf  # again, from unlabelled pixels
            cap, settled_cap = 4 * cap, 4 * settled_cap
    candidates = np.concatenate([best[1::2][best[1::2] >= 0].astype(np.int64), *origins,
                                 settled[1][:expanded[1]].astype(np.int64)])
    meet, cost = _meeting(rec, candidates)
    if meet < 0:
        return GridPath(np.empty(0, int), np.empty(0, int), math.inf, int(sum(expanded)))
    path = _trace(parents, step_moves, ncols, meet)
    return GridPath(path // ncols - PAD, path % ncols - PAD, float(cost), int(sum(expanded)))
