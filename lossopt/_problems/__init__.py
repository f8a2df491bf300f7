"""Private implementation of :mod:`lossopt.problems` (the registry, the MGH set, ML problems)."""
