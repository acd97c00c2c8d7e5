"""Link budget against the link equation in linear units, the engineering path-loss formula and
published station figures of merit."""

import numpy as np
import pytest

from qamar.comms import link
from qamar.comms.stations import STATIONS

BOLTZMANN_J_K = 1.380649e-23  # exact SI (2019 redefinition)
C_M_S = 299_792_458.0


def test_free_space_loss_engineering_formula():
    """The engineering form L = 92.45 + 20 log10(d / km) + 20 log10(f / GHz) dB (92.45 rounded)."""
    for d_km, f_hz in ((384_400.0, 8.4e9), (1000.0, 2.2e9), (4.0e5, 32e9)):
        expected = 92.45 + 20 * np.log10(d_km) + 20 * np.log10(f_hz / 1e9)
        assert link.free_space_loss_db(d_km, f_hz) == pytest.approx(expected, abs=0.01)


def test_ebn0_is_the_link_equation_in_linear_units():
    """Pr = Pt Gt Gr (lambda / 4 pi d)^2 / losses;  Eb/N0 = Pr / (k T R)  (Friis)."""
    radio = link.Radio(tx_power_w=4.0, tx_gain_dbi=3.0, tx_losses_db=2.0, path_losses_db=1.0)
    station = STATIONS["new norcia"]
    d_m, rate = 380_000e3, 2000.0
    wavelength_m = C_M_S / radio.frequency_hz
    gr = station.aperture_efficiency * (np.pi * station.dish_m / wavelength_m) ** 2
    losses = 10 ** ((radio.tx_losses_db + radio.path_losses_db) / 10)
    pr_w = radio.tx_power_w * 10 ** (radio.tx_gain_dbi / 10) * gr * (wavelength_m / (4 * np.pi * d_m)) ** 2 / losses
    ebn0 = pr_w / (BOLTZMANN_J_K * station.system_noise_k * rate)
    assert link.ebn0_db(d_m / 1e3, rate, radio, station) == pytest.approx(10 * np.log10(ebn0), abs=1e-9)
    assert link.BOLTZMANN_DBW_K_HZ == pytest.approx(-228.599, abs=1e-3)
    assert radio.eirp_dbw == pytest.approx(10 * np.log10(4.0) + 1.0, abs=1e-12)


def test_station_g_over_t_lands_on_published_values():
    """35 m X-band: ESA DSA about 50 dB/K, DSN 34 m BWG about 53 dB/K (DSN 810-005 module 104)."""
    g_t = {name: link.g_over_t_db_k(s, 8.4e9) for name, s in STATIONS.items()}
    for name in ("kashgar", "neuquen", "new norcia", "cebreros", "malargue"):
        assert 50.0 <= g_t[name] <= 53.0
    assert g_t["jiamusi"] == pytest.approx(g_t["cebreros"] + 20 * np.log10(66 / 35), abs=1e-9)  # same eta, T
    # Dish gain: 35 m at 8.4 GHz with eta 0.6 is 67.6 dBi (DSN 34 m BWG: ~68 dBi at eta ~0.7).
    assert link.dish_gain_dbi(35.0, 0.6, 8.4e9) == pytest.approx(67.56, abs=0.01)


def test_highest_rate_with_margin():
    station = STATIONS["cebreros"]
    ladder = link.Radio(rates_bps=tuple(1000.0 * 2.0**k for k in range(12)))
    range_km = 400_000.0
    best = link.max_rate_bps(range_km, ladder, station)
    assert best in ladder.rates_bps
    assert link.margin_db(range_km, best, ladder, station) >= ladder.margin_db
    if best < ladder.rates_bps[-1]:
        assert link.margin_db(range_km, 2 * best, ladder, station) < ladder.margin_db
    # An unreachable demand gives zero, not a rate without margin.
    weak = ladder.model_copy(update={"tx_power_w": 1e-9})
    assert link.max_rate_bps(range_km, weak, station) == 0.0
    assert np.all(link.max_rate_bps(np.array([3.6e5, 4.0e5]), ladder, station) >= best)


def test_rates_are_validated():
    with pytest.raises(ValueError, match="positive data rate"):
        link.Radio(rates_bps=())
    assert link.Radio(rates_bps=(4000.0, 1000.0)).rates_bps == (1000.0, 4000.0)


def test_budget_table_rows():
    rows = dict(link.budget_table(384_400.0, link.Radio(), STATIONS["karachi"]))
    assert rows["EIRP"] == "7.02 dBW" and rows["Free-space loss"].startswith("222.6")
    assert "Margin" in rows and "Station G/T (Karachi, 12 m)" in rows
