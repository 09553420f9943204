"""`python -m cli ...`: the same as the `nalgae` command (the tests run it this way)."""

from cli import main

main()
