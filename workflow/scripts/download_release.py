"""Rule download_release: fetch a release's files into results/{dataset}/raw."""

import movierec.runlog
from movierec.download import download_release

# (setup also makes SIGTERM unwind like Ctrl-C, so no temporary directory stays.)
log = movierec.runlog.setup(snakemake.log[0])

# The deliberate exception to "every setting through params:": the mirror and the
# download settings are where and how patiently to fetch, not what. The checksums in
# params pin the content, so changing these must not rerun the download (and with it
# every step after it), which it would as params.
settings = snakemake.config["download"]
download_release(
    files=snakemake.params.files,
    dest_dir=snakemake.output.raw,
    mirror=snakemake.config.get("mirror"),
    retries=settings["retries"],
    timeout_s=settings["timeout_s"],
    deadline_s=settings["deadline_s"],
    min_bytes_per_s=settings["min_bytes_per_s"],
    rate_window_s=settings["rate_window_s"],
    max_extracted_bytes=settings["max_extracted_bytes"],
    warn_extracted_bytes=settings["warn_extracted_bytes"],
    max_compression_ratio=settings["max_compression_ratio"],
)
