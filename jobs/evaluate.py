"""Ray job entrypoint: evaluate an adapter (same flags as `sqlfoundry eval`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python jobs/evaluate.py --adapter outputs/run/adapter --data data/heldout.jsonl --out outputs/eval
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))  # --working-dir without install

from sqlfoundry.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
