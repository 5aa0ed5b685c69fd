"""Meta-learned latency prediction (HELP) in pure functional JAX."""
