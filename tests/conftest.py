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


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow(seconds): a test that takes about this long on a 2-core CPU; such tests are "
        "scheduled first, longest first, so that pytest-xdist's workers share them out and the "
        "short tests fill the end of the run",
    )


def pytest_collection_modifyitems(config, items):
    # Every xdist worker collects and sorts alike (the controller checks that they agree).
    def seconds(item):
        mark = item.get_closest_marker("slow")
        return mark.args[0] if mark and mark.args else 0

    items.sort(key=lambda item: -seconds(item))  # stable: ties keep the collection order
