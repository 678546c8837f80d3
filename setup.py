"""Builds the native RTU-RTRL step (``rtu_core/engines/native/rtu_rtrl.cpp``) as a compiled torch extension when
the package is installed, as compiled PyTorch extensions are shipped, so that no run waits for a compiler.

It builds against the torch already installed, so install without pip's build isolation (in an isolated build
environment a build requirement on torch would pull a multi-GB CUDA wheel): ``make`` runs
``pip install --no-build-isolation -e .``. An install without torch at hand (an isolated build) skips the extension;
``rtu_core.engines.native.load`` then builds it at the first run instead, and says so.
"""

import hashlib
from pathlib import Path

from setuptools import setup

SOURCE = Path("rtu_core/engines/native/rtu_rtrl.cpp")
# the flags of the run-time build too (rtu_core.engines.native.CFLAGS): both builds give the same numbers
CFLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp-simd"]


def native_extension() -> dict:
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        return {}
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]  # rtu_core.engines.native.source_digest()
    extension = CppExtension(
        "rtu_core.engines.native._rtu_rtrl",
        [str(SOURCE)],
        extra_compile_args=CFLAGS,
        define_macros=[("RTU_SOURCE_DIGEST", f'"{digest}"')],
    )
    return {"ext_modules": [extension], "cmdclass": {"build_ext": BuildExtension}}


setup(**native_extension())
