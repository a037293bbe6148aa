"""Downstream evaluation: multiple-choice tasks scored as ranked classification, and named validation corpora."""

from ladder.evals.suite import EvalSuite, make_suite

__all__ = ["EvalSuite", "make_suite"]
