"""Linear corruptions ``C_t``, noise schedules and the forward process ``x_t = C_t x_0 + s_t eta``.

Choosing the levels from data, and the level files, live in :mod:`softdiff.schedule`.
"""

from .base import Compose, LinearCorruption, as_time, compose, default_s_max
from .blur import GaussianBlur, dct_matrix
from .checks import Law, OperatorReport, check_operator, check_structure
from .config import (
    CORRUPTIONS,
    BlurConfig,
    CorruptionConfig,
    MaskConfig,
    NoiseConfig,
    build_process,
    corruption_names,
    parse_spec,
    register_corruption,
)
from .desaturate import Desaturate
from .diagonal import DiagonalForm, dct_form, pixel_form, scalar_form
from .fade import FadeToMean
from .identity import Identity
from .mask import Mask
from .motion import MotionBlur
from .pixelate import Pixelate
from .process import CorruptionProcess
from .schedules import Geometric, GeometricNoise, LevelTable, Linear, LinearNoise, Schedule
from .spectral import Spectrum, register_spectrum, spectrum
from .strokes import Strokes

__all__ = [
    "LinearCorruption",
    "Compose",
    "compose",
    "as_time",
    "default_s_max",
    "Identity",
    "GaussianBlur",
    "dct_matrix",
    "Mask",
    "Desaturate",
    "FadeToMean",
    "Strokes",
    "MotionBlur",
    "check_operator",
    "check_structure",
    "OperatorReport",
    "Law",
    "Pixelate",
    "DiagonalForm",
    "dct_form",
    "pixel_form",
    "scalar_form",
    "Spectrum",
    "spectrum",
    "register_spectrum",
    "Schedule",
    "Geometric",
    "Linear",
    "LevelTable",
    "GeometricNoise",
    "LinearNoise",
    "CorruptionProcess",
    "CorruptionConfig",
    "BlurConfig",
    "MaskConfig",
    "NoiseConfig",
    "build_process",
    "parse_spec",
    "register_corruption",
    "corruption_names",
    "CORRUPTIONS",
]
