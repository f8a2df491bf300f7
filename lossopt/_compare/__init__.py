"""Private helpers of :mod:`lossopt.comparison`: profiles across problems and the figures."""
