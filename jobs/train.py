"""`ray job submit --working-dir . -- python jobs/train.py ARGS`: the same as `deeplandscape train ARGS`."""

import sys

from deeplandscape.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]], from_shell=True))
