"""Maps the top-level directories of the design onto one import namespace:
``edgekit/`` -> ``edgekit``, ``plugins/`` -> ``edgekit.plugins``, ``compiler/`` -> ``edgekit.compiler``,
``targets/`` -> ``edgekit.targets`` (profile data). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

PACKAGE_DIRS = {
    "edgekit": "edgekit",
    "edgekit.plugins": "plugins",
    "edgekit.compiler": "compiler",
    "edgekit.targets": "targets",
}


def packages() -> list[str]:
    found = []
    for package, directory in PACKAGE_DIRS.items():
        found.append(package)
        found += [f"{package}.{sub}" for sub in find_packages(directory)]
    return found


setup(packages=packages(), package_dir=PACKAGE_DIRS)
