import sys

from kpng_scale.cli import main

sys.exit(main())
