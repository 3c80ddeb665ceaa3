"""Installs the repository's folders pipelines/, replay/, schemas/ and storage/ as tracedrop.pipelines, .replay,
.schemas and .storage: the only top-level name tracedrop installs is its own."""

from setuptools import find_namespace_packages, setup

FOLDERS = ("pipelines", "replay", "schemas", "storage")
FOUND = find_namespace_packages(include=[*FOLDERS, *(f"{f}.*" for f in FOLDERS)], exclude=["*.__pycache__"])

setup(packages=[f"tracedrop.{name}" for name in FOUND], package_dir={f"tracedrop.{f}": f for f in FOLDERS})
