"""`ladder design`: the cheapest ladder that forecasts the target within a stated error (docs/design.md)."""
