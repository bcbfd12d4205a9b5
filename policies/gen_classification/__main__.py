"""``python -m policies.gen_classification [--write]``: see :mod:`policies.gen_classification`."""

import sys

from policies.gen_classification.table import main

sys.exit(main())
