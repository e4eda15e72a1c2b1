import sys

from mesh_push.cli import main

sys.exit(main())
