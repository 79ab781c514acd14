"""Conda envs: every file parses, pins the same versions as requirements.txt, and every
rule that runs code names an existing env that provides what its code imports.

Conda channels are not reachable here, so the envs are never built in CI; these checks
are what keeps them from drifting away from the pip environment CI does use.
"""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from rule_info import resolve_env, workflow_rules

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
SCRIPTS = REPO / "workflow" / "scripts"

# conda-forge name -> pip/import names where they differ.
CONDA_TO_PIP = {"pytorch": "torch", "pytorch-gpu": "torch"}
IMPORT_TO_CONDA = {
    "torch": "pytorch",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "surprise": "scikit-surprise",
}
# Imports the rule scripts may use without an env entry: the package itself, and the
# `snakemake` object Snakemake injects into script: rules.
PROVIDED = {"movierec", "snakemake"}


def requirement_pins():
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):  # pip options: `-e .` installs movierec itself
            name, sep, version = line.partition("==")
            assert sep, f"requirements.txt: {line!r} is not pinned with =="
            pins[name.lower()] = version
    return pins


def parse_env(path):
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict), f"{path.name}: not a YAML mapping"
    deps = {}
    for dep in env.get("dependencies") or []:
        if isinstance(dep, dict) and set(dep) == {"pip"}:
            # PyPI-only packages (myfm): pinned as pip pins them, checked like the rest.
            for pin in dep["pip"]:
                m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([0-9][A-Za-z0-9.]*)", str(pin))
                assert m, f"{path.name}: pip dependency {pin!r} is not pinned as name==version"
                deps[m.group(1).lower()] = m.group(2)
            continue
        if dep == "pip":  # the installer the pip: entry needs; its version does not matter
            continue
        assert isinstance(dep, str), f"{path.name}: unexpected dependency entry {dep!r}"
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*=\s*([0-9][A-Za-z0-9.*]*)(=\S+)?", dep)
        assert m, f"{path.name}: dependency {dep!r} is not pinned as name=version"
        deps[m.group(1).lower()] = m.group(2)
    return env, deps


def test_env_files_exist():
    names = {p.name for p in ENVS}
    assert {"data.yaml", "train.yaml", "report.yaml"} <= names, names


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_parses_and_matches_pip_pins(path):
    env, deps = parse_env(path)
    assert "conda-forge" in env.get("channels", []), f"{path.name}: conda-forge channel missing"
    pins = requirement_pins()
    assert deps.get("python") == "3.11", f"{path.name}: python must be pinned to 3.11"
    checked = 0
    for name, version in deps.items():
        if name == "python":
            continue
        pip_name = CONDA_TO_PIP.get(name, name)
        assert pip_name in pins, (
            f"{path.name}: {name} is not in requirements.txt, so CI never tests it"
        )
        assert version == pins[pip_name], (
            f"{path.name}: {name}={version} but requirements.txt pins {pip_name}=={pins[pip_name]}"
        )
        checked += 1
    assert checked >= 3, f"{path.name}: expected at least numpy, pandas and pyarrow"


def _third_party_imports(path, seen):
    """Top-level modules imported by `path` and, transitively, by the movierec modules it uses."""
    if path in seen or not path.exists():
        return set()
    seen.add(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside movierec
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                mods = [node.module] if node.module else [a.name for a in node.names]
                for mod in mods:
                    target = base.joinpath(*mod.split("."))
                    for cand in (target.with_suffix(".py"), target / "__init__.py"):
                        found |= _third_party_imports(cand, seen)
                continue
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "movierec":
                target = SCRIPTS.joinpath(*name.split("."))
                for cand in (target.with_suffix(".py"), target / "__init__.py"):
                    found |= _third_party_imports(cand, seen)
            elif top not in sys.stdlib_module_names and top not in PROVIDED:
                found.add(top)
    return found


@pytest.fixture(scope="module")
def rules():
    return workflow_rules(REPO)


def test_every_rule_that_runs_code_has_an_existing_env(rules):
    runs_code = [r for r in rules if not r["norun"]]
    assert len(runs_code) >= 7, [r["name"] for r in rules]
    missing = [r["name"] for r in runs_code if not r["conda"]]
    assert not missing, f"rules without conda: {missing}"
    for rule in runs_code:
        env = resolve_env(rule)
        assert env.is_file(), f"rule {rule['name']}: conda env {env} does not exist"
        assert env.parent == REPO / "envs", f"rule {rule['name']}: env {env} is outside envs/"


def test_each_env_provides_what_its_rules_import(rules):
    problems = []
    for rule in rules:
        if rule["norun"] or not rule["script"]:
            continue
        script = (Path(rule["basedir"]) / rule["script"]).resolve()
        assert script.is_file(), f"rule {rule['name']}: script {script} missing"
        _, deps = parse_env(resolve_env(rule))
        for module in sorted(_third_party_imports(script, set())):
            conda_name = IMPORT_TO_CONDA.get(module, module).lower()
            if conda_name not in deps and not (conda_name == "pytorch" and "pytorch-gpu" in deps):
                problems.append(f"{rule['name']} imports {module}, not in {rule['conda']}")
    assert not problems, "\n".join(problems)


def test_import_scan_sees_library_imports():
    # Guard for the scan above: the training script reaches torch through movierec.
    script = SCRIPTS / "train_model.py"
    imports = _third_party_imports(script, set())
    if "raise NotImplementedError" in script.read_text():
        pytest.fail("workflow/scripts/train_model.py is still a stub")
    assert "torch" in imports, imports
