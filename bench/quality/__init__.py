"""Quality benchmarks: FID and restoration quality of trained models."""
