"""Physical constants with their sources. Units are in the names.

Gravity-field constants (lunar GM, reference radius) are NOT here: they are read from each
gravity file, because they differ between fields.
"""

# Mean lunar radius of the LOLA datum; also the radius of the impact sphere.
# Source: NAIF pck00011.tpc BODY301_RADII; LOLA LDEM products (Smith et al. 2010).
MOON_RADIUS_KM = 1737.4

# GM of Earth and Sun from DE440. Source: NAIF gm_de440.tpc (BODY399_GM, BODY10_GM).
GM_EARTH_KM3_S2 = 3.9860043550702266e05
GM_SUN_KM3_S2 = 1.3271244004127942e11
# Lunar GM from DE440 (gm_de440.tpc BODY301_GM): used only where no gravity field is loaded.
GM_MOON_DE440_KM3_S2 = 4.9028001184575496e03

# Radii for shadow geometry. Source: NAIF pck00011.tpc (BODY10_RADII = IAU 2015 nominal solar
# radius; BODY399_RADII equatorial).
SUN_RADIUS_KM = 695700.0
EARTH_EQUATORIAL_RADIUS_KM = 6378.1366

# Astronomical unit, IAU 2012 Resolution B2.
AU_KM = 149597870.7
# Speed of light, exact (SI).
SPEED_OF_LIGHT_KM_S = 299792.458
# Total solar irradiance at 1 AU, Kopp & Lean (2011), GRL 38, L01706: 1360.8 +/- 0.5 W/m^2.
SOLAR_IRRADIANCE_1AU_W_M2 = 1360.8

# Seconds in a Julian day, and the J2000.0 epoch as a Julian date (TT/TDB).
SECONDS_PER_DAY = 86400.0
J2000_JD = 2451545.0
