"""``python -m local_sagemaker``: see :mod:`local_sagemaker.cli`."""

import sys

from local_sagemaker.cli import main

sys.exit(main())
