"""`ladder tune`: learning-rate sweeps at small sizes, fitted into a rule and a recipe."""
