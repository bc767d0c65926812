"""Everything is in pyproject.toml; this file only compiles the message catalogs (.po -> .mo) on install."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_with_catalogs(build_py):  # noqa: N801 (setuptools' command naming)
    def run(self):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from archiver.i18n.catalogs import compile_catalogs

        compile_catalogs()  # beside the .po: an editable install reads them there, a wheel takes them as data
        super().run()


setup(cmdclass={"build_py": build_py_with_catalogs})
