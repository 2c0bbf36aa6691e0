"""No module imports from a layer above its own: the pipeline order of the README's layout table.

cli (and the other commands) -> experiments -> baselines / evaluation -> training -> data ->
preprocessing -> plotting -> io / model_zoo -> config -> utils and the other base modules. A module
may import from its own layer and from any below it. Imports are read from the source (every
``from .x import y`` and ``from ..x import y``, at the top of a module or inside a function)."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "brain2pix_gluon")

# subpackage or top-level module -> layer (higher may import lower)
LAYERS = {
    "cli": 10, "launch": 10, "report": 10, "doctor": 10, "inspection": 10,
    "experiments": 9,
    "baselines": 8, "evaluation": 8,
    "training": 7,
    "data": 6,
    "preprocessing": 5,
    "plotting": 4,
    "io": 3, "model_zoo": 3,
    "config": 2,
    "utils": 1, "errors": 1, "provenance": 1, "locking": 1, "similarity": 1, "devices": 1,
    "cuda_libraries": 1, "configs": 1, "__init__": 1, "__version__": 1,
}


def _unit(dotted):
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_imports(package=PACKAGE):
    """(importing module, its unit, imported module, its unit) of every relative import."""
    root = os.path.dirname(package)
    found = []
    for folder, _, files in os.walk(package):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
            here = module.split(".")
            if name == "__init__.py":
                module = module[: -len(".__init__")]
            else:
                here = here[:-1]
            with open(path, encoding="utf-8") as handle:
                tree = ast.parse(handle.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level > 0:
                    base = here[:len(here) - (node.level - 1)]
                    targets = (["." .join(base + [node.module])] if node.module else
                               [".".join(base + [alias.name]) for alias in node.names])
                    for target in targets:
                        found.append((module, _unit(module), target, _unit(target)))
    return found


def test_every_module_has_a_layer():
    units = {u for _, u, _, t in package_imports() for u in (u, t)}
    missing = sorted(units - set(LAYERS))
    assert not missing, f"place these in LAYERS (and the README's layout table): {missing}"


def test_no_module_imports_from_a_layer_above_it():
    upward = [f"{module} ({unit}, layer {LAYERS[unit]}) imports {target} ({tunit}, layer "
              f"{LAYERS[tunit]})" for module, unit, target, tunit in package_imports()
              if LAYERS.get(tunit, 0) > LAYERS.get(unit, 0)]
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    """The reader finds a function-level import that goes up a layer (as a lazy one would)."""
    package = tmp_path / "brain2pix_gluon"
    (package / "training").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "training" / "__init__.py").write_text("")
    (package / "training" / "trainer.py").write_text(
        "def f():\n    from ..evaluation.metrics import pixcorr\n    return pixcorr\n")
    [(module, unit, target, tunit)] = package_imports(str(package))
    assert (module, unit, target, tunit) == ("brain2pix_gluon.training.trainer", "training",
                                             "brain2pix_gluon.evaluation.metrics", "evaluation")
    assert LAYERS[tunit] > LAYERS[unit]


def test_the_readme_states_the_order():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = " ".join(handle.read().split())
    assert ("cli → experiments → baselines/evaluation → training → data → preprocessing → "
            "plotting → io/model_zoo → config → utils") in readme
