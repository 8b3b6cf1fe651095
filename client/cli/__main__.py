"""``python -m cost_oracle.client.cli`` is ``cost-oracle``."""

import sys

from cost_oracle.client.cli import main

sys.exit(main())
