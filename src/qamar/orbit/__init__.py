"""Lunar orbit engine: gravity fields, forces, a compiled integrator with events, propagation."""
