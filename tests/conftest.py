"""Test-suite configuration: float64 and strict rank promotion for every test.

Library code never flips global JAX configuration; the tests do, once, here. Float32 behaviour
is tested in scoped contexts (``jax.experimental.enable_x64(False)``) or with explicit
float32 inputs.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
