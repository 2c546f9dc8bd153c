"""Orchestration: CLI, config, stage list, the Ray runtime. The only package that imports ray."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jcorpus-pipeline")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0+source"
