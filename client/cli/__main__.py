"""``python -m client.cli`` is ``cost-oracle``."""

import sys

from client.cli import main

sys.exit(main())
