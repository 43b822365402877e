import sys

from mlfootprint.cli import main

sys.exit(main())
