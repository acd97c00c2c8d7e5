import org.hipparchus.CalculusFieldElement;
import org.hipparchus.geometry.euclidean.threed.FieldRotation;
import org.hipparchus.geometry.euclidean.threed.FieldVector3D;
import org.hipparchus.geometry.euclidean.threed.Rotation;
import org.hipparchus.geometry.euclidean.threed.RotationConvention;
import org.hipparchus.geometry.euclidean.threed.RotationOrder;
import org.hipparchus.geometry.euclidean.threed.Vector3D;
import org.hipparchus.util.MathArrays;
import org.orekit.frames.FieldTransform;
import org.orekit.frames.StaticTransform;
import org.orekit.frames.Transform;
import org.orekit.frames.TransformProvider;
import org.orekit.time.AbsoluteDate;
import org.orekit.time.FieldAbsoluteDate;

/**
 * Rotation from the parent inertial frame (GCRF standing in for ICRF) to the Moon principal-axes
 * frame, from Chebyshev series of the 3-1-3 Euler angles (phi, theta, psi) of the DE440 PA
 * binary PCK: ICRF -> PA = R3(psi) R1(theta) R3(phi), the SPICE convention.
 *
 * <p>Each angle (radians) is sum_k c[k] T_k(x), x = 2 (date - start) / span - 1 in [-1, 1]; the
 * seconds of the propagation's time axis stand for TDB seconds (see tests/peers/orekit_moon.py).
 * The angular velocity of PA with respect to ICRF, expressed in PA, follows from the angle rates:
 * w = (theta' cos psi + phi' sin theta sin psi, phi' sin theta cos psi - theta' sin psi,
 * psi' + phi' cos theta).
 */
public final class MoonPaEulerProvider implements TransformProvider {

    private final AbsoluteDate start;
    private final double spanS;
    private final double[][] coef;

    /** Series for phi, theta, psi (radians) over [start, start + spanS] (seconds). */
    public MoonPaEulerProvider(AbsoluteDate start, double spanS, double[] phi, double[] theta, double[] psi) {
        if (phi.length != theta.length || phi.length != psi.length || phi.length < 2) {
            throw new IllegalArgumentException("the three Euler-angle series need the same length (at least 2)");
        }
        this.start = start;
        this.spanS = spanS;
        this.coef = new double[][] {phi.clone(), theta.clone(), psi.clone()};
    }

    private void checkInside(double dtS) {
        if (dtS < 0.0 || dtS > spanS) {
            throw new IllegalArgumentException("date is " + dtS + " s from the fit start, outside the Euler-angle fit span of "
                    + spanS + " s; fit the angles over a longer span");
        }
    }

    /** Angles and, when rates is true, their time derivatives (rad, rad/s): {phi, theta, psi, phi', theta', psi'}. */
    private double[] angles(double dtS, boolean rates) {
        checkInside(dtS);
        double x = 2.0 * dtS / spanS - 1.0;
        double[] out = new double[6];
        // T_k(x) and U_{k-1}(x) by their three-term recurrences; T_k' = k U_{k-1}.
        double tPrev = 1.0, tCur = x, uPrev = 0.0, uCur = 1.0;
        for (int i = 0; i < 3; i++) {
            out[i] = coef[i][0] + coef[i][1] * x;
            out[i + 3] = coef[i][1];
        }
        for (int k = 2; k < coef[0].length; k++) {
            double tNext = 2.0 * x * tCur - tPrev;
            double uNext = 2.0 * x * uCur - uPrev;
            tPrev = tCur; tCur = tNext; uPrev = uCur; uCur = uNext;
            for (int i = 0; i < 3; i++) {
                out[i] += coef[i][k] * tCur;
                if (rates) {
                    out[i + 3] += coef[i][k] * k * uCur;
                }
            }
        }
        double dxdt = 2.0 / spanS;
        for (int i = 3; i < 6; i++) {
            out[i] *= dxdt;
        }
        return out;
    }

    private <T extends CalculusFieldElement<T>> T[] angles(T dtS) {
        checkInside(dtS.getReal());
        T x = dtS.multiply(2.0 / spanS).subtract(1.0);
        T[] out = MathArrays.buildArray(dtS.getField(), 6);
        T tPrev = x.getField().getOne(), tCur = x, uPrev = x.getField().getZero(), uCur = x.getField().getOne();
        for (int i = 0; i < 3; i++) {
            out[i] = x.multiply(coef[i][1]).add(coef[i][0]);
            out[i + 3] = x.getField().getZero().add(coef[i][1]);
        }
        for (int k = 2; k < coef[0].length; k++) {
            T tNext = x.multiply(tCur).multiply(2.0).subtract(tPrev);
            T uNext = x.multiply(uCur).multiply(2.0).subtract(uPrev);
            tPrev = tCur; tCur = tNext; uPrev = uCur; uCur = uNext;
            for (int i = 0; i < 3; i++) {
                out[i] = out[i].add(tCur.multiply(coef[i][k]));
                out[i + 3] = out[i + 3].add(uCur.multiply(coef[i][k] * k));
            }
        }
        for (int i = 3; i < 6; i++) {
            out[i] = out[i].multiply(2.0 / spanS);
        }
        return out;
    }

    private static Rotation rotation(double[] a) {
        return new Rotation(RotationOrder.ZXZ, RotationConvention.FRAME_TRANSFORM, a[0], a[1], a[2]);
    }

    @Override
    public Transform getTransform(AbsoluteDate date) {
        double[] a = angles(date.durationFrom(start), true);
        double st = Math.sin(a[1]), ct = Math.cos(a[1]), sp = Math.sin(a[2]), cp = Math.cos(a[2]);
        Vector3D w = new Vector3D(a[4] * cp + a[3] * st * sp, a[3] * st * cp - a[4] * sp, a[5] + a[3] * ct);
        return new Transform(date, rotation(a), w);
    }

    @Override
    public StaticTransform getStaticTransform(AbsoluteDate date) {
        return StaticTransform.of(date, rotation(angles(date.durationFrom(start), false)));
    }

    @Override
    public <T extends CalculusFieldElement<T>> FieldTransform<T> getTransform(FieldAbsoluteDate<T> date) {
        T[] a = angles(date.durationFrom(start));
        T st = a[1].sin(), ct = a[1].cos(), sp = a[2].sin(), cp = a[2].cos();
        FieldVector3D<T> w = new FieldVector3D<>(a[4].multiply(cp).add(a[3].multiply(st).multiply(sp)),
                a[3].multiply(st).multiply(cp).subtract(a[4].multiply(sp)), a[5].add(a[3].multiply(ct)));
        FieldRotation<T> r = new FieldRotation<>(RotationOrder.ZXZ, RotationConvention.FRAME_TRANSFORM, a[0], a[1], a[2]);
        return new FieldTransform<>(date, r, w);
    }
}
