"""The one thing pyproject.toml cannot say: the C preprocessing kernel is optional.

edgecls/_area.c has no Python.h and is loaded with ctypes, so building it needs a C
compiler only. Where there is none, or EDGECLS_NATIVE=0 is set at build time, the install
goes on without it and edgecls resizes with its numpy twin: the same bytes, slower
(``edgecls doctor`` says which one runs).
"""

import os

from setuptools import Extension, setup

native = os.environ.get("EDGECLS_NATIVE", "1") != "0"
ext_modules = [
    Extension(
        "edgecls._area",
        sources=["edgecls/_area.c"],
        extra_compile_args=["-O3", "-std=c11"],
        optional=True,
    )
] if native else []

setup(ext_modules=ext_modules)
