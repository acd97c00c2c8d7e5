"""``qamar ops``: operate the rover from Earth: the ground service, the rover twin, commands, rehearsals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from qamar.cli.common import sub_app, user_errors

ops_app = sub_app("Rover operations: ground service, live rover twin, commands and rehearsals (docs/ops.md).")


@ops_app.command("ground")
@user_errors
def ops_ground(
    db: Annotated[str, typer.Option(help="archive database URL: sqlite:///ops.db or postgresql://...")] = "sqlite:///ops.db",
    http: Annotated[str, typer.Option(help="HOST:PORT of the web console and command API")] = "127.0.0.1:8080",
    tcp: Annotated[str, typer.Option(help="HOST:PORT where the rover twin connects")] = "127.0.0.1:10025",
    site_dem: Annotated[str | None, typer.Option(help="site DEM (data key or GeoTIFF) for the console's map")] = None,
) -> None:
    """Run the ground service until Ctrl-C (key from QAMAR_OPS_KEY_FILE or QAMAR_OPS_KEY)."""
    from qamar.ops.server import serve_ground

    serve_ground(db, http=http, tcp=tcp, site_dem=site_dem)


@ops_app.command("twin")
@user_errors
def ops_twin(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML with a rover block")],
    ground: Annotated[str, typer.Option(help="HOST:PORT of the ground's twin socket")] = "127.0.0.1:10025",
    link_delay_s: Annotated[float, typer.Option(help="one-way Earth-lander delay (s) when --no-windows")] = 1.28,
    loss: Annotated[float, typer.Option(help="probability that a packet is lost on the Earth hop")] = 0.01,
    windows: Annotated[bool, typer.Option("--windows/--no-windows",
                                          help="Earth-lander windows and light time from the geometry")] = False,
    speed: Annotated[float, typer.Option(help="simulated seconds per wall-clock second")] = 1.0,
    start_utc: Annotated[str | None, typer.Option("--start", help="UTC of the twin's clock at start (default: now)")]
    = None,
    hours: Annotated[float, typer.Option(help="simulated hours of light to compute ahead")] = 72.0,
    state: Annotated[Path, typer.Option(help="file keeping the last accepted anti-replay number")]
    = Path("twin-state.json"),
    seed: Annotated[int, typer.Option(help="seed of the link's loss draws")] = 0,
) -> None:
    """Run the rover twin of a scenario in real time against a running ground (`qamar ops ground`)."""
    from qamar.ops.link import Hop, earth_lander_hop, lander_rover_hop
    from qamar.ops.rehearsal import load_site
    from qamar.ops.server import load_key, parse_address, wall_clock_tai_s
    from qamar.ops.twin import RoverTwin, run_live
    from qamar.time import tai_s_to_utc, utc_to_tai_s

    key = load_key()
    address = parse_address(ground, "ground address")
    start_tai_s = float(utc_to_tai_s(start_utc)) if start_utc else wall_clock_tai_s()
    utc = tai_s_to_utc(start_tai_s)
    site = load_site(scenario, start_utc=utc, hours=hours)
    if windows and site.lander_site is not None:
        earth = earth_lander_hop(site.stations, site.lander_site, start_tai_s, start_tai_s + hours * 3600.0,
                                 loss_probability=loss)
    else:
        earth = Hop("earth-lander", link_delay_s, loss_probability=loss)

    def make_twin(clock, downlink):
        return RoverTwin(clock, downlink, site.costs, site.rover, site.light, site.start_lat_lon, key, state_path=state)

    typer.echo(f"rover twin at {site.start_lat_lon[0]:.5f}, {site.start_lat_lon[1]:.5f} from {utc}, "
               f"x{speed:g} real time, connecting to {ground} (Ctrl-C stops)")
    try:
        twin = run_live(make_twin, address, start_tai_s, earth_hop=earth, rover_hop=lander_rover_hop(), speed=speed,
                        seed=seed)
    except KeyboardInterrupt:
        return
    c = twin.counts
    typer.echo(f"twin stopped: {c.accepted} commands accepted, {c.refused_total} refused, {c.emitted} packets sent")


@ops_app.command("send")
@user_errors
def ops_send(
    line: Annotated[str, typer.Argument(help="command line, e.g. 'DRIVE_TO lat=-89.45 lon=222.7'")],
    at: Annotated[str | None, typer.Option(help="UTC release time (default: now)")] = None,
    http: Annotated[str, typer.Option(help="HOST:PORT of the ground service")] = "127.0.0.1:8080",
) -> None:
    """Queue one command on the running ground service; prints the queued record."""
    from qamar.ops.server import post_command

    typer.echo(json.dumps(post_command(line, at_utc=at, http=http), indent=1))


@ops_app.command("rehearse")
@user_errors
def ops_rehearse(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML with a rover block")],
    out: Annotated[Path, typer.Option(help="folder for summary.json, report.html, the archive ops.db...")],
    loss: Annotated[float, typer.Option(help="probability that a packet is lost on the Earth hop")] = 0.01,
    max_hours: Annotated[float | None, typer.Option(help="simulated hours at most (default: 72 h, or the "
                                                          "plan's arrival within the traverse's days)")] = None,
    light_factor: Annotated[int | None, typer.Option(help="light and plan on blocks of this many DEM pixels "
                                                          "(default: the scenario's site.map_factor)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the link's loss draws")] = 0,
    attacks: Annotated[bool, typer.Option("--attacks/--no-attacks",
                                          help="inject a replayed and a forged telecommand")] = True,
    static: Annotated[bool, typer.Option("--static", help="drive the static route, not the spatiotemporal plan")]
    = False,
    margin_px: Annotated[int, typer.Option(help="site DEM pixels kept around the traverse and the lander")] = 150,
) -> None:
    """Rehearse the scenario's traverse: twin, link and ground together; an archive and a report."""
    from qamar.ops.rehearsal import RehearsalConfig, rehearse_scenario

    config = RehearsalConfig(seed=seed, attacks=attacks)
    s = rehearse_scenario(scenario, out, hours=max_hours, loss_probability=loss, config=config,
                          light_factor=light_factor, spatiotemporal=not static, margin_px=margin_px)
    typer.echo(f"rehearsal {s['start_utc']} -> {s['end_utc']} ({s['simulated_h']} h simulated in {s['wall_s']} s): "
               f"{s['commands_sent']} commands sent, {s['commands_completed']} completed, "
               f"{s['commands_refused']} refused, {s['commands_failed']} failed; {s['packets_received']} packets "
               f"received, {s['packets_lost']} lost; {s['odometer_m']} m driven of {s['route_planned_m']} m planned")
    typer.echo(f"archive {s['archive']}; report {out / 'report.html'}")
