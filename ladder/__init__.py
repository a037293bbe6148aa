"""ladder: plan, train and fit small-model ladders to forecast a big training run."""

__version__ = "0.1.0"
