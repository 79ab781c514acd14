"""The parse-time plan of every sweep: its trials, each checked against the schema.

Used by the workflow (workflow/rules/common.smk) only, never by a rule's job,
so jsonschema (which Snakemake brings) is not needed in the rules' envs.
"""

from movierec.sweeps import apply_overrides, check_keys, sweep_trials


def plan_sweeps(sweeps_config, model_blocks, schema):
    """Sweep name -> {trial name: overrides}, after checking every sweep and every trial.

    Each sweep must name a model of `model_blocks` (model name -> its block
    without ``pretrain``), give exactly one of grid and random, and sweep known
    keys; every trial's settings must pass the schema's model definition, so a
    bad value (a negative weight_decay in a grid) is named before anything trains.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/model", "$defs": schema["$defs"]})
    plans = {}
    for name, sweep in sweeps_config.items():
        if sweep["model"] not in model_blocks:
            known = ", ".join(model_blocks)
            raise ValueError(
                f"sweeps.{name}: model {sweep['model']!r} is not under models: ({known})"
            )
        if ("grid" in sweep) == ("random" in sweep):
            got = "both" if "grid" in sweep else "neither"
            raise ValueError(f"sweeps.{name}: give exactly one of grid: or random: (got {got})")
        check_keys(name, sweep, schema["$defs"]["model"]["properties"])
        plans[name] = sweep_trials(sweep)
        for overrides in plans[name].values():
            settings = apply_overrides(model_blocks[sweep["model"]], overrides)
            error = jsonschema.exceptions.best_match(validator.iter_errors(settings))
            if error is not None:
                where = ".".join(str(p) for p in error.absolute_path) or "the block"
                raise ValueError(
                    f"sweeps.{name}: the trial {overrides} gives models.{sweep['model']} "
                    f"settings the schema rejects at {where}: {error.message}"
                )
    return plans
