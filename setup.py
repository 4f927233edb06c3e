"""Build hook: the protobuf modules are generated from ``src/ratekeeper/proto/**/*.proto`` when
a wheel or sdist is built (they are not kept in git). Everything else is in pyproject.toml."""

from __future__ import annotations

import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class GeneratedProtos(build_py):
    """``build_py`` that first runs scripts/gen_protos.py (grpcio-tools is a build requirement)."""

    def run(self) -> None:
        generator = ROOT / "scripts" / "gen_protos.py"
        if generator.exists():  # an sdist ships the generated modules and no generator
            namespace = runpy.run_path(str(generator))
            if namespace["main"]() != 0:
                raise RuntimeError("generating the protobuf modules failed")
        super().run()


setup(cmdclass={"build_py": GeneratedProtos})
