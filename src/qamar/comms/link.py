"""Downlink budget: EIRP, free-space loss, G/T, C/N0, Eb/N0, margin, data rate and volume.

All in decibels (dBW, dBi, dB, dB/K, dB-Hz) following the standard budget (e.g. Wertz &
Larson, *Space Mission Analysis and Design*, 3rd ed., sec. 13.3)::

    C/N0  = EIRP - L_fs - L_path + G/T - 10 log10(k)            [dB-Hz]
    Eb/N0 = C/N0 - 10 log10(R)                                    [dB]
    margin = Eb/N0 - (Eb/N0)_required                             [dB]

with ``EIRP = 10 log10(P_tx) + G_tx - L_tx``, ``L_fs = 20 log10(4 pi d / lambda)``, a dish gain
``G = 10 log10(eta (pi D / lambda)^2)`` and ``G/T = G - 10 log10(T_sys)``. Boltzmann's constant
is the exact SI value (``scipy.constants.k``, 10 log10 k = -228.60 dBW/K/Hz).

A :class:`Radio` (the spacecraft transmitter and the coding) is a pydantic model, so it is
also the ``comms.radio`` block of a scenario. Its defaults are the iCube-Q assumptions:
X-band 8.4 GHz and 4 W RF (typical deep-space CubeSat radio, mission-brief.md sec. 4), a
fixed 1 kbit/s (the published iCube-Q image downlink rate), a 3 dBi low-gain antenna with 2 dB
of line and pointing losses, 1 dB of atmospheric and polarisation loss at low elevation, and
concatenated Reed-Solomon (255,223) + convolutional (7, 1/2) coding, which reaches a bit error
rate of 1e-6 near Eb/N0 = 2.5 dB (CCSDS 130.1-G, *TM Synchronization and Channel Coding -
Summary of Concept and Rationale*), with a 3 dB margin required. None of these is published for iCube-Q.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.constants import k as BOLTZMANN_J_K

from qamar.comms.stations import Station
from qamar.constants import SPEED_OF_LIGHT_KM_S

if TYPE_CHECKING:
    from qamar.comms.visibility import Pass

BOLTZMANN_DBW_K_HZ = 10.0 * np.log10(BOLTZMANN_J_K)
"""10 log10 of Boltzmann's constant (exact SI 1.380649e-23 J/K): -228.60 dBW/(K Hz)."""


class Radio(BaseModel):
    """Spacecraft downlink: transmitter, antenna, losses, coding and selectable data rates.

    ``rates_bps`` are the rates the radio can switch between; the link uses the highest one
    whose margin is at least ``margin_db`` (one rate: a fixed-rate link).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    frequency_hz: float = Field(default=8.4e9, gt=0.0)
    tx_power_w: float = Field(default=4.0, gt=0.0)
    tx_gain_dbi: float = 3.0
    tx_losses_db: float = Field(default=2.0, ge=0.0, description="line and pointing losses on board")
    path_losses_db: float = Field(default=1.0, ge=0.0, description="atmosphere and polarisation")
    required_ebn0_db: float = Field(default=2.5, description="Eb/N0 the coding needs for the target bit error rate")
    margin_db: float = Field(default=3.0, ge=0.0, description="margin demanded above the required Eb/N0")
    rates_bps: tuple[float, ...] = (1000.0,)

    @field_validator("rates_bps")
    @classmethod
    def _positive_sorted(cls, rates: tuple[float, ...]) -> tuple[float, ...]:
        if not rates or any(not r > 0 for r in rates):
            raise ValueError("rates_bps must list at least one positive data rate in bit/s")
        return tuple(sorted(rates))

    @property
    def wavelength_km(self) -> float:
        """Carrier wavelength, km."""
        return SPEED_OF_LIGHT_KM_S / self.frequency_hz

    @property
    def eirp_dbw(self) -> float:
        """Equivalent isotropic radiated power, dBW: P_tx + G_tx - on-board losses."""
        return 10.0 * np.log10(self.tx_power_w) + self.tx_gain_dbi - self.tx_losses_db


def free_space_loss_db(range_km: float | np.ndarray, frequency_hz: float) -> float | np.ndarray:
    """Free-space path loss 20 log10(4 pi d / lambda), dB, at range ``range_km``."""
    return 20.0 * np.log10(4.0 * np.pi * np.asarray(range_km, dtype=float) * frequency_hz / SPEED_OF_LIGHT_KM_S)


def dish_gain_dbi(dish_m: float, aperture_efficiency: float, frequency_hz: float) -> float:
    """Peak gain of a parabolic dish, dBi: 10 log10(eta (pi D / lambda)^2)."""
    wavelength_m = SPEED_OF_LIGHT_KM_S * 1000.0 / frequency_hz
    return float(10.0 * np.log10(aperture_efficiency * (np.pi * dish_m / wavelength_m) ** 2))


def g_over_t_db_k(station: Station, frequency_hz: float) -> float:
    """Station figure of merit G/T, dB/K, from its dish, efficiency and system noise temperature."""
    gain = dish_gain_dbi(station.dish_m, station.aperture_efficiency, frequency_hz)
    return gain - 10.0 * np.log10(station.system_noise_k)


def cn0_db_hz(range_km: float | np.ndarray, radio: Radio, station: Station) -> float | np.ndarray:
    """Received carrier-to-noise-density ratio C/N0, dB-Hz, at range ``range_km``."""
    return (
        radio.eirp_dbw
        - free_space_loss_db(range_km, radio.frequency_hz)
        - radio.path_losses_db
        + g_over_t_db_k(station, radio.frequency_hz)
        - BOLTZMANN_DBW_K_HZ
    )


def ebn0_db(range_km: float | np.ndarray, rate_bps: float, radio: Radio, station: Station) -> float | np.ndarray:
    """Energy per bit over noise density Eb/N0, dB, at ``rate_bps`` and range ``range_km``."""
    return cn0_db_hz(range_km, radio, station) - 10.0 * np.log10(rate_bps)


def margin_db(range_km: float | np.ndarray, rate_bps: float, radio: Radio, station: Station) -> float | np.ndarray:
    """Eb/N0 minus the coding's required Eb/N0, dB (compare with ``radio.margin_db``)."""
    return ebn0_db(range_km, rate_bps, radio, station) - radio.required_ebn0_db


def max_rate_bps(range_km: float | np.ndarray, radio: Radio, station: Station) -> float | np.ndarray:
    """Highest rate of ``radio.rates_bps`` whose margin is at least ``radio.margin_db``; 0 if none.

    The continuous limit is ``10^((C/N0 - required Eb/N0 - margin) / 10)`` bit/s; the radio
    picks the highest listed rate below it.
    """
    limit_bps = 10.0 ** ((cn0_db_hz(range_km, radio, station) - radio.required_ebn0_db - radio.margin_db) / 10.0)
    rates = np.asarray(radio.rates_bps)
    index = np.searchsorted(rates, limit_bps * (1.0 + 1e-12), side="right") - 1
    out = np.where(index >= 0, rates[np.maximum(index, 0)], 0.0)
    return float(out) if np.ndim(out) == 0 else out


def rate_profile_bps(t_tdb_s: np.ndarray, range_km: np.ndarray, radio: Radio, station: Station) -> np.ndarray:
    """Data rate (bit/s) held over each interval ``[t_i, t_i+1)`` of a sampled pass: (n - 1,).

    The rate of an interval is the one the worse (longer-range) end supports, so the link keeps
    its margin throughout.
    """
    worst_km = np.maximum(range_km[:-1], range_km[1:])
    return np.asarray(max_rate_bps(worst_km, radio, station), dtype=float).reshape(len(t_tdb_s) - 1)


def pass_volume_bits(pass_: Pass, radio: Radio, setup_s: float = 0.0) -> float:
    """Bits a :class:`~qamar.comms.visibility.Pass` can carry: the rate profile integrated over time.

    ``setup_s`` of each pass (carrier acquisition, lock) carries nothing.
    """
    t = np.asarray(pass_.t_tdb_s, dtype=float)
    rates = rate_profile_bps(t, pass_.range_km, radio, pass_.station)
    start = t[0] + setup_s
    useful = np.clip(np.minimum(t[1:], pass_.los_tdb_s) - np.maximum(t[:-1], start), 0.0, None)
    return float(np.sum(rates * useful))


def budget_table(range_km: float, radio: Radio, station: Station, rate_bps: float | None = None) -> list[tuple[str, str]]:
    """The link budget at one range as (line, value) rows for a report; ``rate_bps`` defaults to the highest listed."""
    rate = radio.rates_bps[-1] if rate_bps is None else rate_bps
    fs = float(free_space_loss_db(range_km, radio.frequency_hz))
    gt = g_over_t_db_k(station, radio.frequency_hz)
    cn0 = float(cn0_db_hz(range_km, radio, station))
    ebn0 = cn0 - 10.0 * np.log10(rate)
    best = max_rate_bps(range_km, radio, station)
    return [
        ("Frequency", f"{radio.frequency_hz / 1e9:.3f} GHz"),
        ("Transmit power", f"{radio.tx_power_w:g} W ({10 * np.log10(radio.tx_power_w):.2f} dBW)"),
        ("Antenna gain - on-board losses", f"{radio.tx_gain_dbi:.2f} - {radio.tx_losses_db:.2f} dB"),
        ("EIRP", f"{radio.eirp_dbw:.2f} dBW"),
        ("Range", f"{range_km:,.0f} km"),
        ("Free-space loss", f"{fs:.2f} dB"),
        ("Atmosphere and polarisation", f"{radio.path_losses_db:.2f} dB"),
        (f"Station G/T ({station.name}, {station.dish_m:g} m)", f"{gt:.2f} dB/K"),
        ("Boltzmann constant", f"{BOLTZMANN_DBW_K_HZ:.2f} dBW/K/Hz"),
        ("C/N0", f"{cn0:.2f} dB-Hz"),
        ("Data rate", f"{rate:g} bit/s ({10 * np.log10(rate):.2f} dB-Hz)"),
        ("Eb/N0", f"{ebn0:.2f} dB"),
        ("Required Eb/N0 (coding)", f"{radio.required_ebn0_db:.2f} dB"),
        ("Margin", f"{ebn0 - radio.required_ebn0_db:.2f} dB (required {radio.margin_db:.2f} dB)"),
        ("Highest listed rate with margin", f"{best:g} bit/s"),
    ]
