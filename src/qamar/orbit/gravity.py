"""Spherical-harmonic gravity fields: file readers and a compiled, pole-stable evaluation.

Two formats are read, up to the degree asked for (files are ordered by degree, so reading
stops early):

- PDS SHADR ``.tab`` (GRAIL GRGM1200A, Lemoine et al. 2014, doi:10.1002/2014GL060027): a
  comma-separated header ``R_km, GM_km3_s2, sigma_GM, degree, order, normalisation, ref_lon,
  ref_lat`` and rows ``n, m, C, S, sigma_C, sigma_S``.
- GMAT ``.cof`` (Lunar Prospector LP165P, Konopliv et al. 2001, Icarus 150, 1-18): fixed
  columns, ``POTFIELD`` with GM in m^3/s^2 and R in m, ``RECOEF n m C [S]``.

Coefficients are fully normalised (geodesy 4-pi normalisation, C00 = 1).

Evaluation (:func:`gravity_accel_pa`) follows Pines (1973, AIAA J. 11, 1508): the potential
is differentiated in r and in the direction cosines (s, t, u) = (x, y, z)/r, with fully
normalised "derived" Legendre functions A_nm = P_nm(u) / cos(lat)^m and longitude factors
Re/Im (s + i t)^m = cos(lat)^m (cos, sin)(m lon). Nothing divides by cos(lat), so the
evaluation is regular at the poles. The A_nm are built by the recursion in order m (downwards
from the sectoral A_nn, for all degrees n at once) that Holmes & Featherstone (2002, J. Geodesy
76, 279) give for P_nm / cos(lat)^m; it uses u and cos(lat)^2 = s^2 + t^2 directly. (The
recursion in degree n instead depends on 1 - u, which rounding in u = z/r blurs near a pole:
its error grows as n^2 eps there, 5e-13 relative at degree 200 within 1e-5 rad of a pole.) A
call uses O(N) scratch memory of its own, so the kernels are safe to call from parallel
threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from qamar import data
from qamar.errors import DataFormatError, DataNotFoundError, ModelConfigError

# Registered fields: data key -> (name, body-fixed frame of the coefficients).
KNOWN_FIELDS: dict[str, tuple[str, str]] = {
    # GRGM1200A label: "The planetary ephemeris used is de430 and defines the lunar body-fixed
    # coordinate system", i.e. the DE430 principal-axis frame.
    "grgm1200a": ("GRGM1200A", "MOON_PA (DE430)"),
    # LP165P is referred to the Lunar Prospector solution's own principal axes (LP PA),
    # Konopliv et al. (2001), Icarus 150, 1-18.
    "lp165p": ("LP165P", "Lunar Prospector principal axes (LP PA, Konopliv et al. 2001)"),
}


@dataclass(frozen=True, eq=False)
class GravityField:
    """A fully normalised spherical-harmonic gravity field, loaded to ``max_degree``.

    ``c_nm[n, m]`` and ``s_nm[n, m]`` (shape ``(max_degree + 1, max_degree + 1)``, read-only,
    ``c_nm[0, 0] = 1``) are in the body-fixed frame named by ``frame``; ``gm_km3_s2`` and
    ``ref_radius_km`` come from the file's header; ``source`` is the file it was read from.
    """

    name: str
    gm_km3_s2: float
    ref_radius_km: float
    max_degree: int
    c_nm: np.ndarray
    s_nm: np.ndarray
    frame: str
    source: str

    def kernel_data(self, degree: int) -> tuple:
        """The arrays :func:`gravity_accel_pa` needs to evaluate this field to ``degree``.

        A plain tuple (private layout): pass it unchanged to the compiled kernels. Raises
        ModelConfigError if ``degree`` is negative or above ``max_degree``.
        """
        degree = _check_degree(degree, self.max_degree, f"{self.name} was loaded only to degree {self.max_degree}")
        n, m = _column_packed_indices(degree)
        nf, mf = n.astype(np.float64), m.astype(np.float64)
        # Normalisation ratio (2 - delta_m0) / (2 - delta_(m+k),0), k = 1, 2: 1/2 for m = 0.
        half_at_0 = np.where(m == 0, 0.5, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A_nm = g_nm u A_n,m+1 - h_nm cos(lat)^2 A_n,m+2, from the Legendre equation
            # differentiated m times: (1-u^2) D^(m+2) - 2(m+1) u D^(m+1) + (n-m)(n+m+1) D^m = 0.
            g = 2 * (mf + 1) * np.sqrt(half_at_0 / ((nf - mf) * (nf + mf + 1)))
            h = np.sqrt(half_at_0 * (nf - mf - 1) * (nf + mf + 2) / ((nf - mf) * (nf + mf + 1)))
        g[n == m] = 0.0
        h[n <= m + 1] = 0.0
        # dA_nm/du = e_nm A_n,m+1: e_n0 = sqrt(n(n+1)/2), e_nm = sqrt((n-m)(n+m+1)), e_nn = 0.
        e = np.sqrt((nf - mf) * (nf + mf + 1) * half_at_0)
        # Sectoral seeds: A_00 = 1, A_11 = sqrt(3), A_nn = sqrt((2n+1)/(2n)) A_n-1,n-1.
        steps = np.sqrt((2 * np.arange(1, degree + 1) + 1) / (2 * np.arange(1, degree + 1)))
        steps[:1] = np.sqrt(3.0)
        sectoral = np.concatenate(([1.0], np.cumprod(steps)))
        c = np.ascontiguousarray(self.c_nm[n, m])
        s = np.ascontiguousarray(self.s_nm[n, m])
        return (degree, float(self.gm_km3_s2), float(self.ref_radius_km), c, s, g, h, e, sectoral)


def load_field(model: str | os.PathLike, degree: int) -> GravityField:
    """Load a gravity field to ``degree`` (0 gives a point mass with the file's GM).

    ``model`` is a registered name ("grgm1200a", "lp165p", resolved through
    :func:`qamar.data.path`) or the path of a PDS SHADR ``.tab`` or GMAT ``.cof`` file.
    Raises ModelConfigError for an unknown model or a degree above the file's,
    DataNotFoundError if the file cannot be found, DataFormatError (naming file and line) if
    it cannot be parsed.
    """
    if isinstance(model, str) and model.lower() in KNOWN_FIELDS:
        key = model.lower()
        name, frame = KNOWN_FIELDS[key]
        path = data.path(key)
    elif isinstance(model, os.PathLike) or Path(str(model)).suffix.lower() in (".tab", ".cof"):
        path = Path(model)
        name, frame = path.stem.upper(), f"body-fixed frame defined by {path.name}"
        if not path.is_file():
            raise DataNotFoundError(f"gravity file {path} does not exist: give the path of a .tab or .cof file.")
    else:
        known = ", ".join(sorted(KNOWN_FIELDS))
        raise ModelConfigError(
            f"unknown gravity model {model!r}: use one of {known}, or the path of a PDS SHADR .tab or GMAT .cof file."
        )
    suffix = path.suffix.lower()
    if suffix == ".tab":
        gm, radius, c_nm, s_nm = _read_shadr(path, degree)
    elif suffix == ".cof":
        gm, radius, c_nm, s_nm = _read_cof(path, degree)
    else:
        raise ModelConfigError(
            f"gravity file {path} is neither a PDS SHADR .tab nor a GMAT .cof file: rename or convert it."
        )
    c_nm[0, 0] = 1.0
    c_nm.flags.writeable = False
    s_nm.flags.writeable = False
    return GravityField(name, gm, radius, degree, c_nm, s_nm, frame, str(path))


def acceleration_pa_km_s2(field: GravityField, r_pa_km: np.ndarray, degree: int) -> np.ndarray:
    """Total gravitational acceleration (km/s^2) at positions ``r_pa_km`` (shape (n, 3) or (3,)).

    Positions and accelerations are in the body-fixed frame of ``field`` (``field.frame``).
    Raises ModelConfigError if ``degree`` is above the loaded degree.
    """
    r = np.ascontiguousarray(r_pa_km, dtype=np.float64)
    out = _accel_many(r.reshape(-1, 3), field.kernel_data(degree))
    return out.reshape(r.shape)


@njit(cache=True, fastmath=False, nogil=True)
def gravity_accel_pa(r_pa_km, kdata):
    """Total acceleration (central + non-spherical), km/s^2, body-fixed PA frame of the field.

    ``r_pa_km``: position (3,) in km in that frame; ``kdata``: ``GravityField.kernel_data``.
    """
    x, y, z = r_pa_km[0], r_pa_km[1], r_pa_km[2]
    r = np.sqrt(x * x + y * y + z * z)
    g0 = -kdata[1] / (r * r * r)
    acc = nonspherical_accel_pa(r_pa_km, kdata)
    acc[0] += g0 * x
    acc[1] += g0 * y
    acc[2] += g0 * z
    return acc


# Degrees n with (R/r)^n below this are skipped. Every normalised term obeys
# |P_nm| <= sqrt(2(2n+1)) and |C_nm|, |S_nm| < 1e-3 for the Moon, so what is skipped is below
# 1e-18 of the central acceleration for any degree up to 1200; it only ever applies far from
# the Moon (R/r < 0.953), e.g. past degree 32 at the 8600 km apoapsis of iCube-Q.
_RHO_N_CUTOFF = 1e-25


@njit(cache=True, fastmath=False, nogil=True)
def nonspherical_accel_pa(r_pa_km, kdata):
    """Acceleration of the degree >= 1 terms only (no central term), km/s^2, PA frame of the field.

    This is what Orekit's ``HolmesFeatherstoneAttractionModel`` returns; the force model uses
    :func:`gravity_accel_pa`. ``kdata``: ``GravityField.kernel_data``.
    """
    nmax, gm, ref_r, c, s, g, h, e, sectoral = kdata
    x, y, z = r_pa_km[0], r_pa_km[1], r_pa_km[2]
    r = np.sqrt(x * x + y * y + z * z)
    sx, sy, sz = x / r, y / r, z / r
    cos2_lat = sx * sx + sy * sy
    rho = ref_r / r
    top = nmax
    rho_n = 1.0
    for n in range(1, nmax + 1):
        rho_n *= rho
        if rho_n < _RHO_N_CUTOFF:
            top = n - 1
            break
    # Rows 0-2: A_nm of the last three orders (cycled), indexed by n. Rows 3-6: per degree n,
    # sums over m of the terms of the r, u, s and t partials. Rows 7-8: Re/Im (s + i t)^m.
    work = np.zeros((9, top + 2))
    acc_r, acc_u, acc_s, acc_t, re, im = work[3], work[4], work[5], work[6], work[7], work[8]
    re[0] = 1.0
    for m in range(1, top + 1):
        re[m] = re[m - 1] * sx - im[m - 1] * sy
        im[m] = re[m - 1] * sy + im[m - 1] * sx
    # Loops run over views with 0-based indices so that LLVM can vectorise them.
    for m in range(top, -1, -1):
        p, p1, p2 = work[m % 3], work[(m + 1) % 3], work[(m + 2) % 3]
        col = m * (nmax + 1) - m * (m - 1) // 2  # index of (n=m, m) in the packed tables
        p[m] = sectoral[m]
        count = top - m
        g_m, h_m = g[col + 1 : col + 1 + count], h[col + 1 : col + 1 + count]
        p_m, p1_m, p2_m = p[m + 1 : top + 1], p1[m + 1 : top + 1], p2[m + 1 : top + 1]
        for k in range(count):
            p_m[k] = g_m[k] * sz * p1_m[k] - h_m[k] * cos2_lat * p2_m[k]
        n0 = max(m, 1)  # the central term (n = 0) is not included
        count = top + 1 - n0
        first = col + n0 - m
        c_m, s_m, e_m = c[first : first + count], s[first : first + count], e[first : first + count]
        pa, p1a = p[n0 : top + 1], p1[n0 : top + 1]
        ra, ua, sa, ta = acc_r[n0 : top + 1], acc_u[n0 : top + 1], acc_s[n0 : top + 1], acc_t[n0 : top + 1]
        re_m, im_m = re[m], im[m]
        for k in range(count):
            d = c_m[k] * re_m + s_m[k] * im_m
            ra[k] += pa[k] * d
            ua[k] += e_m[k] * p1a[k] * d
        if m > 0:
            # d/ds, d/dt of (s + i t)^m = m (1, i) (s + i t)^(m-1)
            mre, mim = m * re[m - 1], m * im[m - 1]
            for k in range(count):
                sa[k] += pa[k] * (c_m[k] * mre + s_m[k] * mim)
                ta[k] += pa[k] * (s_m[k] * mre - c_m[k] * mim)
    # Partials of U r / GM: d/dr gives -(n+1) (R/r)^n / r per term, d/d(s,t,u) (R/r)^n.
    sum_r = 0.0
    sum_s = 0.0
    sum_t = 0.0
    sum_u = 0.0
    rho_n = 1.0
    for n in range(1, top + 1):
        rho_n *= rho
        sum_r += (n + 1) * rho_n * acc_r[n]
        sum_u += rho_n * acc_u[n]
        sum_s += rho_n * acc_s[n]
        sum_t += rho_n * acc_t[n]
    # grad U = (1/r) dU/d(s,t,u) + (dU/dr - (1/r) (s,t,u).dU/d(s,t,u)) (s,t,u), with the
    # projection off the radial direction written out (1 - s^2 = t^2 + u^2, ...): near a pole
    # dU/du is large and 1 - u^2 tiny, and forming (dU/du) (1 - u^2) by subtraction would
    # lose digits.
    scale = gm / (r * r)
    out = np.empty(3)
    out[0] = scale * (sum_s * (sy * sy + sz * sz) - sx * (sum_t * sy + sum_u * sz + sum_r))
    out[1] = scale * (sum_t * (sx * sx + sz * sz) - sy * (sum_s * sx + sum_u * sz + sum_r))
    out[2] = scale * (sum_u * cos2_lat - sz * (sum_s * sx + sum_t * sy + sum_r))
    return out


@njit(cache=True, fastmath=False, nogil=True)
def _accel_many(r_pa_km, kdata):
    out = np.empty_like(r_pa_km)
    for i in range(r_pa_km.shape[0]):
        out[i] = gravity_accel_pa(r_pa_km[i], kdata)
    return out


def _column_packed_indices(degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Degree and order of each entry of the column-packed triangle: order m holds n = m..N,
    starting at m(N+1) - m(m-1)/2."""
    m = np.repeat(np.arange(degree + 1), degree + 1 - np.arange(degree + 1))
    start = m * (degree + 1) - m * (m - 1) // 2
    return np.arange(m.size) - start + m, m


def _check_degree(degree: int, max_degree: int, why: str) -> int:
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
        raise ModelConfigError(f"gravity degree must be a whole number >= 0, not {degree!r}.")
    if degree > max_degree:
        raise ModelConfigError(f"gravity degree {degree} is too high: {why}; ask for {max_degree} or less.")
    return int(degree)


class _Lines:
    """Numbered lines of a text file, for parsers that must name the line they fail on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.number = 0
        self._stream = open(path, encoding="ascii", errors="replace")

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()

    def __iter__(self):
        for self.number, line in enumerate(self._stream, start=1):
            yield line.rstrip("\r\n")

    def error(self, what: str) -> DataFormatError:
        return DataFormatError(
            f"{self.path}, line {self.number}: {what}; the file is not a valid gravity field, "
            "replace it with the original."
        )


def _new_arrays(degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zeroed C and S (degree+1 square) and a mask of the (n, m) rows seen so far."""
    c = np.zeros((degree + 1, degree + 1))
    s = np.zeros((degree + 1, degree + 1))
    seen = np.zeros((degree + 1, degree + 1), dtype=bool)
    seen[0, 0] = True
    return c, s, seen


def _store(lines: _Lines, c, s, seen, n: int, m: int, cnm: float, snm: float, file_degree: int) -> None:
    if not 0 <= m <= n <= file_degree:
        raise lines.error(f"degree {n} / order {m} is outside the field's {file_degree} x {file_degree}")
    if seen[n, m]:
        raise lines.error(f"coefficient ({n}, {m}) appears twice")
    c[n, m], s[n, m], seen[n, m] = cnm, snm, True


def _check_complete(lines: _Lines, seen: np.ndarray) -> None:
    """Every (n, m) with n >= 2 must be present (degree 1 may be omitted: it is zero in the
    centre-of-mass frame of both formats)."""
    missing = np.argwhere(~seen[2:] & np.tri(*seen.shape, dtype=bool)[2:])
    if missing.size:
        n, m = missing[0]
        raise lines.error(f"coefficient ({n + 2}, {m}) is missing")


def _read_shadr(path: Path, degree: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """GM (km^3/s^2), reference radius (km), C and S from a PDS SHADR ``.tab`` file."""
    with _Lines(path) as lines:
        numbered = iter(lines)
        header = next(numbered, "").split(",")
        try:
            # GRGM1200A: the header GM (4902.8001224453) differs from the label's
            # (4902.80011526323); the coefficients were estimated with the header value, so
            # qamar uses the header, as for every SHADR file.
            radius_km, gm_km3_s2 = float(header[0]), float(header[1])
            file_degree, norm_state = int(header[3]), int(header[5])
        except (ValueError, IndexError):
            raise lines.error("SHADR header must read R_km, GM, sigma_GM, degree, order, normalisation, ...") from None
        if norm_state != 1:
            raise lines.error(f"normalisation state {norm_state}: qamar reads fully normalised fields (state 1) only")
        _check_degree(degree, file_degree, f"{path.name} has degree {file_degree}")
        c, s, seen = _new_arrays(degree)
        for line in numbered:
            fields = line.split(",")
            try:
                n, m = int(fields[0]), int(fields[1])
                if n > degree:
                    break
                _store(lines, c, s, seen, n, m, float(fields[2]), float(fields[3]), file_degree)
            except (ValueError, IndexError):
                raise lines.error("expected 'n, m, C, S, sigma_C, sigma_S'") from None
        _check_complete(lines, seen)
    return gm_km3_s2, radius_km, c, s


def _read_cof(path: Path, degree: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """GM (km^3/s^2), reference radius (km), C and S from a GMAT ``.cof`` file.

    Columns as GMAT's reader takes them (GravityFileUtil::ReadCofFile): keyword 1-8, n 9-11,
    m 12-14, C 18-38, S 39-59 (S may touch C: "-2.7e-09-7.5e-10"); comment lines start with C.
    """
    file_degree = None
    with _Lines(path) as lines:
        for line in lines:
            if line.startswith("C") or not line.strip():
                continue
            keyword = line[:8].strip()
            if keyword == "END":
                break
            try:
                if keyword == "POTFIELD":
                    file_degree = int(line[8:11])
                    gm_m3_s2, radius_m = (float(v) for v in line[14:].split()[1:3])
                    _check_degree(degree, file_degree, f"{path.name} has degree {file_degree}")
                    c, s, seen = _new_arrays(degree)
                elif keyword == "RECOEF" and file_degree is not None:
                    n, m = int(line[8:11]), int(line[11:14])
                    if n > degree:
                        break
                    s_text = line[38:59].strip()
                    _store(lines, c, s, seen, n, m, float(line[17:38]), float(s_text) if s_text else 0.0, file_degree)
                else:
                    raise ValueError
            except ValueError:
                expected = "expected 'POTFIELD nnnmmm f GM_m3_s2 R_m ...', 'RECOEF nnnmmm C [S]' or 'END'"
                raise lines.error(expected) from None
        if file_degree is None:
            raise lines.error("no POTFIELD header line was found")
        _check_complete(lines, seen)
    return gm_m3_s2 * 1e-9, radius_m * 1e-3, c, s
