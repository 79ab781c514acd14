"""Typed model settings: one frozen dataclass per block, built from the validated config.

The schema (workflow/schemas/config.schema.yaml) is the one source of every
default. Snakemake validates config.yaml against it when the workflow is
parsed and fills the defaults in, so a rule's ``params.settings`` is a
complete block. `ModelSettings.from_block` turns such a block into typed,
immutable settings; it refuses a block with missing or unknown keys instead
of defaulting them a second time (code outside the workflow, such as the
tests, fills a partial block from the schema first). Nor does it check
values again: the schema did.
"""

import dataclasses
from dataclasses import dataclass

#: The schema's optional keys of a model block: absent means none.
OPTIONAL = ("negatives", "pretrain")

SCHEMA = "workflow/schemas/config.schema.yaml"


@dataclass(frozen=True)
class Phase:
    """One stretch of the learning-rate schedule."""

    lr: float
    epochs: int


@dataclass(frozen=True)
class LossWeights:
    """The hybrid's weights of its linear-head and dot-head MSE losses."""

    linear: float
    dot: float


@dataclass(frozen=True)
class Negatives:
    """Sampled negatives (movierec.negatives): train to rank as well as to rate."""

    per_rating: int
    rating: float
    relevant_rating: float


@dataclass(frozen=True)
class ModelSettings:
    """A ``models.<name>`` block (or its ``pretrain`` block); see the schema for each key."""

    arch: str
    n_factors: int
    hidden: tuple[int, ...]
    dropouts: tuple[float, ...]
    loss_weights: LossWeights
    batch_size: int
    phases: tuple[Phase, ...]
    weight_decay: float
    implicit_weight_decay: float
    bias_weight_decay: float | None
    y_range: tuple[float, float] | None
    seed: int
    patience: int | None
    average_from: int | None
    device: str
    engine: str
    init_from: str | None
    negatives: Negatives | None = None
    pretrain: "ModelSettings | None" = None

    @classmethod
    def from_block(cls, block, where="model block"):
        """Typed settings from a complete, schema-validated block.

        Raises
        ------
        ValueError
            Naming `where` and the keys, if any key is missing (the schema
            fills them in) or unknown.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in block and n not in OPTIONAL]
        unknown = sorted(set(block) - set(names))
        if missing or unknown:
            problems = [f"missing {', '.join(missing)}"] if missing else []
            problems += [f"unknown {', '.join(unknown)}"] if unknown else []
            raise ValueError(
                f"{where}: {'; '.join(problems)} (a model block is complete once {SCHEMA} "
                "has filled its defaults in, as the workflow does when it reads the config)"
            )
        negatives, pretrain = block.get("negatives"), block.get("pretrain")
        return cls(
            arch=str(block["arch"]),
            n_factors=int(block["n_factors"]),
            hidden=tuple(int(h) for h in block["hidden"]),
            dropouts=tuple(float(p) for p in block["dropouts"]),
            loss_weights=LossWeights(**{k: float(v) for k, v in block["loss_weights"].items()}),
            batch_size=int(block["batch_size"]),
            phases=tuple(Phase(float(p["lr"]), int(p["epochs"])) for p in block["phases"]),
            weight_decay=float(block["weight_decay"]),
            implicit_weight_decay=float(block["implicit_weight_decay"]),
            bias_weight_decay=None
            if block["bias_weight_decay"] is None
            else float(block["bias_weight_decay"]),
            y_range=None if block["y_range"] is None else tuple(float(v) for v in block["y_range"]),
            seed=int(block["seed"]),
            patience=None if block["patience"] is None else int(block["patience"]),
            average_from=None if block["average_from"] is None else int(block["average_from"]),
            device=str(block["device"]),
            engine=str(block["engine"]),
            init_from=block["init_from"],
            negatives=None if negatives is None else Negatives(**negatives),
            pretrain=None if pretrain is None else cls.from_block(pretrain, f"{where}.pretrain"),
        )

    def as_block(self):
        """The block as config.yaml writes it (lists, no absent optional keys): JSON-ready."""

        def plain(value):
            if isinstance(value, ModelSettings):
                return value.as_block()
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if dataclasses.is_dataclass(value):
                return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            return value

        block = {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {k: v for k, v in block.items() if not (k in OPTIONAL and v is None)}


def check_averaging(models):
    """Each block's ``average_from`` (and its pretrain's) falls within its schedule.

    Checked when the workflow is parsed: a --configfile that shortens ``phases``
    would otherwise leave config.yaml's ``average_from`` past the last epoch,
    and the job fail only once it starts (`movierec.training.fit` refuses it).

    Raises
    ------
    ValueError
        Naming the block, its ``average_from`` and its number of epochs.
    """
    blocks = [(f"models.{name}", block) for name, block in models.items()]
    blocks += [(f"{where}.pretrain", b["pretrain"]) for where, b in blocks if b.get("pretrain")]
    for where, block in blocks:
        start = block.get("average_from")
        epochs = sum(int(p["epochs"]) for p in block["phases"])
        if start is not None and start > epochs:
            raise ValueError(
                f"{where}: average_from {start} is past the last of its {epochs} epochs "
                "(phases), so nothing would be averaged; lower it, or set it to null"
            )


def init_sources(models):
    """Model -> where its initial embeddings come from: ``("pretrain", None)``,
    ``("model", name)`` or None; the pretrain -> finetune edges of the DAG.

    Checked when the workflow is parsed, so a bad edge fails before any job.

    Raises
    ------
    ValueError
        Naming the model, if ``init_from`` names no model or forms a cycle,
        a block has both ``init_from`` and ``pretrain``, or the two ends of
        an edge differ in ``n_factors`` (the tables are copied).
    """
    sources = {}
    for name, block in models.items():
        source, pretrain = block.get("init_from"), block.get("pretrain")
        if source is not None and pretrain is not None:
            raise ValueError(
                f"models.{name}: init_from ({source}) and pretrain are exclusive; a model "
                "starts from another model's checkpoint or from its own pretrain stage"
            )
        if source is not None and source not in models:
            raise ValueError(
                f"models.{name}: init_from {source!r} is not a model; known: {', '.join(models)}"
            )
        start = pretrain if pretrain is not None else models.get(source)
        if start is not None and start["n_factors"] != block["n_factors"]:
            what = "its pretrain's" if pretrain is not None else f"{source}'s"
            raise ValueError(
                f"models.{name}: n_factors {block['n_factors']} differs from {what} "
                f"n_factors {start['n_factors']}; the embeddings are copied, so both must be equal"
            )
        sources[name] = (
            ("pretrain", None) if pretrain is not None else ("model", source) if source else None
        )
    for name in models:
        seen, current = [name], models[name].get("init_from")
        while current is not None:
            if current in seen:
                raise ValueError(
                    f"models: init_from forms a cycle: {' -> '.join(seen + [current])}"
                )
            seen.append(current)
            current = models[current].get("init_from")
    return sources
