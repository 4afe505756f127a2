"""`python -m iobench` runs the command line."""

from iobench.cli import main

if __name__ == "__main__":
    main()
