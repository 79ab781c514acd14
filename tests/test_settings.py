"""Typed model settings, and the pretrain -> finetune edges checked at parse time."""

import dataclasses

import pytest
from movierec import settings
from schema_defaults import model_block


def test_typed_settings_round_trip_a_block():
    block = model_block(arch="hybrid", negatives={"per_rating": 2}, pretrain={"arch": "mlp"})
    typed = settings.ModelSettings.from_block(block)
    assert typed.loss_weights == settings.LossWeights(linear=0.2, dot=1.0)  # the schema's
    assert typed.pretrain.hidden == (100, 100, 50) and typed.negatives.rating == 0.5
    assert typed.as_block() == block
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.n_factors = 3


def edges(**blocks):
    return settings.init_sources({name: model_block(b) for name, b in blocks.items()})


def test_init_sources_name_each_models_start():
    got = edges(
        hybrid={"arch": "hybrid"},
        h_dot={"arch": "dot", "init_from": "hybrid"},
        chain={"arch": "dot", "init_from": "h_dot"},
        m_dot={"arch": "dot", "pretrain": {"arch": "mlp"}},
        plain={"arch": "dot"},
    )
    assert got == {
        "hybrid": None,
        "h_dot": ("model", "hybrid"),
        "chain": ("model", "h_dot"),
        "m_dot": ("pretrain", None),
        "plain": None,
    }


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (
            {"a": {"arch": "dot", "init_from": "hybird"}},
            "models.a: init_from 'hybird' is not a model",
        ),
        (
            {
                "h": {"arch": "hybrid"},
                "a": {"arch": "dot", "init_from": "h", "pretrain": {"arch": "mlp"}},
            },
            "models.a: init_from \\(h\\) and pretrain are exclusive",
        ),
        (
            {"h": {"arch": "hybrid", "n_factors": 8}, "a": {"arch": "dot", "init_from": "h"}},
            "models.a: n_factors 50 differs from h's n_factors 8",
        ),
        (
            {"a": {"arch": "dot", "init_from": "b"}, "b": {"arch": "dot", "init_from": "a"}},
            "init_from forms a cycle: a -> b -> a",
        ),
    ],
)
def test_bad_init_edges_are_named(blocks, message):
    with pytest.raises(ValueError, match=message):
        edges(**blocks)


def test_an_average_from_past_the_schedule_fails_at_parse_time_naming_the_block():
    two = [{"lr": 0.01, "epochs": 2}]
    settings.check_averaging({"dot": model_block(arch="dot", phases=two, average_from=2)})
    with pytest.raises(ValueError, match=r"models\.dot: average_from 3 is past .* 2 epochs"):
        settings.check_averaging({"dot": model_block(arch="dot", phases=two, average_from=3)})
    pretrain = model_block(arch="mlp", phases=two, average_from=5)
    with pytest.raises(ValueError, match=r"models\.m\.pretrain: average_from 5 is past"):
        settings.check_averaging({"m": model_block(arch="dot", pretrain=pretrain)})
