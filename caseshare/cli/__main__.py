"""`python -m caseshare.cli` is the same as the `caseshare` console script."""

from caseshare.cli import main

main()
