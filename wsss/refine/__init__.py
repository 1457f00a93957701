"""Refinements beyond the background cue + CRF: AffinityNet and its random walk (affinity,
random_walk) and deep seeded region growing (dsrg)."""
