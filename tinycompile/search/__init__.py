"""Hardware-aware multi-objective architecture search with Optuna."""
