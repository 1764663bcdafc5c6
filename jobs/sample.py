"""`ray job submit --working-dir . -- python jobs/sample.py ARGS`: the same as `deeplandscape sample ARGS`."""

import sys

from deeplandscape.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]], from_shell=True))
