"""The rule engine's tests import it as the container does: ``sagemaker_code/`` on sys.path."""

import sys

from smdebug_runs import SAGEMAKER_CODE

if str(SAGEMAKER_CODE) not in sys.path:
    sys.path.insert(0, str(SAGEMAKER_CODE))
