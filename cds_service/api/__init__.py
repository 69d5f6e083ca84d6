"""HTTP layer: FastAPI routes around the pure core."""
