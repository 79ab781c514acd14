"""movierec: the library behind the workflow's rules.

Modules take plain arguments and never see the `snakemake` object, which is
what makes them testable; `workflow/scripts/<rule>.py` are the thin adapters.
"""
