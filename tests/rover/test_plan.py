"""The static planner: straight routes on level ground, optimal costs equal to independent
optima (scikit-image MCP_Geometric at 8-connectivity, scipy's Dijkstra on the same 16-connected
graph), and reasons a person can act on when there is no route."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph

from qamar.errors import ModelConfigError
from qamar.rover import gridsearch
from qamar.rover.gridsearch import shortest_path
from qamar.rover.model import RoverSpec
from qamar.rover.plan import plan_route
from qamar.rover.traverse import cost_map
from qamar.surface.terrain import me_from_lat_lon_height, pixel_lat_lon

R_M = 1737400.0


def _lat_lon(dem, rc):
    lat, lon = pixel_lat_lon(dem)
    return float(lat[rc]), float(lon[rc])


def test_level_ground_gives_the_straight_line_and_the_surface_distance(make_dem):
    dem = make_dem(np.zeros((400, 500)))  # level ground on the sphere, 10 m pixels, 5-25 km from the pole
    costs = cost_map(dem, craters=False)
    start, goal = (20, 30), (370, 470)  # a heading no grid move has (51.5 deg from the columns)
    route = plan_route(costs, _lat_lon(dem, start), _lat_lon(dem, goal))
    assert route.feasible and route.rows.tolist() == [20, 370] and route.cols.tolist() == [30, 470]
    lat, lon = pixel_lat_lon(dem)
    a, b = (me_from_lat_lon_height(lat[p], lon[p], 0.0, R_M) for p in (start, goal))
    surface_m = R_M * math.acos(np.dot(a, b) / R_M**2)  # great-circle distance
    assert route.length_m == pytest.approx(surface_m, rel=1e-6)
    assert route.duration_h == pytest.approx(surface_m / 0.01 / 3600, rel=1e-6)
    assert route.max_slope_deg < 0.01
    # the 16-connected grid optimum is at most 2.8 % longer (half the 26.6 deg between moves), never shorter
    assert surface_m < route.grid_cost < surface_m / math.cos(math.radians(13.3))
    grid = plan_route(costs, _lat_lon(dem, start), _lat_lon(dem, goal), shortcuts=False)
    assert grid.length_m == pytest.approx(route.grid_cost, rel=1e-6)  # cost 1 + slope/5, slope ~1e-6 deg


def _random_costs(seed, shape=(70, 90), blocked=0.25):
    rng = np.random.default_rng(seed)
    cost = 1.0 + 4.0 * rng.random(shape)
    cost[rng.random(shape) < blocked] = np.inf
    cost[0, 0] = cost[-1, -1] = 1.0
    return cost


@pytest.mark.parametrize("seed", range(4))
def test_8_connected_optimum_equals_scikit_image_mcp_geometric(seed):
    skimage_graph = pytest.importorskip("skimage.graph")
    cost = _random_costs(seed)
    ours = shortest_path(cost, (0, 0), (69, 89), connectivity=8)
    mcp = skimage_graph.MCP_Geometric(np.where(np.isinf(cost), -1.0, cost), fully_connected=True)
    cumulative, _ = mcp.find_costs([(0, 0)], [(69, 89)])
    assert ours.cost == pytest.approx(cumulative[69, 89], rel=1e-12)
    steps = np.hypot(np.diff(ours.rows), np.diff(ours.cols))
    along = 0.5 * (cost[ours.rows[:-1], ours.cols[:-1]] + cost[ours.rows[1:], ours.cols[1:]]) * steps
    assert along.sum() == pytest.approx(ours.cost, rel=1e-12) and set(steps.round(6)) <= {1.0, 1.414214}


def _graph_16(cost):
    """The 16-connected graph of the module docstring built edge by edge with numpy."""
    ny, nx = cost.shape
    index = np.arange(ny * nx).reshape(ny, nx)
    rows, cols, weights = [], [], []
    moves = [(dr, dc) for dr in (-2, -1, 0, 1, 2) for dc in (-2, -1, 0, 1, 2)
             if (dr, dc) != (0, 0) and max(abs(dr), abs(dc)) <= 2 and abs(dr) + abs(dc) in (1, 2, 3)
             and not (abs(dr) == 2 and dc == 0) and not (abs(dc) == 2 and dr == 0) and not (abs(dr) == abs(dc) == 2)]
    assert len(moves) == 16
    for dr, dc in moves:
        r0, r1 = max(0, -dr), min(ny, ny - dr)
        c0, c1 = max(0, -dc), min(nx, nx - dc)
        a = cost[r0:r1, c0:c1]
        b = cost[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
        if abs(dr) + abs(dc) == 3:  # a quarter of the length in each of the four pixels crossed
            if abs(dc) == 2:
                m1 = cost[r0:r1, c0 + dc // 2:c1 + dc // 2]
                m2 = cost[r0 + dr:r1 + dr, c0 + dc // 2:c1 + dc // 2]
            else:
                m1 = cost[r0 + dr // 2:r1 + dr // 2, c0:c1]
                m2 = cost[r0 + dr // 2:r1 + dr // 2, c0 + dc:c1 + dc]
            w = math.sqrt(5) * (a + m1 + m2 + b) / 4
        else:
            w = math.hypot(dr, dc) * (a + b) / 2
        ok = np.isfinite(w)
        rows.append(index[r0:r1, c0:c1][ok])
        cols.append(index[r0 + dr:r1 + dr, c0 + dc:c1 + dc][ok])
        weights.append(w[ok])
    return scipy.sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                                   shape=(ny * nx, ny * nx))


def _assert_scipy_optimum(cost, goals):
    """From pixel (0, 0) of a 70 x 90 grid to each goal: our 16-connected optimum equals scipy's
    Dijkstra on the same graph (or both find no path)."""
    distances = scipy.sparse.csgraph.dijkstra(_graph_16(cost), indices=0)
    for goal in goals:
        ours = shortest_path(cost, (0, 0), goal, connectivity=16)
        expected = distances[goal[0] * 90 + goal[1]]
        assert (ours.cost == pytest.approx(expected, rel=1e-12)) if np.isfinite(expected) else not ours.rows.size


@pytest.mark.parametrize("seed", range(4))
def test_16_connected_optimum_equals_scipy_dijkstra_on_the_same_graph(seed):
    _assert_scipy_optimum(_random_costs(seed, blocked=0.2), [(69, 89), (35, 80), (60, 5)])


def test_exact_with_free_pixels_and_a_wide_cost_range():
    """Free (cost 0) pixels and a 1e6 cost range make the queue's buckets wider than the cheapest
    move, so pixels are expanded again: still scipy's optimum on the same graph."""
    rng = np.random.default_rng(11)
    free = _random_costs(11, blocked=0.15)
    rows, cols = np.mgrid[0:70, 0:90]
    free[(rows % 3 == 0) & (cols % 3 == 0) & np.isfinite(free)] = 0.0  # isolated: every move still costs > 0
    wide = 10.0 ** rng.uniform(-3.0, 3.0, (70, 90))
    wide[rng.random((70, 90)) < 0.15] = np.inf
    wide[0, 0] = 1.0
    for cost in (free, wide):
        _assert_scipy_optimum(cost, [(69, 89), (40, 3), (2, 88)])


@pytest.mark.parametrize("connectivity", [8, 16])
def test_block_lower_bound_is_a_consistent_potential(connectivity):
    """The potential the search steers by (block minima spread over the corner lattice) never
    drops along a move by more than the move costs, for every move of the graph: the condition
    under which the search stays exact. Checked move by move on the graph built with numpy."""
    cost = _random_costs(21, shape=(70, 90), blocked=0.2)
    cost[10:30, 40:45] = 7.0  # a plateau wider than a block, so the bound's gradient reaches its limit
    ny, nx = cost.shape
    block_min = gridsearch._cost_range(cost)[-1]
    lattice = gridsearch._corner_bound(block_min, np.array([ny - 1]), np.array([nx - 1]))
    rec = np.empty(((ny + 2 * gridsearch.PAD) * (nx + 2 * gridsearch.PAD), 4))
    gridsearch._fill_records(cost, lattice, rec, 0, ny + 2 * gridsearch.PAD)
    padded = rec[:, 3].reshape(ny + 2 * gridsearch.PAD, nx + 2 * gridsearch.PAD)
    potential = padded[gridsearch.PAD:-gridsearch.PAD, gridsearch.PAD:-gridsearch.PAD].ravel()
    graph = _graph_16(cost).tocoo()
    if connectivity == 8:
        steps = np.abs(graph.row - graph.col)
        keep = np.isin(steps, [1, nx - 1, nx, nx + 1]) & (np.abs(graph.row % nx - graph.col % nx) <= 1)
        graph = scipy.sparse.coo_matrix((graph.data[keep], (graph.row[keep], graph.col[keep])), graph.shape)
    drop = potential[graph.row] - potential[graph.col]
    assert graph.nnz > 10000 and np.all(drop <= graph.data * (1 + 1e-12))
    assert np.max(drop / graph.data) > 0.7  # and not loose: at least 1/sqrt 2 of some move (the plateau)


def test_exact_whichever_side_of_the_two_threads_runs_first():
    """The two search fronts run in two threads, at whatever pace the machine gives them (one
    may finish before the other starts): hundreds of small searches of every shape, with free
    pixels, walls and sets of goals, all equal scikit-image's MCP_Geometric optimum."""
    skimage_graph = pytest.importorskip("skimage.graph")
    rng = np.random.default_rng(17)
    for trial in range(400):
        ny, nx = (int(n) for n in rng.integers(2, 40, 2))
        cost = 1.0 + 4.0 * rng.random((ny, nx))
        cost[rng.random((ny, nx)) < 0.05 * (trial % 2)] = 0.0
        cost[rng.random((ny, nx)) < 0.4 * rng.random()] = np.inf
        start, goal = tuple(int(rng.integers(n)) for n in (ny, nx)), tuple(int(rng.integers(n)) for n in (ny, nx))
        cost[start] = cost[goal] = 1.0
        goals = rng.random((ny, nx)) < 0.03
        goals[goal] = True
        expected, _ = skimage_graph.MCP_Geometric(np.where(np.isinf(cost), -1.0, cost),
                                                  fully_connected=True).find_costs([start])
        for end, best in ((goal, expected[goal]), (goals, expected[goals & np.isfinite(cost)].min())):
            ours = shortest_path(cost, start, end, connectivity=8)
            assert ours.cost == pytest.approx(best, rel=1e-12) if np.isfinite(best) else not ours.rows.size


def test_degenerate_ends():
    cost = _random_costs(3, blocked=0.0)
    same = shortest_path(cost, (5, 7), (5, 7))
    assert same.cost == 0.0 and same.rows.tolist() == [5] and same.cols.tolist() == [7]
    goals = np.zeros(cost.shape, bool)
    goals[5, 7] = goals[60, 60] = True
    assert shortest_path(cost, (5, 7), goals).cost == 0.0
    walled = cost.copy()
    walled[30:33, :] = np.inf  # a wall no move crosses (a knight's move needs its crossed pixels)
    assert not shortest_path(walled, (0, 0), (69, 89)).rows.size
    goals[:] = False
    goals[60:, :] = True
    assert not shortest_path(walled, (0, 0), goals).rows.size
    blocked_goal = cost.copy()
    blocked_goal[69, 89] = np.inf
    assert shortest_path(blocked_goal, (0, 0), (69, 89)).cost == math.inf


def test_a_set_of_goals_reaches_the_cheapest():
    cost = _random_costs(7, blocked=0.1)
    goals = np.zeros(cost.shape, bool)
    goals[60:, 80:] = True
    goals[5, 60] = True
    distances = scipy.sparse.csgraph.dijkstra(_graph_16(cost), indices=0)
    ours = shortest_path(cost, (0, 0), goals)
    assert ours.cost == pytest.approx(distances[goals.ravel()].min(), rel=1e-12)
    assert goals[ours.rows[-1], ours.cols[-1]]


def test_shortcuts_never_cost_more_nor_cross_blocked_pixels(make_dem):
    rng = np.random.default_rng(5)
    rows, cols = np.mgrid[0:200, 0:200]
    hills = 30 * np.sin(rows / 17.0) * np.cos(cols / 23.0) + rng.normal(0, 0.3, (200, 200))
    dem = make_dem(hills)
    costs = cost_map(dem, craters=False, max_slope_deg=12.0)
    route = plan_route(costs, _lat_lon(dem, (5, 5)), _lat_lon(dem, (190, 195)))
    assert route.feasible and float(route.cum_cost[-1]) <= route.grid_cost * (1 + 1e-9)
    assert route.max_slope_deg <= 12.0
    for i in range(1, route.rows.size):  # sample each straight drive densely, off the pixel corners
        t = (np.arange(4000) + 0.37) / 4000
        r = np.rint(route.rows[i - 1] + t * (route.rows[i] - route.rows[i - 1])).astype(int)
        c = np.rint(route.cols[i - 1] + t * (route.cols[i] - route.cols[i - 1])).astype(int)
        assert np.isfinite(costs.cost[r, c]).all()


def _plateau(make_dem, step_m=10.0):
    """Level ground with a disc raised by step_m: its edge is a ring of ~27 deg slopes."""
    rows, cols = np.mgrid[0:120, 0:120]
    return make_dem(np.where(np.hypot(rows - 60, cols - 60) < 30, step_m, 0.0))


def test_unreachable_goal_names_the_slope_limit_that_connects(make_dem):
    dem = _plateau(make_dem)
    costs = cost_map(dem, craters=False)
    start, goal = _lat_lon(dem, (60, 60)), _lat_lon(dem, (5, 5))
    route = plan_route(costs, start, goal)
    assert not route.feasible and "slope over the limit" in route.reason
    limit = float(route.reason.split("--max-slope-deg ")[1].rstrip(")"))
    assert 20.0 < limit < 40.0
    assert plan_route(cost_map(dem, craters=False, max_slope_deg=limit), start, goal).feasible
    assert not plan_route(cost_map(dem, craters=False, max_slope_deg=limit - 0.2), start, goal).feasible


def test_blocked_or_outside_end_points(make_dem):
    dem = _plateau(make_dem)
    costs = cost_map(dem, craters=False)
    on_edge = _lat_lon(dem, (60, 30))  # on the plateau's steep edge
    route = plan_route(costs, _lat_lon(dem, (5, 5)), on_edge)
    assert not route.feasible
    assert "goal" in route.reason and "slope over the limit" in route.reason and "deg > 20 deg" in route.reason
    assert "nearest drivable pixel connected to the other end" in route.reason and "m away" in route.reason
    outside = plan_route(costs, (-80.0, 0.0), _lat_lon(dem, (5, 5)))
    assert not outside.feasible and "start" in outside.reason and "outside the DEM" in outside.reason
    with pytest.raises(ModelConfigError, match="latitude"):
        plan_route(costs, (-95.0, 0.0), _lat_lon(dem, (5, 5)))
    with pytest.raises(ModelConfigError, match="connectivity"):
        shortest_path(np.ones((3, 3)), (0, 0), (2, 2), connectivity=4)


def test_summary_and_files(make_dem, tmp_path):
    import csv
    import json

    dem = make_dem(np.zeros((50, 60)))
    rover = RoverSpec.model_validate({"mobility": {"speed_m_per_s": 0.05}})
    route = plan_route(cost_map(dem, rover, craters=False), _lat_lon(dem, (2, 3)), _lat_lon(dem, (45, 50)), rover)
    doc = route.summary()
    assert doc["feasible"] and doc["reason"] is None
    assert doc["duration_h"] == pytest.approx(doc["length_m"] / 0.05 / 3600, rel=1e-4)
    geo = json.loads(route.write_geojson(tmp_path / "r.geojson").read_text())
    assert geo["crs"]["properties"]["name"] == dem.crs.to_string() and "+proj=stere" in geo["crs"]["properties"]["proj4"]
    line = geo["features"][0]
    assert len(line["geometry"]["coordinates"]) == len(line["properties"]["vertex_lat_deg"]) == route.rows.size
    rows = list(csv.DictReader(route.write_csv(tmp_path / "r.csv").open()))
    assert float(rows[-1]["distance_m"]) == pytest.approx(route.length_m, abs=1e-3)


def _ridge_costs(window=None):
    from qamar import data
    from qamar.surface.terrain import read_dem

    dem = read_dem(data.path("dem_site01_10m"), window=window)
    return dem, cost_map(dem, craters=False)  # cost 1 + slope/5 deg, over 20 deg blocked


def _compare_with_skimage(cost, start, goal):
    skimage_graph = pytest.importorskip("skimage.graph")
    ours = shortest_path(cost, start, goal, connectivity=8)
    _, theirs = skimage_graph.route_through_array(np.where(np.isfinite(cost), cost, -1.0), start, goal,
                                                  fully_connected=True, geometric=True)
    assert ours.cost == pytest.approx(theirs, rel=1e-12)


def test_ridge_dem_crop_optimum_equals_scikit_image():
    _, costs = _ridge_costs(((600, 850), (700, 950)))
    w = costs.cost * costs.step_m
    free = np.argwhere(np.isfinite(w))
    _compare_with_skimage(w, tuple(free[0]), tuple(free[-1]))


@pytest.mark.slow
def test_ridge_dem_corner_to_corner_equals_scikit_image():
    _, costs = _ridge_costs()
    _compare_with_skimage(costs.cost, (0, 0), (1599, 1599))  # the benchmark's grid and ends


def test_route_to_the_nearest_psr_rim(make_dem):
    dem = make_dem(np.zeros((60, 80)))
    psr = np.zeros((60, 80), bool)
    psr[30:40, 50:70] = True  # a shadowed patch; its rim is where to prospect
    costs = cost_map(dem, craters=False, psr=psr, psr_mode="target")
    route = plan_route(costs, _lat_lon(dem, (5, 5)), None)
    assert route.feasible and costs.psr_edge()[route.rows[-1], route.cols[-1]]
    assert (route.rows[-1], route.cols[-1]) == (29, 49)  # the rim pixel nearest the start
    hazard = cost_map(dem, craters=False, psr=psr)
    inside = plan_route(hazard, _lat_lon(dem, (5, 5)), _lat_lon(dem, (35, 60)))
    assert not inside.feasible and "permanently shadowed" in inside.reason and "--psr-mode target" in inside.reason
