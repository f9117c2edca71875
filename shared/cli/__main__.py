"""`python -m shared.cli` is the same as the `caseshare` console script."""

from shared.cli import main

main()
