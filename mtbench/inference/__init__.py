"""A trained model at work: the compiled per-head predictor and the ASE calculator."""
