"""Rule score_recommendations: ranking metrics of every top-N list on the test part."""

import movierec.runlog
from movierec.reports.ranking import score_recommendations

log = movierec.runlog.setup(snakemake.log[0])
settings = snakemake.params.settings
score_recommendations(
    lists=snakemake.params.lists,
    train_path=snakemake.input.train,
    test_path=snakemake.input.test,
    movies_path=snakemake.input.movies,
    csv_path=snakemake.output.csv,
    md_path=snakemake.output.md,
    png_path=snakemake.output.png,
    svg_path=snakemake.output.svg,
    ks=settings["ks"],
    relevant_rating=settings["relevant_rating"],
    curve_k=settings["curve_k"],
    example_users=settings["example_users"],
    kinds=snakemake.params.kinds,
    objectives=snakemake.params.objectives,
    dataset=snakemake.wildcards.dataset,
    split=snakemake.wildcards.split,
)
