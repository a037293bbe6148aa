"""ladder: plan, train and fit small-model ladders to forecast a big training run.

In a notebook: `from ladder.api import collect, fit, plan` (pandas in and out); on the command line: `ladder <command>`.
"""

__version__ = "0.1.0"
