"""Ray job entrypoint: search the LoRA+ ratio (and learning rate) on the cluster this job runs on.

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python jobs/tune.py --config jobs/configs/opencodeinterpreter-6.7b-a100.yaml \\
        --set ray.storage_path=s3://BUCKET/ray --set output.push_to=s3://BUCKET/registry --promote production

Same flags as `sqlfoundry tune`; resubmitting with the same tune.run_name resumes the search.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))  # --working-dir without install

from sqlfoundry.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
