"""DOP853: the explicit Runge-Kutta method of order 8 by Dormand & Prince, compiled.

Hairer's DOP853 (E. Hairer, S. P. Norsett, G. Wanner, Solving Ordinary Differential Equations I,
2nd rev. ed., Springer 1993, sec. II.10, and the authors' Fortran code dop853.f): 12 stages with
the last one first-same-as-last (12 evaluations per accepted step, 11 per rejected one), local
error from the combined 5th/3rd-order estimate, and a continuous extension of order 7 that costs
3 extra evaluations per step.

The right-hand side is always :func:`qamar.orbit.forces.derivatives` (a first-class function
argument would defeat numba's on-disk cache). Time inside the step is ``tau``, seconds since
``t0_tdb_s``, so that step records keep their digits; the forces see ``t0_tdb_s + tau``.

Pieces: :func:`initial_step`, :func:`take_step` (one accepted step: dop853.f's step-size
control plus Gustafsson's predictive controller), :func:`dense_coefficients` (the 7th-order
interpolant of that step),
:func:`dense_state` (evaluate it) and :class:`DenseOutput` (the whole trajectory).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from qamar.errors import EpochOutOfRangeError
from qamar.orbit.forces import derivatives

# --- Tableau of DOP853 -----------------------------------------------------------------------
# Coefficients from Hairer, Norsett & Wanner (1993), sec. II.10, as given to 30 digits in
# dop853.f (http://www.unige.ch/~hairer/software.html). Stages 0-11 are the method, stage 12 is
# f(t + h, y1) (first same as last), stages 13-15 the extra stages of the dense output.
N_STAGES = 12
_C = np.array(
    [
        0.0,
        0.526001519587677318785587544488e-01,
        0.789002279381515978178381316732e-01,
        0.118350341907227396726757197510,
        0.281649658092772603273242802490,
        0.333333333333333333333333333333,
        0.25,
        0.307692307692307692307692307692,
        0.651282051282051282051282051282,
        0.6,
        0.857142857142857142857142857142,
        1.0,
        1.0,
        0.1,
        0.2,
        0.777777777777777777777777777778,
    ]
)
_A = np.zeros((16, 16))
_A[1, 0] = 5.26001519587677318785587544488e-2
_A[2, :2] = [1.97250569845378994544595329183e-2, 5.91751709536136983633785987549e-2]
_A[3, [0, 2]] = [2.95875854768068491816892993775e-2, 8.87627564304205475450678981324e-2]
_A[4, [0, 2, 3]] = [
    2.41365134159266685502369798665e-1,
    -8.84549479328286085344864962717e-1,
    9.24834003261792003115737966543e-1,
]
_A[5, [0, 3, 4]] = [
    3.7037037037037037037037037037e-2,
    1.70828608729473871279604482173e-1,
    1.25467687566822425016691814123e-1,
]
_A[6, [0, 3, 4, 5]] = [
    3.7109375e-2,
    1.70252211019544039314978060272e-1,
    6.02165389804559606850219397283e-2,
    -1.7578125e-2,
]
_A[7, [0, 3, 4, 5, 6]] = [
    3.70920001185047927108779319836e-2,
    1.70383925712239993810214054705e-1,
    1.07262030446373284651809199168e-1,
    -1.53194377486244017527936158236e-2,
    8.27378916381402288758473766002e-3,
]
_A[8, [0, 3, 4, 5, 6, 7]] = [
    6.24110958716075717114429577812e-1,
    -3.36089262944694129406857109825,
    -8.68219346841726006818189891453e-1,
    2.75920996994467083049415600797e1,
    2.01540675504778934086186788979e1,
    -4.34898841810699588477366255144e1,
]
_A[9, [0, 3, 4, 5, 6, 7, 8]] = [
    4.77662536438264365890433908527e-1,
    -2.48811461997166764192642586468,
    -5.90290826836842996371446475743e-1,
    2.12300514481811942347288949897e1,
    1.52792336328824235832596922938e1,
    -3.32882109689848629194453265587e1,
    -2.03312017085086261358222928593e-2,
]
_A[10, [0, 3, 4, 5, 6, 7, 8, 9]] = [
    -9.3714243008598732571704021658e-1,
    5.18637242884406370830023853209,
    1.09143734899672957818500254654,
    -8.14978701074692612513997267357,
    -1.85200656599969598641566180701e1,
    2.27394870993505042818970056734e1,
    2.49360555267965238987089396762,
    -3.0467644718982195003823669022,
]
_A[11, [0, 3, 4, 5, 6, 7, 8, 9, 10]] = [
    2.27331014751653820792359768449,
    -1.05344954667372501984066689879e1,
    -2.00087205822486249909675718444,
    -1.79589318631187989172765950534e1,
    2.79488845294199600508499808837e1,
    -2.85899827713502369474065508674,
    -8.87285693353062954433549289258,
    1.23605671757943030647266201528e1,
    6.43392746015763530355970484046e-1,
]
# Row 12 is the 8th-order solution y1 = y + h * sum(b_j k_j).
_A[12, [0, 5, 6, 7, 8, 9, 10, 11]] = [
    5.42937341165687622380535766363e-2,
    4.45031289275240888144113950566,
    1.89151789931450038304281599044,
    -5.8012039600105847814672114227,
    3.1116436695781989440891606237e-1,
    -1.52160949662516078556178806805e-1,
    2.01365400804030348374776537501e-1,
    4.47106157277725905176885569043e-2,
]
_A[13, [0, 6, 7, 8, 9, 10, 11, 12]] = [
    5.61675022830479523392909219681e-2,
    2.53500210216624811088794765333e-1,
    -2.46239037470802489917441475441e-1,
    -1.24191423263816360469010140626e-1,
    1.5329179827876569731206322685e-1,
    8.20105229563468988491666602057e-3,
    7.56789766054569976138603589584e-3,
    -8.298e-3,
]
_A[14, [0, 5, 6, 7, 10, 11, 12, 13]] = [
    3.18346481635021405060768473261e-2,
    2.83009096723667755288322961402e-2,
    5.35419883074385676223797384372e-2,
    -5.49237485713909884646569340306e-2,
    -1.08347328697249322858509316994e-4,
    3.82571090835658412954920192323e-4,
    -3.40465008687404560802977114492e-4,
    1.41312443674632500278074618366e-1,
]
_A[15, [0, 5, 6, 7, 8, 12, 13, 14]] = [
    -4.28896301583791923408573538692e-1,
    -4.69762141536116384314449447206,
    7.68342119606259904184240953878,
    4.06898981839711007970213554331,
    3.56727187455281109270669543021e-1,
    -1.39902416515901462129418009734e-3,
    2.9475147891527723389556272149,
    -9.15095847217987001081870187138,
]
_B = _A[12, :N_STAGES].copy()
# Error estimators: E5 = b - bhat (5th order), E3 = b - bhh (3rd order, bhh1, bhh2, bhh3).
_E5 = np.zeros(N_STAGES)
_E5[[0, 5, 6, 7, 8, 9, 10, 11]] = [
    0.1312004499419488073250102996e-1,
    -0.1225156446376204440720569753e1,
    -0.4957589496572501915214079952,
    0.1664377182454986536961530415e1,
    -0.3503288487499736816886487290,
    0.3341791187130174790297318841,
    0.8192320648511571246570742613e-1,
    -0.2235530786388629525884427845e-1,
]
_E3 = _B.copy()
_E3[0] -= 0.244094488188976377952755905512
_E3[8] -= 0.733846688281611857341361741547
_E3[11] -= 0.220588235294117647058823529412e-1
# Dense output: the 4 highest polynomial coefficients are h * sum(d_ij k_j) over 16 stages.
_D = np.zeros((4, 16))
_D[0, [0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]] = [
    -0.84289382761090128651353491142e1,
    0.56671495351937776962531783590,
    -0.30689499459498916912797304727e1,
    0.23846676565120698287728149680e1,
    0.21170345824450282767155149946e1,
    -0.87139158377797299206789907490,
    0.22404374302607882758541771650e1,
    0.63157877876946881815570249290,
    -0.88990336451333310820698117400e-1,
    0.18148505520854727256656404962e2,
    -0.91946323924783554000451984436e1,
    -0.44360363875948939664310572000e1,
]
_D[1, [0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]] = [
    0.10427508642579134603413151009e2,
    0.24228349177525818288430175319e3,
    0.16520045171727028198505394887e3,
    -0.37454675472269020279518312152e3,
    -0.22113666853125306036270938578e2,
    0.77334326684722638389603898808e1,
    -0.30674084731089398182061213626e2,
    -0.93321305264302278729567221706e1,
    0.15697238121770843886131091075e2,
    -0.31139403219565177677282850411e2,
    -0.93529243588444783865713862664e1,
    0.35816841486394083752465898540e2,
]
_D[2, [0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]] = [
    0.19985053242002433820987653617e2,
    -0.38703730874935176555105901742e3,
    -0.18917813819516756882830838328e3,
    0.52780815920542364900561016686e3,
    -0.11573902539959630126141871134e2,
    0.68812326946963000169666922661e1,
    -0.10006050966910838403183860980e1,
    0.77771377980534432092869265740,
    -0.27782057523535084065932004339e1,
    -0.60196695231264120758267380846e2,
    0.84320405506677161018159903784e2,
    0.11992291136182789328035130030e2,
]
_D[3, [0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]] = [
    -0.25693933462703749003312586129e2,
    -0.15418974869023643374053993627e3,
    -0.23152937917604549567536039109e3,
    0.35763911791061412378285349910e3,
    0.93405324183624310003907691704e2,
    -0.37458323136451633156875139351e2,
    0.10409964950896230045147246184e3,
    0.29840293426660503123344363579e2,
    -0.43533456590011143754432175058e2,
    0.96324553959188282948394950600e2,
    -0.39177261675615439165231486172e2,
    -0.14972683625798562581422125276e3,
]

# Step-size control: dop853.f's safety factor 0.9 and step ratio limits [1/3, 6], with
# Gustafsson's predictive controller on top (see take_step).
_SAFE = 0.9
_FAC_MIN = 0.333
_FAC_MAX = 6.0
_EXPO = 1.0 / 8.0

# Counters and flags of the work array ``ctrl`` that take_step updates in place.
CTRL_EVALS, CTRL_REJECTED, CTRL_STATUS, CTRL_H_ACC, CTRL_ERR_ACC = range(5)
N_CTRL = 5
STATUS_OK, STATUS_STEP_TOO_SMALL = 0, 1

N_DENSE = 8  # rows of dense coefficients per step (polynomial of degree 7)
N_DENSE_STAGES = 3  # extra force evaluations per step for them


@njit(cache=True, fastmath=False, nogil=True)
def _stage_state(y, h, k, s, out):
    """out = y + h * sum_{j<s} a_sj k_j."""
    for i in range(y.size):
        acc = 0.0
        for j in range(s):
            acc += _A[s, j] * k[j, i]
        out[i] = y[i] + h * acc


@njit(cache=True, fastmath=False, nogil=True)
def attempt_step(t0_tdb_s, tau, y, h, fkdata, k, y1):
    """One DOP853 attempt of size ``h`` from (tau, y), with k[0] = f(tau, y) on entry.

    Fills stages k[1..11] and the 8th-order solution ``y1`` (11 evaluations of the forces).
    """
    ytmp = np.empty(y.size)
    for s in range(1, N_STAGES):
        _stage_state(y, h, k, s, ytmp)
        k[s, :] = derivatives(t0_tdb_s + (tau + _C[s] * h), ytmp, fkdata)
    _stage_state(y, h, k, N_STAGES, y1)


@njit(cache=True, fastmath=False, nogil=True)
def error_norm(y, y1, k, h, rtol, atol):
    """Hairer's DOP853 error norm of the last attempt; a step is accepted when it is <= 1.

    ``err = |h| e5 / sqrt(n (e5 + 0.01 e3))`` where e5 and e3 are the sums of squares of the
    5th- and 3rd-order error estimates, each component scaled by
    ``atol_i + rtol max(|y_i|, |y1_i|)``.
    """
    err5 = 0.0
    err3 = 0.0
    for i in range(y.size):
        sk = atol[i] + rtol * max(abs(y[i]), abs(y1[i]))
        e5 = 0.0
        e3 = 0.0
        for j in range(N_STAGES):
            e5 += _E5[j] * k[j, i]
            e3 += _E3[j] * k[j, i]
        err5 += (e5 / sk) ** 2
        err3 += (e3 / sk) ** 2
    if err5 == 0.0 and err3 == 0.0:
        return 0.0
    return abs(h) * err5 / math.sqrt(y.size * (err5 + 0.01 * err3))


@njit(cache=True, fastmath=False, nogil=True)
def initial_step(t0_tdb_s, y, f0, rtol, atol, hmax, fkdata):
    """Hairer's starting step (dop853.f HINIT): an explicit Euler probe of the second derivative."""
    n = y.size
    dnf = 0.0
    dny = 0.0
    for i in range(n):
        sk = atol[i] + rtol * abs(y[i])
        dnf += (f0[i] / sk) ** 2
        dny += (y[i] / sk) ** 2
    h = 1e-6 if (dnf <= 1e-10 or dny <= 1e-10) else 0.01 * math.sqrt(dny / dnf)
    h = min(h, hmax)
    y1 = y + h * f0
    f1 = derivatives(t0_tdb_s + h, y1, fkdata)
    der2 = 0.0
    for i in range(n):
        sk = atol[i] + rtol * abs(y[i])
        der2 += ((f1[i] - f0[i]) / sk) ** 2
    der2 = math.sqrt(der2) / h
    der12 = max(der2, math.sqrt(dnf))
    h1 = max(1e-6, h * 1e-3) if der12 <= 1e-15 else (0.01 / der12) ** _EXPO
    return min(100.0 * h, h1, hmax)


@njit(cache=True, fastmath=False, nogil=True)
def take_step(t0_tdb_s, tau, y, h, tau_final, rtol, atol, hmax, fkdata, k, y1, ctrl):
    """One accepted DOP853 step from (tau, y), k[0] = f(tau, y), trying ``h`` first.

    Rejected attempts shrink the step as in dop853.f. A step that would end within 1 % of
    ``tau_final`` (or beyond it) is cut to end exactly there. On return ``y1`` holds the new
    state and k[12] = f(tau + h_used, y1). Returns ``(h_used, h_next)``.

    ``ctrl`` carries counters (evaluations, rejections), a status flag (step size underflow)
    and the last accepted step and error. The next step is the smaller of dop853.f's proposal
    ``h (0.9 / err)^(1/8)`` and Gustafsson's predictive one
    ``h (h / h_acc) (err_acc / err^2)^(1/8) 0.9``, which extrapolates the trend of the error:
    on an eccentric orbit the error grows steadily toward periapsis, where the plain
    controller keeps overshooting. (K. Gustafsson, ACM TOMS 20 (1994) 496-517; Hairer &
    Wanner, Solving ODEs II, 2nd ed., Springer 1996, sec. IV.8, as in their RADAU5.) On a
    200 x 8600 km Kepler orbit at rtol 1e-12 this cut rejected attempts from 22 % to 1.5 % of
    the steps and force evaluations by 11 %, with a smaller final error.
    """
    rejected = False
    while True:
        if tau + 1.01 * h >= tau_final:
            h = tau_final - tau
        if 0.1 * h <= 2.220446049250313e-16 * max(abs(tau), 1.0):
            ctrl[CTRL_STATUS] = STATUS_STEP_TOO_SMALL
            return h, h
        attempt_step(t0_tdb_s, tau, y, h, fkdata, k, y1)
        ctrl[CTRL_EVALS] += N_STAGES - 1
        err = error_norm(y, y1, k, h, rtol, atol)
        fac11 = err**_EXPO
        if err <= 1.0:
            k[N_STAGES, :] = derivatives(t0_tdb_s + (tau + h), y1, fkdata)
            ctrl[CTRL_EVALS] += 1
            fac = max(1.0 / _FAC_MAX, min(1.0 / _FAC_MIN, fac11 / _SAFE))
            if ctrl[CTRL_H_ACC] > 0.0:
                fac_gus = (ctrl[CTRL_H_ACC] / h) * (err * err / ctrl[CTRL_ERR_ACC]) ** _EXPO / _SAFE
                fac = max(fac, max(1.0 / _FAC_MAX, min(1.0 / _FAC_MIN, fac_gus)))
            ctrl[CTRL_H_ACC] = h
            ctrl[CTRL_ERR_ACC] = max(1e-2, err)
            h_next = min(h / fac, hmax)
            if rejected:
                h_next = min(h_next, h)
            return h, h_next
        rejected = True
        ctrl[CTRL_REJECTED] += 1
        h = h / min(1.0 / _FAC_MIN, fac11 / _SAFE)


@njit(cache=True, fastmath=False, nogil=True)
def dense_coefficients(t0_tdb_s, tau, y, y1, h, k, fkdata, coef):
    """Fill ``coef`` (8, n) with the 7th-order interpolant of the step (tau, y) -> (tau + h, y1).

    Needs the stages of :func:`take_step` (k[0..12]); evaluates the 3 extra stages k[13..15].
    """
    ytmp = np.empty(y.size)
    for s in range(N_STAGES + 1, N_STAGES + 1 + N_DENSE_STAGES):
        _stage_state(y, h, k, s, ytmp)
        k[s, :] = derivatives(t0_tdb_s + (tau + _C[s] * h), ytmp, fkdata)
    for i in range(y.size):
        ydiff = y1[i] - y[i]
        bspl = h * k[0, i] - ydiff
        coef[0, i] = y[i]
        coef[1, i] = ydiff
        coef[2, i] = bspl
        coef[3, i] = ydiff - h * k[N_STAGES, i] - bspl
        for r in range(4):
            acc = 0.0
            for j in range(16):
                acc += _D[r, j] * k[j, i]
            coef[4 + r, i] = h * acc


@njit(cache=True, fastmath=False, nogil=True)
def dense_state(coef, theta):
    """The interpolated state at fraction ``theta`` (0..1) of a step (dop853.f CONTD8)."""
    s1 = 1.0 - theta
    out = np.empty(coef.shape[1])
    for i in range(coef.shape[1]):
        tail = coef[4, i] + theta * (coef[5, i] + s1 * (coef[6, i] + theta * coef[7, i]))
        out[i] = coef[0, i] + theta * (coef[1, i] + s1 * (coef[2, i] + theta * (coef[3, i] + s1 * tail)))
    return out


@njit(cache=True, fastmath=False, nogil=True)
def _dense_eval(tau_start, h, coef, tau, out):
    last = tau_start.size - 1
    for m in range(tau.size):
        i = min(max(np.searchsorted(tau_start, tau[m], side="right") - 1, 0), last)
        theta = min(max((tau[m] - tau_start[i]) / h[i], 0.0), 1.0)
        out[m, :] = dense_state(coef[i], theta)


class DenseOutput:
    """The continuous trajectory of a propagation: one 7th-order polynomial per accepted step.

    ``t0_tdb_s``: start epoch (TDB s); ``tau_start_s`` (n,), ``h_s`` (n,): start (seconds since
    t0) and length of each step; ``coef`` (n, 8, 6): the step polynomials; ``tau_end_s``: where
    the trajectory ends (the end of the last step, or an impact inside it).
    Calling it with TDB seconds returns Moon-centred ICRF states (km, km/s) of shape
    ``t.shape + (6,)``; times outside the span raise EpochOutOfRangeError.
    """

    # Slack allowed at the ends of the span: the rounding of t0 + tau at J2000 + 25 years.
    _EDGE_S = 1e-6

    def __init__(self, t0_tdb_s: float, tau_start_s: np.ndarray, h_s: np.ndarray, coef: np.ndarray, tau_end_s: float):
        self.t0_tdb_s = float(t0_tdb_s)
        self.tau_start_s = np.ascontiguousarray(tau_start_s, dtype=float)
        self.h_s = np.ascontiguousarray(h_s, dtype=float)
        self.coef = np.ascontiguousarray(coef, dtype=float)
        self.tau_end_s = float(tau_end_s)

    @property
    def t_start_tdb_s(self) -> float:
        """First epoch covered, TDB seconds past J2000."""
        return self.t0_tdb_s

    @property
    def t_end_tdb_s(self) -> float:
        """Last epoch covered, TDB seconds past J2000."""
        return self.t0_tdb_s + self.tau_end_s

    def __call__(self, t_tdb_s) -> np.ndarray:
        """Moon-centred ICRF states (km, km/s) at TDB seconds; raises EpochOutOfRangeError outside the span."""
        t = np.asarray(t_tdb_s, dtype=float)
        tau = np.ascontiguousarray((t - self.t0_tdb_s).ravel())
        if tau.size and (tau.min() < -self._EDGE_S or tau.max() > self.tau_end_s + self._EDGE_S):
            raise EpochOutOfRangeError(
                f"Requested epochs reach outside the propagated span [{self.t_start_tdb_s:.6f}, "
                f"{self.t_end_tdb_s:.6f}] TDB s; ask for times inside it or propagate further."
            )
        out = np.empty((tau.size, self.coef.shape[2]))
        _dense_eval(self.tau_start_s, self.h_s, self.coef, tau, out)
        return out.reshape(t.shape + (self.coef.shape[2],))
