"""`python -m mlfootprint.devcluster.deviceplugin`: run the fake GPU device plugin."""

import sys

from mlfootprint.devcluster.deviceplugin import main

sys.exit(main())
