"""index_ratings: every release format, the data contract, and every bad input.

Fixture files are written by the tests (small, with the quirks of the real
releases: CRLF, no timestamp column, latin-1 titles, quoted commas); one test
reads the real ml-1m movies.dat from the shared formats sample.
"""

import logging
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import FORMATS
from movierec import formats
from movierec.formats import lines, typed_csv
from movierec.index import YEAR, index_ratings

OUTPUTS = ("ratings.parquet", "users.parquet", "movies.parquet")
CSV_SPEC = {
    "format": "csv",
    "ratings": "ratings.csv",
    "movies": "movies.csv",
    "rating_scale": [0.5, 5.0],
}
DAT_SPEC = {
    "format": "dat",
    "ratings": "ratings.dat",
    "movies": "movies.dat",
    "rating_scale": [1.0, 5.0],
}
ML100K_SPEC = {
    "format": "ml-100k",
    "ratings": "u.data",
    "movies": "u.item",
    "rating_scale": [1.0, 5.0],
}

MOVIES_CSV = (
    "movieId,title,genres\r\n"
    "1,Toy Story (1995),Adventure|Animation\r\n"
    '2,"Misérables, Les (1995)",Drama|War\r\n'
    "5,Babylon 5,(no genres listed)\r\n"  # no year
    "7,Unrated Movie (1999),Comedy\r\n"  # never rated: left out
    "10,Trailing Spaces (2001)   ,Drama\r\n"
    "20,Show (2006-2007),Drama\r\n"
)
RATINGS_CSV = (
    "userId,movieId,rating,timestamp\r\n"
    "10,20,4.5,1000\r\n"
    "3,1,3.0,1001\r\n"
    "10,1,5.0,1002\r\n"
    "3,2,0.5,1003\r\n"
    "7,5,2.0,1004\r\n"
    "7,99,1.0,1005\r\n"  # movie 99 has no metadata row: kept, null title
    "3,10,4.0,1006\r\n"
)


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def run(raw, spec=CSV_SPEC, duplicates="error", out=None):
    out = out or raw.parent / "out"
    index_ratings(raw, spec, duplicates, *(out / name for name in OUTPUTS))
    return tuple(pq.read_table(out / name) for name in OUTPUTS)


def csv_release(tmp_path, ratings=RATINGS_CSV, movies=MOVIES_CSV):
    raw = tmp_path / "raw"
    write(raw / "ratings.csv", ratings)
    write(raw / "movies.csv", movies)
    return raw


def check_contract(ratings, users, movies):
    """Types, contiguity and order that every later rule relies on."""
    assert ratings.schema == pa.schema(
        [
            ("user", pa.int32()),
            ("movie", pa.int32()),
            ("rating", pa.float32()),
            ("timestamp", pa.int64()),
        ]
    )
    assert users.schema.names == ["user", "userId", "n_ratings"]
    assert movies.schema.names == [
        "movie",
        "movieId",
        "title",
        "genres",
        "year",
        "n_ratings",
        "mean_rating",
    ]
    assert users["user"].type == pa.int32() and movies["movie"].type == pa.int32()
    assert movies["year"].type == pa.int32()
    for table in (ratings, users, movies):
        assert table.schema.pandas_metadata is None  # no pandas index stored
    user = ratings["user"].to_numpy()
    movie = ratings["movie"].to_numpy()
    assert users["user"].to_pylist() == list(range(users.num_rows))
    assert movies["movie"].to_pylist() == list(range(movies.num_rows))
    assert set(np.unique(user)) == set(range(users.num_rows))  # contiguous, all used
    assert set(np.unique(movie)) == set(range(movies.num_rows))
    assert np.all(np.diff(users["userId"].to_numpy()) > 0)  # index order = sorted id
    assert np.all(np.diff(movies["movieId"].to_numpy()) > 0)
    assert users["n_ratings"].to_pylist() == np.bincount(user).tolist()
    assert movies["n_ratings"].to_pylist() == np.bincount(movie).tolist()


def original_ids(ratings, users, movies):
    """The ratings back in original ids, as (userId, movieId, rating, timestamp) rows."""
    uid = users["userId"].to_numpy()[ratings["user"].to_numpy()]
    mid = movies["movieId"].to_numpy()[ratings["movie"].to_numpy()]
    return list(
        zip(
            uid.tolist(),
            mid.tolist(),
            ratings["rating"].to_pylist(),
            ratings["timestamp"].to_pylist(),
            strict=True,
        )
    )


# --- formats -----------------------------------------------------------------------------


def test_csv_release(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="movierec")
    ratings, users, movies = run(csv_release(tmp_path))
    check_contract(ratings, users, movies)
    assert original_ids(ratings, users, movies) == [
        (10, 20, 4.5, 1000),
        (3, 1, 3.0, 1001),
        (10, 1, 5.0, 1002),
        (3, 2, 0.5, 1003),
        (7, 5, 2.0, 1004),
        (7, 99, 1.0, 1005),
        (3, 10, 4.0, 1006),
    ]
    assert users.to_pydict() == {"user": [0, 1, 2], "userId": [3, 7, 10], "n_ratings": [3, 2, 2]}
    assert movies["movieId"].to_pylist() == [1, 2, 5, 10, 20, 99]  # 7 unrated: left out
    assert movies["title"].to_pylist() == [
        "Toy Story (1995)",
        "Misérables, Les (1995)",
        "Babylon 5",
        "Trailing Spaces (2001)   ",
        "Show (2006-2007)",
        None,
    ]
    assert movies["year"].to_pylist() == [1995, 1995, None, 2001, 2006, None]
    assert movies["genres"].to_pylist()[:3] == [
        "Adventure|Animation",
        "Drama|War",
        "(no genres listed)",
    ]
    assert movies["genres"][5].as_py() is None
    assert movies["mean_rating"].to_pylist() == pytest.approx([4.0, 0.5, 2.0, 4.0, 4.5, 1.0])
    assert "left out 1 movies" in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "1 ratings of 1 movies have no row" in warnings[0].message


def test_csv_without_timestamp_column(tmp_path):
    """The 2017 notebook's sample: userId,movieId,rating and nothing else."""
    text = "userId,movieId,rating\n2,1,3.5\n1,2,4\n1,1,2.5\n"
    ratings, users, movies = run(csv_release(tmp_path, ratings=text))
    check_contract(ratings, users, movies)
    assert ratings["timestamp"].null_count == 3
    assert ratings["timestamp"].type == pa.int64()
    assert original_ids(ratings, users, movies) == [
        (2, 1, 3.5, None),
        (1, 2, 4.0, None),
        (1, 1, 2.5, None),
    ]


def test_dat_release_latin1_crlf(tmp_path):
    raw = tmp_path / "raw"
    write(
        raw / "ratings.dat",
        "6::73::5::978300760\r\n1::648::3::978302109\r\n\r\n6::1::4::978301968\r\n",
    )
    write(
        raw / "movies.dat",
        "1::Toy Story (1995)::Animation|Children's|Comedy\r\n"
        "73::Misérables, Les (1995)::Drama|Musical\r\n"
        "648::Mission: Impossible (1996)::Action|Adventure|Mystery\r\n"
        "999::Unrated (2000)::Drama\r\n",
        encoding="latin-1",
    )
    ratings, users, movies = run(raw, DAT_SPEC)
    check_contract(ratings, users, movies)
    assert original_ids(ratings, users, movies) == [
        (6, 73, 5.0, 978300760),
        (1, 648, 3.0, 978302109),
        (6, 1, 4.0, 978301968),
    ]
    assert movies.select(["movieId", "title", "genres", "year"]).to_pylist() == [
        {
            "movieId": 1,
            "title": "Toy Story (1995)",
            "genres": "Animation|Children's|Comedy",
            "year": 1995,
        },
        {"movieId": 73, "title": "Misérables, Les (1995)", "genres": "Drama|Musical", "year": 1995},
        {
            "movieId": 648,
            "title": "Mission: Impossible (1996)",
            "genres": "Action|Adventure|Mystery",
            "year": 1996,
        },
    ]


def test_ml100k_release(tmp_path):
    raw = tmp_path / "raw"
    write(
        raw / "u.data", "196\t242\t3\t881250949\r\n186\t302\t3\t891717742\n22\t242\t1\t878887116\n"
    )
    flags = ["0"] * 19
    crime_thriller = list(flags)
    crime_thriller[6] = crime_thriller[16] = "1"
    unknown = list(flags)
    unknown[0] = "1"
    write(
        raw / "u.item",
        "242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|"
        + "|".join(["0"] * 5 + ["1"] + ["0"] * 13)
        + "\r\n"
        "302|L.A. Confidential (1997)|01-Jan-1997||http://x|" + "|".join(crime_thriller) + "\n"
        "1|Misérables (1995)|01-Jan-1995||http://y|" + "|".join(unknown) + "\n",
        encoding="latin-1",
    )
    ratings, users, movies = run(raw, ML100K_SPEC)
    check_contract(ratings, users, movies)
    assert original_ids(ratings, users, movies) == [
        (196, 242, 3.0, 881250949),
        (186, 302, 3.0, 891717742),
        (22, 242, 1.0, 878887116),
    ]
    assert movies.select(["movieId", "title", "genres", "year"]).to_pylist() == [
        {"movieId": 242, "title": "Kolya (1996)", "genres": "Comedy", "year": 1996},
        {
            "movieId": 302,
            "title": "L.A. Confidential (1997)",
            "genres": "Crime|Thriller",
            "year": 1997,
        },
    ]


def test_ml100k_movie_without_genre_flags(tmp_path):
    table, _ = formats.read_movies(
        "ml-100k", write(tmp_path / "u.item", "5|Nothing (1990)|||x|" + "|".join(["0"] * 19) + "\n")
    )
    assert table["genres"].to_pylist() == [formats.NO_GENRES]


def test_real_ml1m_movies_dat():
    """The real ml-1m movies.dat (latin-1, titles with `::`-free colons) reads whole."""
    path = FORMATS / "ml-1m" / "movies.dat"
    table, source = formats.read_movies("dat", path)
    assert table.num_rows == sum(1 for line in path.read_bytes().splitlines() if line.strip())
    assert table.num_rows == 3883
    rows = {r["movieId"]: r for r in table.to_pylist()}
    assert rows[73]["title"] == "Misérables, Les (1995)"
    assert rows[73]["genres"] == "Drama|Musical"
    assert rows[648]["title"] == "Mission: Impossible (1996)"
    assert rows[1]["genres"] == "Animation|Children's|Comedy"
    assert table["movieId"].type == pa.int64()
    assert len(set(table["movieId"].to_pylist())) == table.num_rows
    assert source.line_of(72) == 73  # movie 73 is on line 73 of the file


def test_index_order_is_deterministic(tmp_path):
    """Shuffled rows give the same users and movies, and the same ratings once reordered."""
    rng = np.random.default_rng(0)
    pairs = rng.choice(40 * 30, size=300, replace=False)
    rows = [f"{1000 - 7 * (p // 30)},{3 * (p % 30) + 1},{1 + p % 9 / 2},{p}" for p in pairs]
    header = "userId,movieId,rating,timestamp\n"
    movies = "movieId,title,genres\n" + "".join(
        f"{3 * k + 1},M{k} (2000),Drama\n" for k in range(30)
    )
    first = run(csv_release(tmp_path / "a", header + "\n".join(rows) + "\n", movies))
    again = run(csv_release(tmp_path / "b", header + "\n".join(rows) + "\n", movies))
    shuffled = [rows[k] for k in rng.permutation(len(rows))]
    other = run(csv_release(tmp_path / "c", header + "\n".join(shuffled) + "\n", movies))
    check_contract(*first)
    check_contract(*other)
    assert all(a.equals(b) for a, b in zip(first, again, strict=True))
    assert first[1].equals(other[1]) and first[2].equals(other[2])
    assert sorted(original_ids(*first)) == sorted(original_ids(*other))
    assert first[0].num_rows == 300


def test_keep_latest_keeps_greatest_timestamp(tmp_path, caplog):
    text = (
        "userId,movieId,rating,timestamp\n1,1,1.0,50\n1,2,2.0,10\n1,1,3.0,70\n"
        "1,1,2.5,60\n2,2,4.0,5\n1,2,5.0,10\n"
    )
    movies = "movieId,title,genres\n1,A (2000),Drama\n2,B (2001),Drama\n"
    with caplog.at_level(logging.WARNING, logger="movierec"):
        ratings, users, movies_t = run(
            csv_release(tmp_path, text, movies), duplicates="keep_latest"
        )
    check_contract(ratings, users, movies_t)
    # (1,1): timestamp 70 wins; (1,2): tie at 10, the later line wins; rows keep file order.
    assert original_ids(ratings, users, movies_t) == [
        (1, 1, 3.0, 70),
        (2, 2, 4.0, 5),
        (1, 2, 5.0, 10),
    ]
    assert "dropped 3 repeated" in caplog.text
    assert movies_t["mean_rating"].to_pylist() == [3.0, 4.5]


def test_line_locator_across_chunks(tmp_path, monkeypatch):
    """Line numbers stay right when blank lines, CRLF and quoted newlines straddle chunks."""
    text = (
        'movieId,title,genres\r\n\r\n1,"A\r\nmulti-line, title (1990)",Drama\r\n'
        '\r\n2,"Quote ""x"" (1991)",Drama\r\n\n\n3,C (1992),Drama\r\nx,D (1993),Drama\r\n'
    )
    path = write(tmp_path / "movies.csv", text)
    for chunk in (3, 7, 1 << 24):
        monkeypatch.setattr(lines, "CHUNK_BYTES", chunk)
        source = formats.Source(path, True, True, "movieId,title,genres")
        assert [source.line_of(r) for r in range(4)] == [3, 6, 9, 10]
        assert source.locate(3) == (10, "x,D (1993),Drama")
        with pytest.raises(ValueError, match=r"movies\.csv, line 10: movieId 'x' is not"):
            formats.read_movies("csv", path)


# --- encodings: UTF-8, pure latin-1, and files that mix them -----------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "text"),
    [
        ("csv", "movies.csv", 'movieId,title,genres\n1,Léon (1994),Drama\n2,"Café, Le",Drama\n'),
        ("dat", "movies.dat", "1::Léon (1994)::Drama\r\n2::Café (1995)::Drama\r\n"),
    ],
)
def test_pure_latin1_movies_decode(tmp_path, caplog, fmt, name, text):
    """No valid multi-byte UTF-8 anywhere: the whole file is latin-1, every title intact."""
    caplog.set_level(logging.INFO, logger="movierec")
    table, _ = formats.read_movies(fmt, write(tmp_path / name, text, encoding="latin-1"))
    assert table["title"].to_pylist() == [
        "Léon (1994)",
        "Café, Le" if fmt == "csv" else "Café (1995)",
    ]
    assert "(latin-1)" in caplog.text


def test_real_ml1m_movies_dat_is_latin1(caplog):
    """The real ml-1m movies.dat is pure latin-1: decoded as such, accents on any line."""
    caplog.set_level(logging.INFO, logger="movierec")
    path = FORMATS / "ml-1m" / "movies.dat"
    raw = path.read_bytes()
    assert any(byte > 127 for byte in raw)  # accented titles, all latin-1
    table, _ = formats.read_movies("dat", path)
    titles = table["title"].to_pylist()
    expected = [line.split(b"::")[1].decode("latin-1") for line in raw.splitlines() if line]
    assert titles == expected
    assert not any("Ã" in title for title in titles)
    assert f"{path}: 3883 movies (latin-1)" in caplog.text


MIXED_MOVIES = {
    "csv": (
        "movies.csv",
        "movieId,title,genres\r\n1,Léon (1994),Drama\r\n".encode()
        + b'2,"Caf\xe9, Le (1995)",Drama\r\n'
        + "3,Amélie (2001),Comedy\r\n".encode(),
        3,
        2,
    ),
    "dat": (
        "movies.dat",
        b"1::Toy Story (1995)::Animation\n2::Caf\xe9 (1995)::Drama\n"
        + "3::Amélie (2001)::Comedy\n".encode(),
        2,
        3,  # the UTF-8 text comes after the bad byte
    ),
}


@pytest.mark.parametrize("fmt", sorted(MIXED_MOVIES))
def test_utf8_movies_with_a_latin1_byte_fail(tmp_path, fmt):
    """One latin-1 byte in a UTF-8 file: an error naming line, offset and byte, not mojibake."""
    name, data, line, utf8_line = MIXED_MOVIES[fmt]
    spec = {"csv": CSV_SPEC, "dat": DAT_SPEC}[fmt]
    raw = tmp_path / "raw"
    write(
        raw / spec["ratings"], "userId,movieId,rating\n1,1,4\n" if fmt == "csv" else "1::1::4::1\n"
    )
    write(raw / name, data)
    offset = data.index(b"\xe9")
    expect_failure(
        raw,
        spec,
        name,
        line,
        rf"byte 0xe9 at byte offset {offset} is not valid UTF-8, but line {utf8_line} holds "
        r"UTF-8 text .*mixes encodings.*expected UTF-8",
    )


RATINGS_HEADER = b"userId,movieId,rating,timestamp\n"
LATIN1_RATINGS = {
    "csv id": (CSV_SPEC, "ratings.csv", RATINGS_HEADER + b"1,1,4.0,1\r\n\r\n1,3\xe9,4.0,1\r\n", 4),
    "csv rating": (CSV_SPEC, "ratings.csv", RATINGS_HEADER + b"1,1,4.0,1\n1,3,4.\xe9,1\n", 3),
    "dat id": (DAT_SPEC, "ratings.dat", b"1::1::4::1\n2::2\xe9::3::1\n", 2),
    "ml-100k timestamp": (ML100K_SPEC, "u.data", b"1\t1\t4\t1\n2\t2\t3\t1\xe9\n", 2),
}


@pytest.mark.parametrize("case", sorted(LATIN1_RATINGS))
def test_latin1_byte_in_ratings_names_the_line(tmp_path, case):
    spec, name, data, line = LATIN1_RATINGS[case]
    raw = tmp_path / "raw"
    members = {"csv": MOVIES_CSV, "dat": "1::A (1990)::Drama\n", "ml-100k": ""}
    write(raw / spec["movies"], members[spec["format"]])
    write(raw / name, data)
    offset = data.index(b"\xe9")
    expect_failure(raw, spec, name, line, rf"byte 0xe9 at byte offset {offset} is not valid UTF-8")


def test_first_non_utf8_across_chunks(tmp_path, monkeypatch):
    """The chunked scan finds the same line and offset whatever the chunk size."""
    good = "1,Léon € 😀 (1994),Drama\n".encode()  # 2-, 3- and 4-byte sequences
    data = good * 3 + b"\n2,Caf\xe9,Drama\n" + good
    path = write(tmp_path / "movies.csv", data)
    for chunk in (1, 2, 3, 5, 7, 64, 1 << 24):
        monkeypatch.setattr(lines, "CHUNK_BYTES", chunk)
        assert lines.first_non_utf8(path) == (5, "2,Caf\ufffd,Drama", data.index(b"\xe9"), 0xE9)
    write(path, good * 3)
    assert lines.first_non_utf8(path) is None


# --- bad input: a ValueError naming file, line and value; no output --------------------

HEADER = "userId,movieId,rating,timestamp\n"
BAD_CSV_RATINGS = {
    "renamed column": ("userId,movie,rating,timestamp\n1,1,4,1\n", 1, "movie"),
    "missing column": ("userId,movieId,timestamp\n1,1,1\n", 1, "rating"),
    "non-numeric userId": (HEADER + "1,1,4,1\n\nabc,2,3,1\n", 4, "'abc'"),
    "non-numeric id, extra column": ("userId,extra,movieId,rating\n1,a,1,4\n1,b,zz,4\n", 3, "'zz'"),
    "non-numeric movieId": (HEADER + "1,1,4,1\r\n1,2.5,3,1\r\n", 3, "'2.5'"),
    "non-numeric rating": (HEADER + "1,1,4,1\n1,2,four,1\n", 3, "'four'"),
    "non-numeric timestamp": (HEADER + "1,1,4,1\n1,2,3,yesterday\n", 3, "'yesterday'"),
    "rating above scale": (HEADER + "1,1,4,1\n1,2,5.5,1\n", 3, "5.5"),
    "rating below scale": (HEADER + "1,1,4,1\n\n\n1,2,0,1\n", 5, "rating 0 "),
    "NaN rating": (HEADER + "1,1,4,1\n1,2,NaN,1\n", 3, "NaN"),
    "empty rating": (HEADER + "1,1,4,1\n1,2,,1\n", 3, "'1,2,,1'"),
    "empty userId": (HEADER + "1,1,4,1\n,2,3,1\n", 3, "',2,3,1'"),
    "too few fields": (HEADER + "1,1,4,1\n\n1,2,3\n", 4, "'1,2,3'"),
    "too many fields": (HEADER + "1,1,4,1\n1,2,3,1,9\n", 3, "'1,2,3,1,9'"),
    "empty file": ("", 1, "empty"),
    "header only": (HEADER, 2, "no ratings"),
    "duplicate pair": (HEADER + "1,1,4,1\n2,1,4,1\n1,1,3,2\n", 4, r"\(1, 1\) repeats line 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV_RATINGS))
def test_bad_csv_ratings(tmp_path, case):
    text, line, value = BAD_CSV_RATINGS[case]
    raw = csv_release(tmp_path, ratings=text)
    expect_failure(raw, CSV_SPEC, "ratings.csv", line, value)


def expect_failure(raw, spec, name, line, value, duplicates="error"):
    out = raw.parent / "out"
    with pytest.raises(ValueError) as err:
        index_ratings(raw, spec, duplicates, *(out / n for n in OUTPUTS))
    message = str(err.value)
    assert str(raw / name) in message
    if line is not None:
        assert f", line {line}:" in message
    assert re.search(value, message), message
    assert "expected" in message
    assert not out.exists() or list(out.iterdir()) == []  # nothing left behind, not even temps


BAD_MOVIES_CSV = {
    "renamed column": ("movieId,name,genres\n1,A,Drama\n", 1, "title"),
    "non-numeric movieId": ("movieId,title,genres\n1,A,Drama\n\nm2,B,Drama\n", 4, "'m2'"),
    "repeated movieId": ("movieId,title,genres\n1,A,Drama\n1,B,Drama\n", 3, "repeats line 2"),
    "empty file": ("", 1, "empty"),
    "too few fields": ('movieId,title,genres\n1,"A, b",Drama\n2,B\n', 3, "'2,B'"),
}


@pytest.mark.parametrize("case", sorted(BAD_MOVIES_CSV))
def test_bad_csv_movies(tmp_path, case):
    text, line, value = BAD_MOVIES_CSV[case]
    raw = csv_release(tmp_path, ratings=HEADER + "1,1,4,1\n", movies=text)
    expect_failure(raw, CSV_SPEC, "movies.csv", line, value)


BAD_DAT = {
    "non-numeric id": ("ratings.dat", "1::1::4::1\r\nx::2::3::1\r\n", 2, "'x'"),
    "single colon": ("ratings.dat", "1::1::4::1\n1:2::3::1\n", 2, "3 `::`-separated fields"),
    "stray field": ("ratings.dat", "1::1::4::1\n1:x:2::3::1\n", 2, "'x'"),
    "missing timestamp": ("ratings.dat", "1::1::4::1\n\n1::2::3\n", 3, "'1::2::3'"),
    "rating off scale": ("ratings.dat", "1::1::4::1\n1::2::0.5::1\n", 2, "0.5"),
    "empty file": ("ratings.dat", "", None, "empty"),
    "movie line": (
        "movies.dat",
        "1::A (1990)::Drama\n2::B (1991)\n",
        2,
        "2 `::`-separated fields, not 3",
    ),
    "movie id": ("movies.dat", "1::A (1990)::Drama\n\nB::B (1991)::Drama\n", 3, "'B'"),
}


@pytest.mark.parametrize("case", sorted(BAD_DAT))
def test_bad_dat(tmp_path, case):
    name, text, line, value = BAD_DAT[case]
    raw = tmp_path / "raw"
    write(raw / "ratings.dat", "1::1::4::1\n")
    write(raw / "movies.dat", "1::A (1990)::Drama\n")
    write(raw / name, text)
    expect_failure(raw, DAT_SPEC, name, line, value)


def test_bad_ml100k(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "u.data", "1\t1\t4\t1\n1\t2\t6\t1\n")
    write(raw / "u.item", "1|A (1990)||x|y|" + "|".join(["0"] * 19) + "\n")
    expect_failure(raw, ML100K_SPEC, "u.data", 2, "rating 6 ")
    write(raw / "u.data", "1\t1\t4\t1\n")
    write(raw / "u.item", "1|A (1990)||x|y|" + "|".join(["0"] * 18 + ["2"]) + "\n")
    expect_failure(raw, ML100K_SPEC, "u.item", 1, "genre flag 19 \\(Western\\) is 2")


def test_keep_latest_needs_timestamps(tmp_path):
    raw = csv_release(tmp_path, ratings="userId,movieId,rating\n1,1,4\n1,1,3\n")
    expect_failure(raw, CSV_SPEC, "ratings.csv", 3, "no timestamps", duplicates="keep_latest")


def test_missing_member_file(tmp_path):
    raw = csv_release(tmp_path)
    (raw / "movies.csv").rename(raw / "films.csv")
    expect_failure(raw, CSV_SPEC, "movies.csv", None, "missing.*found: films.csv, ratings.csv")


def test_output_kept_intact_on_failure(tmp_path):
    """A failing rerun leaves earlier outputs as they were (Snakemake removes them itself)."""
    raw = csv_release(tmp_path)
    run(raw)
    before = {n: (raw.parent / "out" / n).read_bytes() for n in OUTPUTS}
    write(raw / "ratings.csv", HEADER + "1,1,9,1\n")
    with pytest.raises(ValueError, match="outside the rating scale"):
        run(raw)
    assert {n: (raw.parent / "out" / n).read_bytes() for n in OUTPUTS} == before
    assert sorted(p.name for p in (raw.parent / "out").iterdir()) == sorted(OUTPUTS)


def test_bad_spec(tmp_path):
    raw = csv_release(tmp_path)
    with pytest.raises(ValueError, match="unknown format 'xml'.*csv, dat, ml-100k"):
        run(raw, dict(CSV_SPEC, format="xml"))
    with pytest.raises(ValueError, match="rating_scale"):
        run(raw, dict(CSV_SPEC, rating_scale=[5, 1]))


def test_the_schema_refuses_an_unknown_duplicates_policy():
    """index_ratings takes index.duplicates as the schema validated it; that is the check."""
    from schema_defaults import SCHEMA
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = {"dataset": "x", "datasets": {}, "models": {}, "index": {"duplicates": "drop"}}
    with pytest.raises(WorkflowError, match="'drop' is not one of"):
        validate(config, schema=str(SCHEMA))


def test_sparse_and_negative_ids(tmp_path):
    """Ids far apart (no counting pass possible) still index in sorted order."""
    text = HEADER + "".join(
        f"{u},{m},3,1\n" for u, m in [(10**15, 7), (-5, 7), (3, 10**12), (10**15, 10**12)]
    )
    movies = f"movieId,title,genres\n7,A (2000),Drama\n{10**12},B (2001),Drama\n"
    ratings, users, movies_t = run(csv_release(tmp_path, text, movies))
    check_contract(ratings, users, movies_t)
    assert users["userId"].to_pylist() == [-5, 3, 10**15]
    assert ratings["user"].to_pylist() == [2, 0, 1, 2]
    assert ratings["movie"].to_pylist() == [0, 0, 1, 1]
    assert movies_t["title"].to_pylist() == ["A (2000)", "B (2001)"]


@pytest.mark.slow
def test_rule_index_ratings(project):
    """The rule wires spec and policy through params; a bad file fails with the line in the log.

    The raw folder is placed by hand (a dataset whose release is already
    there), so this runs the index rule alone, without a download.
    """
    from conftest import snakemake

    write(
        project / "tiny.yaml",
        "datasets:\n  tiny-dat:\n    url: file:///nonexistent.zip\n"
        "    format: dat\n    ratings: rel/ratings.dat\n    movies: rel/movies.dat\n"
        "    rating_scale: [1, 5]\n",
    )
    raw = project / "results" / "tiny-dat" / "raw" / "rel"
    write(raw / "ratings.dat", "2::1::5::9\r\n1::1::3::8\r\n2::1::4::7\r\n")
    write(raw / "movies.dat", "1::Misérables, Les (1995)::Drama\r\n", encoding="latin-1")
    target = "results/tiny-dat/data/ratings.parquet"
    log = project / "results" / "tiny-dat" / "logs" / "index_ratings.log"

    failed = snakemake(project, target, "--configfile", "tiny.yaml", check=False, mirror=False)
    assert failed.returncode != 0
    assert "ratings.dat, line 3: (userId, movieId) = (2, 1) repeats line 1" in log.read_text()
    assert not (project / target).exists()

    snakemake(
        project,
        target,
        "--configfile",
        "tiny.yaml",
        "--config",
        "index={duplicates: keep_latest}",
        mirror=False,
    )
    data = project / "results" / "tiny-dat" / "data"
    ratings, users, movies = (pq.read_table(data / n) for n in OUTPUTS)
    check_contract(ratings, users, movies)
    assert original_ids(ratings, users, movies) == [(2, 1, 5.0, 9), (1, 1, 3.0, 8)]
    assert movies["title"].to_pylist() == ["Misérables, Les (1995)"]
    assert "dropped 1 repeated" in log.read_text()
    assert "(2 pyarrow threads)" in log.read_text()  # threads: reach pyarrow's CSV reader


def sorted_release(n_users=30, n_movies=25, seed=1):
    """A GroupLens-like file: rows sorted by user then movie, sparse ids, no repeats."""
    rng = np.random.default_rng(seed)
    pairs = np.sort(rng.choice(n_users * n_movies, size=n_users * n_movies // 2, replace=False))
    rows = [
        (7 * (p // n_movies) + 1, 11 * (p % n_movies) + 2, 0.5 + p % 10 / 2, 10**9 + p)
        for p in pairs.tolist()
    ]
    movies = "movieId,title,genres\n" + "".join(
        f"{11 * k + 2},M{k} ({1950 + k}),Drama\n" for k in range(n_movies)
    )
    return rows, movies


def as_csv(rows):
    return HEADER + "".join(f"{u},{m},{r},{t}\r\n" for u, m, r, t in rows)


@pytest.mark.parametrize("block", [1 << 24, 200])
def test_sorted_file_streams_in_batches(tmp_path, monkeypatch, block, caplog):
    """Sorted input is written batch by batch; small blocks make many row groups."""
    monkeypatch.setattr(typed_csv, "BLOCK_BYTES", block)
    rows, movies = sorted_release()
    with caplog.at_level(logging.INFO, logger="movierec"):
        ratings, users, movies_t = run(csv_release(tmp_path, as_csv(rows), movies))
    assert "indexed and wrote" in caplog.text and "not sorted" not in caplog.text
    check_contract(ratings, users, movies_t)
    assert original_ids(ratings, users, movies_t) == rows
    groups = pq.ParquetFile(tmp_path / "out" / "ratings.parquet").num_row_groups
    assert (groups > 5) == (block == 200)
    means = {}
    for _, m, r, _ in rows:
        means.setdefault(m, []).append(r)
    assert movies_t["mean_rating"].to_pylist() == pytest.approx(
        [np.mean(means[m]) for m in sorted(means)]
    )


@pytest.mark.parametrize("policy", ["error", "keep_latest"])
def test_order_breaks_after_streaming_started(tmp_path, monkeypatch, policy, caplog):
    """A late out-of-order row abandons the streamed file; the result is still complete."""
    monkeypatch.setattr(typed_csv, "BLOCK_BYTES", 200)
    rows, movies = sorted_release()
    if policy == "error":  # a new pair, out of order but not a repeat: all rows stay
        rows = [*rows, (1, 999, 3.0, 1)]
        kept = rows
    else:  # row 3 again (same timestamp) near the end: the later line wins
        rows = [*rows[:-1], rows[3], rows[-1]]
        kept = [row for k, row in enumerate(rows) if k != 3]
    with caplog.at_level(logging.INFO, logger="movierec"):
        ratings, users, movies_t = run(
            csv_release(tmp_path, as_csv(rows), movies), duplicates=policy
        )
    check_contract(ratings, users, movies_t)
    assert original_ids(ratings, users, movies_t) == kept
    assert "rows not sorted by user, movie" in caplog.text


@pytest.mark.parametrize(
    ("title", "year"),
    [
        ("Toy Story (1995)", 1995),
        ("Assembly (Ji jie hao) (2007) ", 2007),
        ("Show (2006-2007)", 2006),
        ("Show (2006–2007)", 2006),  # en dash, as in ml-latest
        ("Babylon 5", None),
        ("1984 (1956) extra", None),
        ("(500) Days of Summer (2009)", 2009),
    ],
)
def test_year_from_title(title, year):
    found = pc.struct_field(pc.extract_regex(pa.array([title]), YEAR), "year")
    assert pc.cast(found, pa.int32()).to_pylist() == [year]
