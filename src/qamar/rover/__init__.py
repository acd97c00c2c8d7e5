"""The rover: its model (mobility, power, radio), traversability cost maps from DEMs and route
planning on them."""
