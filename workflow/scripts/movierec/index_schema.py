"""The columns and encoding of the index's Parquet files: the contract its readers rely on.

index_ratings writes ratings.parquet, users.parquet and movies.parquet with
these schemas; split_ratings reads ratings.parquet and writes its parts with
the same schema and encoding. One module, so both sides name one contract.
"""

import pyarrow as pa

RATINGS_SCHEMA = pa.schema(
    [
        ("user", pa.int32()),
        ("movie", pa.int32()),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
    ]
)
USERS_SCHEMA = pa.schema([("user", pa.int32()), ("userId", pa.int64()), ("n_ratings", pa.int64())])
MOVIES_SCHEMA = pa.schema(
    [
        ("movie", pa.int32()),
        ("movieId", pa.int64()),
        ("title", pa.string()),
        ("genres", pa.string()),
        ("year", pa.int32()),
        ("n_ratings", pa.int64()),
        ("mean_rating", pa.float64()),
    ]
)
# How ratings.parquet is encoded. Parquet's defaults (dictionary + snappy on every
# column) take 2-3x longer on 25M rows, most of it spent on timestamps and movie
# codes that neither dictionary nor snappy shrink much; measured on the synthetic
# 25m file: defaults ~2.5 s / 215 MiB, these ~1.0 s / 303 MiB.
RATINGS_PARQUET = {
    "use_dictionary": ["rating"],  # ten distinct values
    "compression": {"user": "snappy", "movie": "none", "rating": "snappy", "timestamp": "none"},
}
