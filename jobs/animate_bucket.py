"""`ray job submit --working-dir . -- python jobs/animate_bucket.py IN OUT --run-dir RUN ...`: the same as
`deeplandscape animate-bucket IN OUT --run-dir RUN ...` (deeplandscape/invert/bucket.py)."""

import sys

from deeplandscape.cli import main

if __name__ == "__main__":
    sys.exit(main(["animate-bucket", *sys.argv[1:]], from_shell=True))
