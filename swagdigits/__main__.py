import sys

from swagdigits.cli import main

sys.exit(main())
