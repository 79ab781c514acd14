"""The ``movierec`` command line: recommend (known and new users), similar, bad input.

Runs on tiny models trained on the planted dataset of test_foldin.py, in a
project directory laid out as Snakemake writes it; most calls go through
`cli.main` in-process, one through a subprocess as a user would run it.
"""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from movierec import cli, foldin, foldin_ridge
from movierec.similar import nearest_movies
from test_foldin import DATASET, GROUP, HELD_OUT, N_MOVIES, build_project, movie_id, user_id

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return build_project(tmp_path_factory.mktemp("cli") / "project", archs=("dot", "mlp"))


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Run from a directory outside the project: paths must resolve above MODEL_DIR."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *args):
    """`cli.main(args)` -> (exit status, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args):
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def rated(project, user):
    """Movies `user` rated in train and validation, read straight from the split files."""
    root, rel = project["root"], project["rel"]
    parts = [pd.read_parquet(root / rel[k]) for k in ("train", "val")]
    return {int(m) for p in parts for m in p.loc[p["user"] == user, "movie"]}


def write_csv(path, rows, header=True):
    lines = (["movieId,rating"] if header else []) + [f"{m},{r}" for m, r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- recommend --user ------------------------------------------------------------------------


def test_recommend_known_user(project, capsys, elsewhere):
    user = 7
    result = run_json(
        capsys, "recommend", project["models"]["dot"], "--user", user_id(user), "-n", 12
    )
    items = result["items"]
    assert result["for"] == {"userId": int(user_id(user)), "user": user}
    assert result["method"] == "trained" and result["arch"] == "dot"
    assert len(items) == 12 and [i["rank"] for i in items] == list(range(1, 13))
    seen = rated(project, user)
    assert result["n_excluded"] == len(seen)
    assert not seen & {i["movie"] for i in items}
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    # The best unseen movies: nothing left out scores higher than the last listed.
    everything = foldin_ridge.output_scale(
        foldin.trained_user(cli.ModelDir(project["models"]["dot"]).model, user).raw, (0.5, 5.5)
    )
    unseen = np.setdiff1d(np.arange(N_MOVIES), sorted(seen))
    assert np.sort(everything[unseen])[-12] == pytest.approx(scores[-1], abs=1e-5)
    for item in items:
        assert item["movieId"] == movie_id(item["movie"])
        assert item["title"].startswith(f"Planted movie {item['movie']} ")
        assert sum(item["parts"].values()) == pytest.approx(item["raw"], abs=1e-9)
        low, high = result["y_range"]
        rating = low + (high - low) / (1 + np.exp(-item["raw"]))
        assert rating == pytest.approx(item["score"], abs=1e-4)  # float32 ranking vs float64


def test_recommend_table_is_readable(project, capsys, monkeypatch):
    monkeypatch.chdir(project["root"])  # from the project root, MODEL_DIR relative to it
    model_dir = project["models"]["dot"].relative_to(project["root"])
    code, out, err = run(capsys, "recommend", model_dir, "--user", user_id(3), "-n", 5)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"Top 5 for userId {user_id(3)} (trained user 3)"
    assert "the parts add up" in out and "sigmoid(raw)" in out and "y_range" in out
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("rank"))
    assert lines[header].split() == [
        "rank", "movieId", "title", "score", "raw", "global", "user_b", "movie_b", "factor",
    ]  # fmt: skip
    rows = lines[header + 1 :]
    assert len(rows) == 5 and [r.split()[0] for r in rows] == ["1", "2", "3", "4", "5"]


def test_recommend_mlp_user_has_no_parts(project, capsys, elsewhere):
    result = run_json(capsys, "recommend", project["models"]["mlp"], "--user", user_id(4), "-n", 4)
    assert len(result["items"]) == 4 and all("parts" not in i for i in result["items"])
    assert not rated(project, 4) & {i["movie"] for i in result["items"]}
    code, out, _ = run(capsys, "recommend", project["models"]["mlp"], "--user", user_id(4))
    assert code == 0 and "does not split into parts" in out


# --- recommend --ratings ---------------------------------------------------------------------


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_recommend_new_user_from_csv(project, capsys, elsewhere, header):
    data = project["data"]
    rows = np.flatnonzero(data["user"] == HELD_OUT)[:15]
    pairs = list(
        zip(movie_id(data["movie"][rows]).tolist(), data["rating"][rows].tolist(), strict=True)
    )
    path = write_csv(elsewhere / "mine.csv", pairs, header=header)
    result = run_json(capsys, "recommend", project["models"]["dot"], "--ratings", path, "-n", 10)
    items = result["items"]
    assert result["for"] == {"ratings": str(path), "n_ratings": 15}
    assert result["method"] == "ridge+gauss-newton" and result["n_excluded"] == 15
    assert len(items) == 10
    assert not {m for m, _ in pairs} & {i["movieId"] for i in items}
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    for item in items:
        assert sum(item["parts"].values()) == pytest.approx(item["raw"], abs=1e-9)
    # The same user as the library folds in (the CLI passes the model's weight_decay).
    folded = foldin.fold_in(
        cli.ModelDir(project["models"]["dot"]).model,
        data["movie"][rows], data["rating"][rows], weight_decay=0.05,
    )  # fmt: skip
    assert [i["score"] for i in items] == pytest.approx(folded.rating([i["movie"] for i in items]))


def test_recommend_new_user_mlp(project, capsys, elsewhere):
    path = write_csv(
        elsewhere / "mine.csv", [(movie_id(1), 4.5), (movie_id(2), 1), (movie_id(9), 3)]
    )
    result = run_json(capsys, "recommend", project["models"]["mlp"], "--ratings", path, "-n", 3)
    assert result["method"] == "adam" and len(result["items"]) == 3
    assert {i["movie"] for i in result["items"]}.isdisjoint({1, 2, 9})


def test_csv_tolerates_blank_lines_spaces_and_a_bom(project, capsys, elsewhere):
    path = elsewhere / "mine.csv"
    path.write_text(f"\ufeffmovieId, rating\n\n {movie_id(5)} , 4\n{movie_id(6)},2.5\n\n")
    result = run_json(capsys, "recommend", project["models"]["dot"], "--ratings", path, "-n", 2)
    assert result["for"]["n_ratings"] == 2


# --- similar ---------------------------------------------------------------------------------


def test_similar_lists_eligible_neighbours_by_similarity(project, capsys, elsewhere):
    movies = pd.read_parquet(project["root"] / project["rel"]["movies"])
    query = int(movies["n_ratings"].idxmax())
    result = run_json(
        capsys, "similar", project["models"]["dot"], "--movie", movie_id(query), "-n", 8,
        "--min-ratings", 40,
    )  # fmt: skip
    items = result["items"]
    assert result["query"]["movie"] == query and len(items) == 8
    sims = [i["similarity"] for i in items]
    assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 for s in sims)
    assert query not in {i["movie"] for i in items}
    assert all(movies["n_ratings"].iat[i["movie"]] >= 40 for i in items)
    assert all(i["n_ratings"] >= 40 for i in items)
    code, out, _ = run(capsys, "similar", project["models"]["dot"], "--movie", movie_id(query))
    assert code == 0 and "cosine similarity of movie vectors" in out
    assert len([line for line in out.splitlines() if line[:4].strip().isdigit()]) == 10


def test_nearest_movie_has_nearly_the_same_planted_factors(project, capsys, elsewhere):
    movies = pd.read_parquet(project["root"] / project["rel"]["movies"])
    planted = project["data"]["q"] / np.linalg.norm(project["data"]["q"], axis=1, keepdims=True)
    most_rated = movies["n_ratings"].to_numpy().argsort()[::-1][:20]
    cosines, same_group = [], []
    for query in most_rated:
        result = run_json(
            capsys, "similar", project["models"]["dot"], "--movie", movie_id(query), "-n", 1,
            "--min-ratings", 0,
        )  # fmt: skip
        nearest = result["items"][0]["movie"]
        cosines.append(planted[query] @ planted[nearest])
        same_group.append(nearest // GROUP == query // GROUP)
    # Any two movies: planted cosine about 0 on average; the nearest by learned rows: about 1.
    assert np.median(cosines) > 0.98, cosines
    assert min(cosines) > 0.8, cosines
    assert np.mean(same_group) >= 0.5, same_group


def test_nearest_movies_is_vectorised_brute_force():
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(30, 5))
    factors[4] = 0.0  # a zero row: similarity 0 to everything, never an error
    eligible = rng.random(30) < 0.7
    queries = np.arange(30)
    indices, sims = nearest_movies(factors, queries, 6, eligible)
    assert indices.shape == sims.shape == (30, 6)
    unit = factors / np.maximum(np.linalg.norm(factors, axis=1, keepdims=True), 1e-300)
    for q in queries:
        cand = [m for m in range(30) if eligible[m] and m != q]
        expected = sorted(cand, key=lambda m: (-(unit[q] @ unit[m]), m))[:6]
        assert list(indices[q]) == expected
        np.testing.assert_allclose(sims[q], [unit[q] @ unit[m] for m in expected], atol=1e-12)
    # One query as an int; more neighbours asked for than eligible movies exist.
    few = np.zeros(30, dtype=bool)
    few[[1, 2]] = True
    indices, sims = nearest_movies(factors, 1, 5, few)
    assert indices.tolist() == [[2, -1]] and np.isnan(sims[0, 1])


def test_nearest_movies_checks_its_arguments():
    with pytest.raises(ValueError, match="query movie index 9 is outside"):
        nearest_movies(np.ones((3, 2)), [9], 1)
    with pytest.raises(ValueError, match="eligible_mask has shape"):
        nearest_movies(np.ones((3, 2)), [0], 1, np.ones(2, dtype=bool))


# --- bad input -------------------------------------------------------------------------------


def _fails(capsys, *args, match):
    code, out, err = run(capsys, *args)
    assert code not in (0, None), (code, out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in [match] if isinstance(match, str) else match:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_unknown_user(project, capsys, elsewhere):
    _fails(capsys, "recommend", project["models"]["dot"], "--user", 5, match="userId 5 is not in")


def test_unknown_movie(project, capsys, elsewhere):
    line = _fails(
        capsys, "similar", project["models"]["dot"], "--movie", 8, match="movieId 8 is not in"
    )
    assert line.startswith("movierec similar: error: --movie:")


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (["movieId,rating", "17,4", "99999,3"], ["mine.csv, line 3", "movieId 99999 is not in"]),
        (["17,4", "27,good"], ["line 2", "rating 'good' is not a number", "movieId,rating"]),
        (["movieId,rating", "17"], ["line 2", "expected `movieId,rating`", "(1 field)"]),
        (["17,4,964982703"], ["mine.csv, line 1", "expected `movieId,rating`", "(3 fields)"]),
        (["17.5,4"], ["line 1", "movieId '17.5' is not an integer"]),
        (["1_7,4"], ["line 1", "movieId '1_7' is not an integer"]),
        (["movieId,rating", "17,4", "27,5.5"], ["line 3", "rating 5.5", "outside", "[0.5, 5]"]),
        (["17,0"], ["line 1", "rating 0 of movieId 17 is outside the model's rating scale"]),
        (["17,nan"], ["line 1", "rating 'nan' is not a number"]),
        (["17,4", "27,3", "17,5"], ["line 3", "movieId 17 is rated again (first on line 1)"]),
        (["movieId,rating"], ["mine.csv: no ratings in the file"]),
        (["userId,movieId,rating", "1,17,4"], ["line 1", "expected `movieId,rating`"]),
    ],
    ids=[
        "unknown-movie", "not-a-number", "missing-column", "extra-column", "float-id", "1_7-id",
        "above-scale", "below-scale", "nan", "repeated", "empty", "other-header",
    ],
)  # fmt: skip
def test_bad_ratings_file(project, capsys, elsewhere, lines, match):
    path = elsewhere / "mine.csv"
    path.write_text("\n".join(lines) + "\n")
    _fails(capsys, "recommend", project["models"]["dot"], "--ratings", path, match=match)


def test_missing_ratings_file(project, capsys, elsewhere):
    _fails(
        capsys, "recommend", project["models"]["dot"], "--ratings", "nope.csv",
        match="nope.csv: no such ratings file",
    )  # fmt: skip


def test_model_dir_without_model_json(project, capsys, elsewhere):
    broken = elsewhere / "results" / DATASET / "random" / "models" / "dot" / "rep1"
    broken.mkdir(parents=True)
    shutil.copy2(project["models"]["dot"] / "model.pt", broken)
    _fails(capsys, "recommend", broken, "--user", user_id(1), match=[str(broken), "no model.json"])
    _fails(capsys, "similar", elsewhere / "nowhere", "--movie", 17, match="not a directory")


def test_model_dir_without_its_id_maps(project, capsys, elsewhere):
    moved = elsewhere / "copy"
    shutil.copytree(project["models"]["dot"], moved)
    _fails(
        capsys, "recommend", moved, "--user", user_id(1),
        match=["movies id map", f"results/{DATASET}/data/movies.parquet", "not found"],
    )  # fmt: skip
    # With the movies beside it but no users.parquet, the users map is named.
    data = elsewhere / "results" / DATASET / "data"
    data.mkdir(parents=True)
    shutil.copy2(project["root"] / project["rel"]["movies"], data)
    _fails(
        capsys, "recommend", moved, "--user", user_id(1),
        match=["users id map", f"results/{DATASET}/data/users.parquet"],
    )  # fmt: skip


def test_id_map_of_another_release_is_refused(project, capsys, elsewhere):
    # The current directory comes first, so another project's file at the same path is
    # found; its size gives it away.
    data = elsewhere / "results" / DATASET / "data"
    data.mkdir(parents=True)
    movies = pd.read_parquet(project["root"] / project["rel"]["movies"])
    movies.head(100).to_parquet(data / "movies.parquet", index=False)
    _fails(
        capsys, "similar", project["models"]["dot"], "--movie", movie_id(1),
        match=["100 movies, but the model in", f"has {N_MOVIES} movie rows"],
    )  # fmt: skip


def test_usage_errors_exit_2(project, capsys):
    code, _, err = run(capsys, "recommend", project["models"]["dot"], "--user", 1, "-n", 0)
    assert code == 2 and "must be at least 1" in err
    code, _, err = run(capsys, "recommend", project["models"]["dot"])
    assert code == 2 and "one of the arguments --user --ratings is required" in err


# --- installed command -------------------------------------------------------------------------


def test_entry_point_is_declared():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"] == {"movierec": "movierec.cli:main"}
    assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta"
    find = pyproject["tool"]["setuptools"]["packages"]["find"]
    assert find["where"] == ["workflow/scripts"] and find["include"] == ["movierec*"]
    # Nothing pip could resolve from the index: torch and friends come from requirements.txt.
    assert not any("torch" in dep for dep in pyproject["project"].get("dependencies", []))
    lines = [
        line.strip()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[-1] == "-e ."


def test_command_runs_as_a_subprocess(project, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow" / "scripts"))
    cmd = [sys.executable, "-m", "movierec.cli", "similar", str(project["models"]["dot"])]
    ok = subprocess.run(
        [*cmd, "--movie", str(movie_id(0)), "-n", "3", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(ok.stdout)["items"]) == 3
    bad = subprocess.run(
        [*cmd, "--movie", "8"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"movierec similar: error: --movie: movieId 8 is not in the model's movies "
        f"({project['root'] / project['rel']['movies']})"
    ]
    script = Path(sys.executable).parent / "movierec"
    if not script.exists():
        pytest.skip(f"{script} not installed (pip install -e . installs it)")
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "recommend" in helped.stdout and "similar" in helped.stdout
