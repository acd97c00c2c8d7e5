"""Lunar surface: terrain (DEM I/O, projections, slopes), horizons, illumination, Earth
visibility and permanently shadowed regions."""
