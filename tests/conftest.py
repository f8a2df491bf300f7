"""Test-suite configuration: float64 and strict rank promotion for every test.

Library code never flips global JAX configuration; the tests do, once, here. Float32 behaviour
is tested in scoped contexts (``jax.enable_x64(False)``) or with explicit
float32 inputs.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# `lossopt run` called in-process must not switch this process to the user's persistent
# compilation cache; tests that want a cache pass LOSSOPT_CACHE_DIR to their subprocess.
os.environ["LOSSOPT_CACHE_DIR"] = ""
