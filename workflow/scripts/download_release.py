"""Rule download_release: fetch a release's files into results/{dataset}/raw."""

import movierec.runlog
from movierec.download import download_release

log = movierec.runlog.setup(snakemake.log[0])

download_release(
    files=snakemake.params.files,
    dest_dir=snakemake.output.raw,
    # The one deliberate exception to "every setting through params:": the
    # mirror is a location, not content. The checksums in params pin the
    # content, so switching mirror (or dropping it) must not rerun anything,
    # which it would as a param.
    mirror=snakemake.config.get("mirror"),
    retries=snakemake.params.retries,
    timeout_s=snakemake.params.timeout_s,
    max_extracted_bytes=snakemake.params.max_extracted_bytes,
)
