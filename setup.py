"""Package layout: surco/ -> surco, solvers/ -> surco.solvers, problems/ -> surco.problems.

Metadata lives in pyproject.toml; this file only computes the package mapping so that new
subpackages (one per problem family) are picked up without editing a list.
"""
import os

from setuptools import setup

_ROOTS = {"surco": "surco", "surco.solvers": "solvers", "surco.problems": "problems"}


def _packages():
    pkgs, dirs = [], {}
    here = os.path.dirname(os.path.abspath(__file__))
    for name, root in _ROOTS.items():
        for path, subdirs, files in os.walk(os.path.join(here, root)):
            subdirs[:] = [d for d in subdirs if not d.startswith((".", "_"))]
            if "__init__.py" not in files:
                continue
            rel = os.path.relpath(path, os.path.join(here, root))
            pkg = name if rel == "." else name + "." + rel.replace(os.sep, ".")
            pkgs.append(pkg)
            dirs[pkg] = os.path.relpath(path, here)
    return pkgs, dirs


packages, package_dir = _packages()
setup(packages=packages, package_dir=package_dir,
      package_data={"surco.problems.sharding": ["data/*"]})
