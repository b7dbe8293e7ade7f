"""``python -m gde_ref`` is ``gde-ref``."""
import sys

from gde_ref.cli import main

sys.exit(main())
