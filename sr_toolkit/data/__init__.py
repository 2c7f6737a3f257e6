"""Training and evaluation data: degradation pipelines, batches, LR/HR file pairing."""
