"""Oracle checks: results compared with a known answer (exact Gaussians, recorded fingerprints, CLI promises)."""
