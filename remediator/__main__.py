import sys

from remediator.cli.main import main

sys.exit(main())
