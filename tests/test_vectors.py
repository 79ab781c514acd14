"""Movie vectors as Parquet: what training writes for the reports, read without torch."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from movierec import models, vectors
from schema_defaults import model_block


@pytest.mark.parametrize("arch", ["dot", "mlp"])
def test_a_models_movie_vectors_round_trip(tmp_path, arch):
    model = models.build_model(
        model_block(arch=arch, n_factors=5, hidden=[4], dropouts=[0.0]), 3, 7
    )
    embedding, bias = vectors.model_vectors(model)
    assert embedding.shape == (7, 5) and (bias is None) == (arch == "mlp")
    path = tmp_path / "movie_vectors.parquet"
    vectors.write_movie_vectors(path, embedding, bias)
    got_embedding, got_bias = vectors.read_movie_vectors(path)
    np.testing.assert_allclose(got_embedding, embedding, rtol=1e-6)  # stored as float32
    assert got_bias is None if bias is None else np.allclose(got_bias, bias)
    assert [p.name for p in tmp_path.iterdir()] == ["movie_vectors.parquet"]  # no temporary left


def test_a_damaged_vectors_file_is_named(tmp_path):
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table({"movie": [0, 1]}), path)
    with pytest.raises(ValueError, match=r"v.parquet: no 'embedding' column"):
        vectors.read_movie_vectors(path)
    vectors.write_movie_vectors(path, np.zeros((3, 2)))
    table = pq.read_table(path)
    pq.write_table(table.take([2, 0, 1]), path)
    with pytest.raises(ValueError, match=r"rows must be movies 0..2 in order"):
        vectors.read_movie_vectors(path)
