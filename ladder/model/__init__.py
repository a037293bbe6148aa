"""Model configurator: size spec -> architecture -> transformers model, with exact counts."""

from ladder.model.counting import (DEFAULT_FLOPS_CONVENTION, FLOPS_CONVENTIONS, ParamCount, ParamCounts,
                                   all_flops_per_token, count_params, flops_per_token)
from ladder.model.presets import OLMO_PUBLISHED_PARAMS, PRESETS, preset_shape
from ladder.model.shapes import shape_for_params
from ladder.model.spec import ModelSpec, swiglu_hidden

__all__ = ["DEFAULT_FLOPS_CONVENTION", "FLOPS_CONVENTIONS", "ParamCount", "ParamCounts", "ModelSpec",
           "OLMO_PUBLISHED_PARAMS", "PRESETS", "all_flops_per_token", "count_params", "flops_per_token",
           "preset_shape", "shape_for_params", "swiglu_hidden"]
