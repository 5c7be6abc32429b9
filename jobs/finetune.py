"""Ray job entrypoint: fine-tune on the cluster this job runs on.

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python jobs/finetune.py --config jobs/configs/opencodeinterpreter-6.7b-a100.yaml \\
        --set ray.num_workers=4 --set ray.storage_path=s3://BUCKET/ray --set output.push_to=s3://BUCKET/registry

Inside a Ray job, RAY_ADDRESS is set, so the run joins the cluster instead of starting a local Ray.
Same flags as `sqlfoundry train`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))  # --working-dir without install

from sqlfoundry.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
