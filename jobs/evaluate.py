"""`ray job submit --working-dir . -- python jobs/evaluate.py fid|fvd|generation ARGS`: the same as
`deeplandscape evaluate fid|fvd|generation ARGS`, run by the cluster's driver.

Paths are then seen from the head node: use s3:// prefixes for the collections, the run
directory, `--out` and `$DEEPLANDSCAPE_STATS_CACHE`, and have the weight files in each node's
cache (`deeplandscape weights fetch` in the image) or `$DEEPLANDSCAPE_WEIGHTS` on shared storage.
"""

import sys

from deeplandscape.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]], from_shell=True))
