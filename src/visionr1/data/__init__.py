"""Data layer: one canonical sample, loaders from the formats peers use, image/video handling."""
