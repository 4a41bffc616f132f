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


def _data_packages(pkgs, dirs):
    """Folders of shipped data (``data/`` below a package, e.g. the sharding prior's
    checkpoint) as data-only packages, so that setuptools ships their files and does not
    warn that an importable folder is absent from the packages."""
    here = os.path.dirname(os.path.abspath(__file__))
    data = {}
    for pkg in list(pkgs):
        root = os.path.join(here, dirs[pkg], "data")
        for path, subdirs, files in os.walk(root):
            subdirs[:] = [d for d in subdirs if not d.startswith((".", "_"))]
            rel = os.path.relpath(path, os.path.join(here, dirs[pkg]))
            name = pkg + "." + rel.replace(os.sep, ".")
            pkgs.append(name)
            dirs[name] = os.path.relpath(path, here)
            data[name] = ["*"]
    return data


packages, package_dir = _packages()
package_data = _data_packages(packages, package_dir)
setup(packages=packages, package_dir=package_dir, package_data=package_data)
