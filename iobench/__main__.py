"""`python -m iobench` runs the command line."""

from iobench._entry import main

if __name__ == "__main__":
    main()
