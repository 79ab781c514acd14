"""Unknown config keys and non-finite numbers, named with their place.

JSON Schema reports a misspelt key as "Additional properties are not allowed
('batchsize' was unexpected)": no place, no near name. :func:`check_config`
runs before the schema check and says both, for every such key at once. It
reads only the parts of the schema that say which keys exist (``properties``,
``additionalProperties``, ``items``, ``$ref`` and the branches of ``allOf``,
``anyOf``, ``oneOf`` and ``if``/``then``/``else``); types, ranges and required
keys stay the schema check's job.
"""

import difflib
import math

from jsonschema.validators import validator_for


def check_config(config, schema):
    """Raise one ValueError naming every unknown key and non-finite number.

    A key is unknown where the schema that applies to its mapping says
    ``additionalProperties: false`` and names it in none of its ``properties``.
    Every branch of ``allOf``, ``anyOf`` and ``oneOf`` applies; of ``then`` and
    ``else``, the one that ``if`` picks for the value. Where
    ``additionalProperties`` is a schema (free names: datasets, models, split
    schemes), any name goes and its value is checked against that schema.

    Parameters
    ----------
    config : dict
        The config as Snakemake merged it, before defaults are filled in.
    schema : dict
        The config schema, as loaded from its YAML file.

    Raises
    ------
    ValueError
        One line per problem, in config order: ``unknown config key 'batchsize'
        at models.dot (did you mean 'batch_size'?)``, ``unknown config key
        'momentum' at models.dot.phases[0] (known: lr, epochs)``,
        ``models.dot.weight_decay is nan; expected a finite number``.
    """
    problems = []
    _walk(config, schema, validator_for(schema)(schema), (), problems)
    if problems:
        raise ValueError("\n".join(problems))


def _walk(value, node, validator, path, problems):
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{_place(path)} is {value}; expected a finite number")
        return
    facets = _facets(node, value, validator, set())
    if isinstance(value, dict):
        _walk_mapping(value, facets, validator, path, problems)
    elif isinstance(value, list):
        items = [f["items"] for f in facets if isinstance(f.get("items"), dict)]
        for i, element in enumerate(value):
            _walk(element, {"allOf": items}, validator, (*path, f"[{i}]"), problems)


def _walk_mapping(value, facets, validator, path, problems):
    named = {}
    for facet in facets:
        for name, sub in facet.get("properties", {}).items():
            named.setdefault(name, []).append(sub)
    extra = [f.get("additionalProperties") for f in facets]
    free = [schema for schema in extra if schema is not None and schema is not False]
    closed = not free and False in extra
    for key, sub_value in value.items():
        if key in named:
            subs = named[key]
        else:
            subs = [schema for schema in free if isinstance(schema, dict)]
            if closed:
                problems.append(_unknown(key, named, path))
        _walk(sub_value, {"allOf": subs}, validator, (*path, str(key)), problems)


def _facets(node, value, validator, seen):
    """The schema objects that apply to `value`: node, its $ref and its branches."""
    if not isinstance(node, dict) or id(node) in seen:
        return []
    seen.add(id(node))
    branches = []
    if isinstance(node.get("$ref"), str):
        branches.append(_resolve(node["$ref"], validator.schema))
    for keyword in ("allOf", "anyOf", "oneOf"):
        branches += node.get(keyword, [])
    if "if" in node:
        chosen = "then" if validator.evolve(schema=node["if"]).is_valid(value) else "else"
        branches.append(node.get(chosen))
    facets = [node]
    for branch in branches:
        facets += _facets(branch, value, validator, seen)
    return facets


def _resolve(ref, root):
    """The target of a local reference such as ``#/$defs/model`` (None if not local)."""
    if not ref.startswith("#/"):
        return None
    target = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            return None
        target = target[part]
    return target


def _unknown(key, named, path):
    known = [str(name) for name in named]
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known) or 'none'}"
    return f"unknown config key {key!r} at {_place(path)} ({hint})"


def _place(path):
    """``models.dot.phases[0]`` from ("models", "dot", "phases", "[0]")."""
    if not path:
        return "the top level"
    return "".join(p if p.startswith("[") or i == 0 else f".{p}" for i, p in enumerate(path))
