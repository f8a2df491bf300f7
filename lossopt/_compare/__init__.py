"""Private helpers of :mod:`lossopt.compare`: profiles across problems and the figures."""
