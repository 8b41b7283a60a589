import sys

from rnopt.cli import main

sys.exit(main())
