"""`ray job submit --working-dir . -- python jobs/prepare.py ARGS`: the same as `deeplandscape prepare ARGS`."""

import sys

from deeplandscape.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]], from_shell=True))
