"""Build the optional compiled engine (streamconv/dsp/_fastconv.c); the rest is in pyproject.toml.

The extension is optional: where it cannot be compiled (no C compiler or Python headers)
setuptools prints a warning and installs streamconv without it, and streamconv runs its numpy
engines instead (same results, slower at small blocks).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "streamconv.dsp._fastconv",
            sources=["streamconv/dsp/_fastconv.c"],
            depends=["streamconv/dsp/_fastconv_impl.h"],
            extra_compile_args=["-O3", "-std=c11", "-fno-math-errno"],
            optional=True,
        )
    ]
)
