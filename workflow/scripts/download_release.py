"""Rule download_release: fetch a release's files into results/{dataset}/raw."""

import movierec.runlog
from movierec.download import download_release

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
    max_extracted_bytes=settings["max_extracted_bytes"],
)
