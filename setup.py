"""Build the compiled kernels in ext/ with Cython.

Every ``ext/<name>.pyx`` becomes the extension module ``profiling._native.<name>``.
Set ``PROFILING_PORTABLE=1`` to build without ``-march=native`` (for wheels that run on
any x86-64/aarch64 machine); the default source build uses the instruction set of the
machine it is compiled on. ``profiling._native.buildinfo`` records which one was built.
"""

import os
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import find_packages, setup
from setuptools.extension import Extension

HERE = Path(__file__).parent
PORTABLE = os.environ.get("PROFILING_PORTABLE", "0") not in ("", "0", "false", "no")


def _flags():
    if sys.platform == "win32":
        return ["/O2", "/openmp"], []
    compile_args = ["-O3", "-fopenmp", "-fno-math-errno"]
    if not PORTABLE:
        compile_args.append("-march=native")
    return compile_args, ["-fopenmp"]


def _write_buildinfo():
    target = HERE / "profiling" / "_native" / "buildinfo.py"
    target.write_text(
        '"""Written by setup.py at build time."""\n'
        f"PORTABLE = {PORTABLE!r}\n"
        f"FLAGS = {' '.join(_flags()[0])!r}\n"
    )


def extensions():
    compile_args, link_args = _flags()
    mods = []
    for pyx in sorted((HERE / "ext").glob("*.pyx")):
        mods.append(
            Extension(
                f"profiling._native.{pyx.stem}",
                [str(pyx.relative_to(HERE))],
                include_dirs=[np.get_include(), "ext"],
                extra_compile_args=compile_args,
                extra_link_args=link_args,
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return cythonize(
        mods,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        include_path=["ext"],
    )


_write_buildinfo()
# The CLI lives in ./cli but installs as ``profiling_cli``: never a generic top-level "cli".
# reference_data/ installs inside the library as ``profiling.reference_data``.
setup(
    packages=find_packages(include=["profiling", "profiling.*"])
    + ["profiling_cli", "profiling.reference_data"],
    package_dir={"profiling_cli": "cli", "profiling.reference_data": "reference_data"},
    package_data={"profiling.reference_data": ["*.toml", "*.csv", "*.md", "*/*.toml",
                                               "*/*.csv", "*/*.json", "*/*.md"]},
    ext_modules=extensions(),
)
