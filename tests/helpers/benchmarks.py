"""A benchmark script (benchmarks/ is no package) loaded as a module, for tests of its figures."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Keras' serializable classes and dataclasses look it up by name
    spec.loader.exec_module(module)
    return module
