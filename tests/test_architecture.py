"""Dependencies point one way: pipeline -> {sources, filters, manifests} (DESIGN.md)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"pipeline", "ray"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["sources", "filters", "manifests"])
def test_leaf_packages_do_not_import_pipeline_or_ray(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    offenders = {str(f.relative_to(ROOT)): sorted(imported_modules(f) & FORBIDDEN) for f in files}
    assert not {f: m for f, m in offenders.items() if m}


def test_only_the_runtime_imports_ray_inside_pipeline():
    users = sorted(
        str(f.relative_to(ROOT)) for f in (ROOT / "pipeline").rglob("*.py") if "ray" in imported_modules(f)
    )
    assert users == ["pipeline/runtime.py"]


def test_the_checker_sees_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import ray.util\nfrom pipeline.config import load_config\n")
    assert imported_modules(probe) == {"ray", "pipeline"}
