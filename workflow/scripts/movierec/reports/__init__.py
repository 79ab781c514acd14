"""Reports on trained models: movie-bias rankings, PCA of movie embeddings, plots, summary.

Each module exposes one entry point per report rule (it reads files and writes
files atomically) built on plain functions over arrays and data frames, which
is what the tests exercise.
"""
